#if canImport(Glibc)
import Glibc
#endif
@testable import RCU
import RCUTestSupport
import Testing

@Suite("Modes")
struct ModeTests {
    @Test("configuration forces each fallback and says why")
    func forcedModes() {
        let atomic = RCUDomain(configuration: .init(allowsRseq: false, honorsEnvironment: false))
        #expect(atomic.mode.counters == .atomic)
        #expect(atomic.modeReasons.contains("rseq disabled by configuration"))
        let fence = RCUDomain(configuration: .init(allowsMembarrier: false, honorsEnvironment: false))
        #expect(fence.mode.ordering == .fence)
        #expect(fence.modeReasons.contains("membarrier disabled by configuration"))
        #expect(RCUMode(counters: .rseq, ordering: .membarrier).description == "rseq+membarrier")
    }

    @Test("the automatic mode uses what the machine offers")
    func automaticMode() {
        let domain = RCUDomain(configuration: .init(honorsEnvironment: false))
        #expect((domain.mode.counters == .rseq) == (_Platform.rseqProblem() == nil))
        #expect((domain.mode.ordering == .membarrier) == (_Platform.membarrier.problem == nil))
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
            guard domain.mode == RCUMode(counters: .atomic, ordering: .fence) else { exit(1) }
            guard domain.modeReasons.contains("rseq disabled by RCU_FORCE_ATOMIC"),
                  domain.modeReasons.contains("membarrier disabled by RCU_FORCE_FENCE") else { exit(2) }
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
