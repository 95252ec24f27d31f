#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) @testable import RCU
import Synchronization
import RCUTestSupport
import Testing

/// Counts deinitialisations, and those that came before a grace period had
/// passed since the object was retired.
final class LifeCounter: Sendable {
    let deinits = Atomic<Int>(0)
    let early = Atomic<Int>(0)
    var counts: (deinits: Int, early: Int) {
        (deinits.load(ordering: .acquiring), early.load(ordering: .acquiring))
    }
}

final class Tracked: @unchecked Sendable {
    // @unchecked Sendable: `retiredAt` is written once before retire and read
    // in deinit, which the grace period orders after it.
    let counter: LifeCounter
    let domain: RCUDomain
    var retiredAt: RCUGracePeriodState?
    init(_ counter: LifeCounter, _ domain: RCUDomain) {
        self.counter = counter
        self.domain = domain
    }
    deinit {
        if let retiredAt, !domain.poll(retiredAt) { counter.early.add(1, ordering: .relaxed) }
        counter.deinits.add(1, ordering: .releasing)
    }
}

@Suite("Reclamation", .serialized)
struct ReclamationTests {
    @Test("every retired object is deinitialised once, after a grace period", arguments: TestMode.allCases)
    func leakAccounting(mode: TestMode) {
        let domain = mode.makeDomain()
        let counter = LifeCounter()
        let perThread = 20_000
        let threads = (0..<2).map { _ in
            TestThread {
                for _ in 0..<perThread {
                    let object = Tracked(counter, domain)
                    object.retiredAt = domain._snapshotState()
                    domain.retire(object)
                }
            }
        }
        for thread in threads { thread.join() }
        domain.barrier()
        let (deinits, early) = counter.counts
        #expect(deinits == 2 * perThread)
        #expect(early == 0)
        #expect(domain.pendingCallbacks == 0)
    }

    @Test("a retired object outlives a reader that began before the retire", arguments: TestMode.allCases)
    func retireWaitsForReader(mode: TestMode) {
        let domain = mode.makeDomain()
        let counter = LifeCounter()
        let box = TokenBox()
        let locker = TestThread { box.put(domain.lock()) }
        locker.join()
        domain.retire(Tracked(counter, domain))
        domain.defer { _ = counter.counts }
        sleepMicroseconds(50_000)  // give the worker every chance to run early
        let beforeUnlock = counter.counts.deinits
        if let token = box.take() { domain.unlock(token) }
        domain.barrier()
        #expect(beforeUnlock == 0, "an object was freed while a reader that could see it was inside")
        #expect(counter.counts.deinits == 1)
    }

    @Test("barrier drains callbacks that queue callbacks")
    func barrierDrainsChains() {
        let domain = RCUDomain()
        let ran = Count()
        @Sendable func chain(_ depth: Int) {
            ran.add()
            if depth > 0 { domain.defer { chain(depth - 1) } }
        }
        domain.defer { chain(9) }
        domain.barrier()
        let count = ran.current
        #expect(count == 10)
    }

    @Test("memory stays under the bound while a reader stalls")
    func backpressureUnderStalledReader() {
        // The bound holds exactly from 1024 per possible CPU (see
        // Configuration.maxPendingCallbacks).
        let bound = max(8192, 1024 * RCUDomain()._slotCount)
        var configuration = RCUDomain.Configuration()
        configuration.maxPendingCallbacks = bound
        let domain = RCUDomain(configuration: configuration)
        let counter = LifeCounter()
        let box = TokenBox()
        let stalledReader = TestThread { box.put(domain.lock()) }
        stalledReader.join()
        let retired = Count()
        let total = 12 * bound
        let retirer = TestThread {
            for _ in 0..<total {
                domain.retire(Tracked(counter, domain))
                retired.add()
            }
        }
        // While the reader stalls nothing can be reclaimed, so the retirer
        // must stop near the bound instead of queueing all of them.
        #expect(waitUntil(seconds: 30) { domain.pendingCallbacks >= bound / 2 })
        sleepMicroseconds(200_000)
        let queuedWhileStalled = retired.current
        if let token = box.take() { domain.unlock(token) }
        retirer.join()
        domain.barrier()
        #expect(queuedWhileStalled <= bound)
        #expect(domain.peakPendingCallbacks <= bound)
        #expect(counter.counts.deinits == total)
    }

    @Test("inside a read section retire never waits, even over the bound")
    func noWaitInsideReadSection() {
        var configuration = RCUDomain.Configuration()
        configuration.maxPendingCallbacks = 1024
        let domain = RCUDomain(configuration: configuration)
        let counter = LifeCounter()
        domain.read {
            for _ in 0..<5_000 { domain.retire(Tracked(counter, domain)) }
        }
        domain.barrier()
        #expect(counter.counts.deinits == 5_000)
    }

    @Test("the worker stops cleanly and restarts on demand")
    func workerStopsAndRestarts() {
        let domain = RCUDomain()
        let counter = LifeCounter()
        for _ in 0..<1000 { domain.retire(Tracked(counter, domain)) }
        domain.stopWorker()
        #expect(counter.counts.deinits == 1000)
        #expect(domain._reclaimer.workerState.load(ordering: .relaxed) == 0)
        for _ in 0..<1000 { domain.retire(Tracked(counter, domain)) }
        domain.barrier()
        #expect(counter.counts.deinits == 2000)
    }

    @Test("polling from several threads completes", arguments: TestMode.allCases)
    func pollingFromThreads(mode: TestMode) {
        let domain = mode.makeDomain()
        let completed = Count()
        let threads = (0..<4).map { _ in
            TestThread {
                for _ in 0..<200 {
                    let state = domain.pollState()
                    if waitUntil(seconds: 30, { domain.poll(state) }) { completed.add() }
                }
            }
        }
        for thread in threads { thread.join() }
        #expect(completed.current == 800)
    }

    @Test("synchronize(until:) returns at once for a completed state")
    func synchronizeUntil() {
        let domain = RCUDomain()
        let state = domain.pollState()
        domain.synchronize(until: state)
        #expect(domain.poll(state))
        let before = domain.gracePeriodsCompleted
        domain.synchronize(until: state)
        #expect(domain.gracePeriodsCompleted == before)
    }

    @Test("async synchronize from many tasks waits for an earlier reader", arguments: TestMode.allCases)
    func asyncSynchronizeFromManyTasks(mode: TestMode) async {
        let domain = mode.makeDomain()
        let box = TokenBox()
        let locker = TestThread { box.put(domain.lock()) }
        locker.join()
        let released = Flag()
        let early = Count()
        let releaser = TestThread {
            sleepMicroseconds(50_000)
            released.set()
            if let token = box.take() { domain.unlock(token) }
        }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask {
                    await domain.synchronize()
                    if !released.isSet { early.add() }
                }
            }
        }
        releaser.join()
        #expect(early.current == 0)
    }

    @Test("async barrier waits for earlier callbacks")
    func asyncBarrier() async {
        let domain = RCUDomain()
        let ran = Count()
        for _ in 0..<100 { domain.defer { ran.add() } }
        await domain.barrier()
        #expect(ran.current == 100)
    }
}
