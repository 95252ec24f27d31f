#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) @testable import RCU
import Synchronization
import RCUTestSupport
import Testing
import _RCUShims

@Suite("Read side", .serialized, .timeLimit(.minutes(10)))
struct ReadSideTests {
    @Test("read returns the body's value and rethrows its error", arguments: TestMode.allCases)
    func readReturnsAndRethrows(mode: TestMode) {
        struct Boom: Error {}
        let domain = mode.makeDomain()
        #expect(domain.read { 42 } == 42)
        #expect(throws: Boom.self) { try domain.read { () throws(Boom) -> Int in throw Boom() } }
        #expect(domain._openSections() == 0)
    }

    @Test("sections nest 1000 deep and synchronize waits for the outermost", arguments: TestMode.withCanary)
    func nesting(mode: TestMode) {
        let domain = mode.makeDomain()
        let innermost = Flag()
        let released = Flag()
        let returned = Flag()
        let sawRelease = Flag()
        let updater = TestThread {
            innermost.wait()
            domain.synchronize()
            returned.set()
            if released.isSet { sawRelease.set() }
        }
        func nest(_ depth: Int) {
            domain.read {
                if depth > 1 {
                    nest(depth - 1)
                } else {
                    innermost.set()
                    // Release only once the updater waits inside its grace
                    // period (or has wrongly returned already).
                    #expect(updaterIsWaiting(domain, orReturned: returned))
                }
            }
        }
        domain.read {
            nest(999)
            sleepMicroseconds(10_000)  // the outermost section still holds it
            released.set()
        }
        updater.join()
        expectViolations(sawRelease.isSet ? 0 : 1, in: mode, "synchronize() returned inside the outermost section")
        #expect(domain._openSections() == 0)
    }

    @Test("a token locked on one thread is unlocked on another", arguments: TestMode.withCanary)
    func crossThreadUnlock(mode: TestMode) {
        let domain = mode.makeDomain()
        let box = TokenBox()
        let locked = Flag()
        let released = Flag()
        let returned = Flag()
        let sawRelease = Flag()
        let locker = TestThread {
            box.put(domain.lock())
            locked.set()
        }
        locker.join()
        #expect(locked.isSet)
        let updater = TestThread {
            domain.synchronize()
            returned.set()
            if released.isSet { sawRelease.set() }
        }
        let unlocker = TestThread {
            #expect(updaterIsWaiting(domain, orReturned: returned))
            released.set()
            if let token = box.take() { domain.unlock(token) }
        }
        unlocker.join()
        updater.join()
        expectViolations(sawRelease.isSet ? 0 : 1, in: mode, "synchronize() returned before the token was unlocked on another thread")
        #expect(domain._openSections() == 0)
    }

    @Test("an async section spans an await that resumes on another thread", arguments: TestMode.withCanary)
    func asyncSectionHopsThreads(mode: TestMode) async {
        let domain = mode.makeDomain()
        let executor = ThreadPerJobExecutor()
        let inside = Flag()
        let released = Flag()
        let returned = Flag()
        let sawRelease = Flag()
        let updater = TestThread {
            inside.wait()
            domain.synchronize()
            returned.set()
            if released.isSet { sawRelease.set() }
        }
        let threads = await withTaskExecutorPreference(executor) {
            await domain.read { () async -> (Int, Int) in
                let before = ThreadPerJobExecutor.currentThreadSerial
                inside.set()
                await Task.yield()
                try? await Task.sleep(nanoseconds: 5_000_000)
                #expect(updaterIsWaiting(domain, orReturned: returned))
                released.set()
                return (before, ThreadPerJobExecutor.currentThreadSerial)
            }
        }
        updater.join()
        #expect(threads.0 != threads.1, "the executor should have resumed the task on a new thread")
        expectViolations(sawRelease.isSet ? 0 : 1, in: mode, "synchronize() returned inside an async section")
        #expect(domain._openSections() == 0)
    }

    @Test("forced rseq failures fall back to the atomic path and stay balanced")
    func forcedRseqFailuresMakeProgress() {
        var configuration = RCUDomain.Configuration(honorsEnvironment: false)
        configuration._failsEveryRseqAttempt = true
        let domain = RCUDomain(configuration: configuration)
        let perThread = 20_000
        let threads = (0..<2).map { _ in
            TestThread { for _ in 0..<perThread { domain.read {} } }
        }
        for thread in threads { thread.join() }
        domain.synchronize()
        let counts = domain._lockCounts()
        #expect(counts.rseq == 0)
        #expect(counts.atomic == UInt64(2 * perThread))
        #expect(domain._openSections() == 0)
    }

    // The inlined sequence runs in every mode; outside rseq+membarrier its
    // bound is 0 and it arms a stand-in rseq area, so it must fail every
    // time there and leave the counting to the mode's slow path.
    @Test("every mode counts each section once, through the path it chose", arguments: TestMode.allCases)
    func sectionsCountedByTheChosenPath(mode: TestMode) {
        let domain = mode.makeDomain()
        let perThread = 50_000
        let threads = (0..<2).map { _ in
            TestThread {
                for _ in 0..<perThread / 2 {
                    domain.read {}
                    let token = domain.lock()
                    domain.unlock(token)
                }
            }
        }
        for thread in threads { thread.join() }
        domain.synchronize()
        let counts = domain._lockCounts()
        #expect(counts.rseq &+ counts.atomic == UInt64(2 * perThread))
        #expect(domain._openSections() == 0)
        let header = domain._state.pointee.header
        if domain._inlineFastPath {
            #expect(header.fast_bound == header.slot_count)
            #expect(domain._fastOffset == Int64(domain._rseqOffset))
            // Aborts are rare: almost every section committed inline.
            #expect(counts.rseq > UInt64(perThread))
        } else {
            #expect(domain._fastOffset == rcu_shim_standin_offset())
            // A nonzero bound would let the inlined sequence commit without
            // this mode's fences: every attempt must fail.
            #expect(header.fast_bound == 0)
            if domain.mode.counters == .rseq {
                // rseq+fence: the slow path's own attempts commit.
                #expect(counts.rseq > UInt64(perThread))
            } else {
                #expect(counts.rseq == 0)
            }
        }
    }

    @Test("rseq sections restarted by membarrier IPIs lose and duplicate nothing", arguments: TestMode.allCases)
    func countsSurviveRealAborts(mode: TestMode) {
        let domain = mode.makeDomain()
        let stop = Flag()
        let done = Flag()
        let sections = Count()
        // A second domain's grace periods IPI every running thread with
        // membarrier (RSEQ where available), aborting rseq sections in flight.
        let noise = mode.makeDomain()
        let hammer = TestThread {
            while !stop.isSet { noise.read {}; noise.synchronize() }
        }
        // Runs until the inlined rseq path has been aborted often (where the
        // mode has one), so the test shows the restarts it is named after.
        let wantedMisses = domain._inlineFastPath ? 100 : 0
        let readers = (0..<2).map { _ in
            TestThread {
                var n = 0
                while !done.isSet || n < 200_000 {
                    for _ in 0..<1_000 {
                        let token = domain.lock()
                        domain.read {}
                        domain.unlock(token)
                    }
                    n += 1_000
                    if n > 20_000_000 { break }
                }
                sections.add(2 * n)
            }
        }
        #expect(waitUntil(seconds: 60 * sanitizerSlowdown) { domain._fastPathMisses.load(ordering: .relaxed) >= wantedMisses },
                "only \(domain._fastPathMisses.load(ordering: .relaxed)) rseq aborts seen")
        done.set()
        for reader in readers { reader.join() }
        stop.set()
        hammer.join()
        let counts = domain._lockCounts()
        #expect(counts.rseq &+ counts.atomic == UInt64(sections.current))
        if domain.mode.counters == .rseq {
            // Most sections commit through rseq; aborts retry and only a
            // few fall back to the atomic words.
            #expect(counts.rseq > counts.atomic, "rseq \(counts.rseq), atomic \(counts.atomic)")
        } else {
            #expect(counts.rseq == 0)
        }
        #expect(domain._openSections() == 0)
    }

    @Test("the automatic mode commits through rseq where the platform has it")
    func automaticModeUsesRseq() {
        let domain = RCUDomain(configuration: .init(honorsEnvironment: false))
        guard _Platform.rseqProblem() == nil, !threadSanitizerBuild else {
            #expect(domain.mode.counters == .atomic)
            return
        }
        #expect(domain.mode.counters == .rseq)
        for _ in 0..<10_000 { domain.read {} }
        let counts = domain._lockCounts()
        #expect(counts.rseq + counts.atomic == 10_000)
        #expect(counts.rseq >= 9_000, "only \(counts.rseq) of 10,000 sections committed through rseq")
    }
}

/// Waits until `domain`'s grace period is under way (its start time is set)
/// or `returned` is set (an updater that did not wait, the canary); false if
/// neither happens in time.
func updaterIsWaiting(_ domain: RCUDomain, orReturned returned: Flag) -> Bool {
    waitUntil(seconds: 30 * sanitizerSlowdown) {
        domain._gpStartedAt.load(ordering: .relaxed) != 0 || returned.isSet
    }
}

/// Runs every job on a new thread, so each resumption of a task changes
/// thread: the deterministic way to make a section end elsewhere.
final class ThreadPerJobExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: its only state is an atomic counter.
    private let threadsStarted = Atomic<Int>(0)

    /// The serial number of the executor thread running the caller (0 off
    /// the executor). Unlike pthread_t or a TID, never reused.
    static var currentThreadSerial: Int {
        Int(bitPattern: pthread_getspecific(serialKey))
    }

    private static let serialKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0)
        return key
    }()

    func enqueue(_ job: consuming ExecutorJob) {
        let box = JobBox(UnownedJob(job), asUnownedTaskExecutor(),
                         serial: threadsStarted.add(1, ordering: .relaxed).newValue)
        let context = Unmanaged.passRetained(box).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { context in
            let box = Unmanaged<JobBox>.fromOpaque(context!).takeRetainedValue()
            pthread_setspecific(ThreadPerJobExecutor.serialKey, UnsafeRawPointer(bitPattern: box.serial))
            box.job.runSynchronously(on: box.executor)
            return nil
        }, context)
        pthread_detach(thread)
    }

    private final class JobBox {
        let job: UnownedJob
        let executor: UnownedTaskExecutor
        let serial: Int
        init(_ job: UnownedJob, _ executor: UnownedTaskExecutor, serial: Int) {
            self.job = job
            self.executor = executor
            self.serial = serial
        }
    }
}
