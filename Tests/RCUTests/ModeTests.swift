#if canImport(Glibc)
import Glibc
#endif
@testable import RCU
import RCUTestSupport
import Testing

@Suite("Modes", .timeLimit(.minutes(10)))
struct ModeTests {
    @Test("ThreadSanitizer builds run atomic+seqcst in every configuration, and say why")
    func threadSanitizerMode() {
        let seqCst = RCUMode(counters: .atomic, ordering: .sequentiallyConsistent)
        #expect(seqCst.description == "atomic+seqcst")
        let reason = "ThreadSanitizer build: readers and grace periods pair through seq_cst atomics"
        for mode in [TestMode.automatic, .atomic, .fence, .atomicFence, .seqCst] {
            let domain = mode.makeDomain()
            if threadSanitizerBuild {
                #expect(domain.mode == seqCst)
                #expect(domain.modeReasons.contains(reason))
            } else {
                #expect((domain.mode == seqCst) == (mode == .seqCst))
                #expect(!domain.modeReasons.contains(reason))
            }
        }
    }

    @Test("the seq_cst mode works without ThreadSanitizer too, forced by configuration")
    func forcedSeqCst() {
        var configuration = RCUDomain.Configuration(honorsEnvironment: false)
        configuration.forcesSequentiallyConsistent = true
        let domain = RCUDomain(configuration: configuration)
        #expect(domain.mode == RCUMode(counters: .atomic, ordering: .sequentiallyConsistent))
        if !threadSanitizerBuild {
            #expect(domain.modeReasons.contains("seq_cst pairing forced by configuration"))
        }
        domain.read { domain.read {} }
        domain.synchronize()
        #expect(domain._openSections() == 0)
        #expect(domain._lockCounts().rseq == 0)
        #expect(domain._lockCounts().atomic == 2)
    }

    @Test("configuration forces each fallback and says why")
    func forcedModes() {
        let atomic = RCUDomain(configuration: .init(allowsRseq: false, honorsEnvironment: false))
        #expect(atomic.mode.counters == .atomic)
        #expect(atomic.modeReasons.contains("rseq disabled by configuration"))
        let fence = RCUDomain(configuration: .init(allowsMembarrier: false, honorsEnvironment: false))
        // A ThreadSanitizer build replaces the fence ordering too (above).
        #expect(fence.mode.ordering == (threadSanitizerBuild ? .sequentiallyConsistent : .fence))
        #expect(fence.modeReasons.contains("membarrier disabled by configuration"))
        #expect(RCUMode(counters: .rseq, ordering: .membarrier).description == "rseq+membarrier")
    }

    @Test("the automatic mode uses what the machine offers")
    func automaticMode() {
        let domain = RCUDomain(configuration: .init(honorsEnvironment: false))
        // A ThreadSanitizer build picks atomic+seqcst whatever the machine offers (above).
        #expect((domain.mode.counters == .rseq) == (_Platform.rseqProblem() == nil && !threadSanitizerBuild))
        #expect((domain.mode.ordering == .membarrier) == (_Platform.membarrier.problem == nil && !threadSanitizerBuild))
        if domain.mode == RCUMode(counters: .rseq, ordering: .membarrier) {
            #expect(domain.modeReasons.isEmpty)
        } else {
            #expect(!domain.modeReasons.isEmpty)
        }
    }

    @Test("RCU_FORCE_* values parse strictly")
    func switchParsing() {
        for value in [nil, "", "0", "false", "No", "off"] { #expect(_parseForceSwitch(value) == false) }
        for value in ["1", "true", "YES", "on"] { #expect(_parseForceSwitch(value) == true) }
        for value in ["2", "yse", "enable"] { #expect(_parseForceSwitch(value) == nil) }
    }

    @Test("the environment forces the fallbacks")
    func environmentSwitches() async {
        await #expect(processExitsWith: .success) {
            setenv("RCU_FORCE_ATOMIC", "1", 1)
            setenv("RCU_FORCE_FENCE", "1", 1)
            let domain = RCUDomain()
            if threadSanitizerBuild {
                // The build's mode wins; the switches are still parsed.
                guard domain.mode == RCUMode(counters: .atomic, ordering: .sequentiallyConsistent) else { exit(3) }
            } else {
                guard domain.mode == RCUMode(counters: .atomic, ordering: .fence) else { exit(1) }
                guard domain.modeReasons.contains("rseq disabled by RCU_FORCE_ATOMIC"),
                      domain.modeReasons.contains("membarrier disabled by RCU_FORCE_FENCE") else { exit(2) }
            }
            domain.synchronize()
            exit(0)
        }
        await #expect(processExitsWith: .success) {
            setenv("RCU_FORCE_SEQCST", "1", 1)
            let domain = RCUDomain()
            guard domain.mode == RCUMode(counters: .atomic, ordering: .sequentiallyConsistent) else { exit(1) }
            if !threadSanitizerBuild {
                guard domain.modeReasons.contains("seq_cst pairing forced by RCU_FORCE_SEQCST") else { exit(2) }
            }
            domain.read {}
            domain.synchronize()
            exit(0)
        }
    }

    @Test("the CPU count covers every possible CPU")
    func slots() {
        let domain = RCUDomain()
        #expect(domain._slotCount >= 1)
        #expect(domain._slotCount >= Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}
