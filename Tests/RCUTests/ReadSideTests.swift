#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) @testable import RCU
import Synchronization
import RCUTestSupport
import Testing

@Suite("Read side", .serialized)
struct ReadSideTests {
    @Test("read returns the body's value and rethrows its error", arguments: TestMode.allCases)
    func readReturnsAndRethrows(mode: TestMode) {
        struct Boom: Error {}
        let domain = mode.makeDomain()
        #expect(domain.read { 42 } == 42)
        #expect(throws: Boom.self) { try domain.read { () throws(Boom) -> Int in throw Boom() } }
        #expect(domain._openSections() == 0)
    }

    @Test("sections nest 1000 deep and synchronize waits for the outermost", arguments: TestMode.allCases)
    func nesting(mode: TestMode) {
        let domain = mode.makeDomain()
        let innermost = Flag()
        let released = Flag()
        let sawRelease = Flag()
        let updater = TestThread {
            innermost.wait()
            domain.synchronize()
            if released.isSet { sawRelease.set() }
        }
        func nest(_ depth: Int) {
            domain.read {
                if depth > 1 {
                    nest(depth - 1)
                } else {
                    innermost.set()
                    sleepMicroseconds(20_000)
                }
            }
        }
        domain.read {
            nest(999)
            sleepMicroseconds(20_000)
            released.set()
        }
        updater.join()
        #expect(sawRelease.isSet)
        #expect(domain._openSections() == 0)
    }

    @Test("a token locked on one thread is unlocked on another", arguments: TestMode.allCases)
    func crossThreadUnlock(mode: TestMode) {
        let domain = mode.makeDomain()
        let box = TokenBox()
        let locked = Flag()
        let released = Flag()
        let sawRelease = Flag()
        let locker = TestThread {
            box.put(domain.lock())
            locked.set()
        }
        locker.join()
        #expect(locked.isSet)
        let updater = TestThread {
            domain.synchronize()
            if released.isSet { sawRelease.set() }
        }
        let unlocker = TestThread {
            sleepMicroseconds(30_000)
            released.set()
            if let token = box.take() { domain.unlock(token) }
        }
        unlocker.join()
        updater.join()
        #expect(sawRelease.isSet)
        #expect(domain._openSections() == 0)
    }

    @Test("an async section spans an await that resumes on another thread", arguments: TestMode.allCases)
    func asyncSectionHopsThreads(mode: TestMode) async {
        let domain = mode.makeDomain()
        let executor = ThreadPerJobExecutor()
        let inside = Flag()
        let released = Flag()
        let sawRelease = Flag()
        let updater = TestThread {
            inside.wait()
            domain.synchronize()
            if released.isSet { sawRelease.set() }
        }
        let threads = await withTaskExecutorPreference(executor) {
            await domain.read { () async -> (Int, Int) in
                let before = ThreadPerJobExecutor.currentThreadSerial
                inside.set()
                await Task.yield()
                try? await Task.sleep(nanoseconds: 20_000_000)
                released.set()
                return (before, ThreadPerJobExecutor.currentThreadSerial)
            }
        }
        updater.join()
        #expect(threads.0 != threads.1, "the executor should have resumed the task on a new thread")
        #expect(sawRelease.isSet)
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

    @Test("rseq sections restarted by membarrier IPIs lose and duplicate nothing", arguments: TestMode.allCases)
    func countsSurviveRealAborts(mode: TestMode) {
        let domain = mode.makeDomain()
        let stop = Flag()
        let perThread = 200_000
        // A second domain's grace periods IPI every running thread with
        // membarrier (RSEQ where available), aborting rseq sections in flight.
        let noise = mode.makeDomain()
        let hammer = TestThread {
            while !stop.isSet { noise.read {}; noise.synchronize() }
        }
        let readers = (0..<2).map { _ in
            TestThread {
                for _ in 0..<perThread {
                    let token = domain.lock()
                    domain.read {}
                    domain.unlock(token)
                }
            }
        }
        for reader in readers { reader.join() }
        stop.set()
        hammer.join()
        let counts = domain._lockCounts()
        #expect(counts.rseq &+ counts.atomic == UInt64(2 * 2 * perThread))
        #expect(domain._openSections() == 0)
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
