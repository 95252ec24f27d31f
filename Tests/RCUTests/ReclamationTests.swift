#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) @testable import RCU
import Synchronization
import RCUTestSupport
import Testing

@Suite("Reclamation", .serialized, .timeLimit(.minutes(10)))
struct ReclamationTests {
    @Test("every retired object is freed once, and never while a reader can see it", arguments: TestMode.withCanary)
    func leakAccounting(mode: TestMode) {
        let torture = RetireTorture(domain: mode.makeDomain(), chains: 2)
        withWatchdog("retire torture (\(mode))", seconds: 120) {
            torture.run(perChain: mode.isCanary ? 200_000 : 20_000, stopOnViolation: mode.isCanary)
        }
        let retired = torture.retired.load(ordering: .relaxed)
        #expect(torture.reads.load(ordering: .relaxed) > 0)
        #expect(torture.freed.load(ordering: .acquiring) == retired, "\(retired) retired")
        #expect(torture.domain.pendingCallbacks == 0)
        expectViolations(torture.violations.load(ordering: .relaxed), in: mode, "a reader saw a retired object freed")
    }

    @Test("a retired object and a deferred callback outlive a reader that began before them", arguments: TestMode.withCanary)
    func retireWaitsForReader(mode: TestMode) {
        let domain = mode.makeDomain()
        let counter = LiveCount()
        let deferred = Count()
        let box = TokenBox()
        let locker = TestThread { box.put(domain.lock()) }
        locker.join()
        domain.retire(Counted(counter, domain))
        domain.defer { deferred.add() }
        sleepMicroseconds(50_000)  // give the worker every chance to run early
        let beforeUnlock = counter.counts.deinits + deferred.current
        if let token = box.take() { domain.unlock(token) }
        withWatchdog("barrier after the reader left", seconds: 60) { domain.barrier() }
        expectViolations(beforeUnlock, in: mode, "an object was freed or a callback ran while a reader that could see it was inside")
        #expect(counter.counts.deinits == 1)
        #expect(deferred.current == 1)
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

    @Test("memory stays under the bound while a reader stalls, and nothing is freed under it", arguments: TestMode.withCanary)
    func backpressureUnderStalledReader(mode: TestMode) {
        // The bound holds exactly from 1024 per possible CPU (see
        // Configuration.maxPendingCallbacks).
        let bound = max(8192, 1024 * RCUDomain()._slotCount)
        var configuration = mode.configuration
        configuration.maxPendingCallbacks = bound
        let domain = RCUDomain(configuration: configuration)
        let count = LiveCount()
        let box = TokenBox()
        TestThread { box.put(domain.lock()) }.join()
        let retired = Count()
        let perRetirer = 6 * bound
        var freedWhileStalled = 0
        var queuedWhileStalled = 0
        withWatchdog("two retirers against a stalled reader", seconds: 120) {
            let retirers = (0..<2).map { _ in
                TestThread {
                    for _ in 0..<perRetirer {
                        let object = Counted(count, domain)
                        count.willRetire()
                        domain.retire(object)
                        retired.add()
                    }
                }
            }
            // While the reader stalls nothing can be reclaimed, so the
            // retirers must stop near the bound instead of queueing all.
            let filled = waitUntil(seconds: mode.isCanary ? 2 : 30) { domain.pendingCallbacks >= bound / 2 }
            if !mode.isCanary { #expect(filled) }
            sleepMicroseconds(200_000)
            queuedWhileStalled = retired.current
            freedWhileStalled = count.deinits.load(ordering: .acquiring)
            if let token = box.take() { domain.unlock(token) }
            for retirer in retirers { retirer.join() }
            domain.barrier()
        }
        expectViolations(freedWhileStalled, in: mode, "objects retired after the reader entered were freed while it stalled")
        if !mode.isCanary {
            #expect(queuedWhileStalled <= bound)
            #expect(count.peak.load(ordering: .relaxed) <= bound)
        }
        #expect(count.deinits.load(ordering: .acquiring) == 2 * perRetirer)
    }

    @Test("inside a read section retire never waits, even over the bound, and frees nothing early", arguments: TestMode.withCanary)
    func noWaitInsideReadSection(mode: TestMode) {
        var configuration = mode.configuration
        configuration.maxPendingCallbacks = 1024
        let domain = RCUDomain(configuration: configuration)
        // One counter per thread: another thread's section may begin after
        // this one's retires, and those objects may go once this one ends.
        let counters = [LiveCount(), LiveCount()]
        let freedInside = Count()
        withWatchdog("retires over the bound inside read sections", seconds: 60) {
            let threads = counters.map { counter in
                TestThread {
                    domain.read {
                        for _ in 0..<5_000 { domain.retire(Counted(counter, domain)) }
                        sleepMicroseconds(20_000)  // the worker's chance to free early
                        // This section began before every one of them.
                        freedInside.add(counter.counts.deinits)
                    }
                }
            }
            for thread in threads { thread.join() }
            domain.barrier()
        }
        expectViolations(freedInside.current, in: mode, "objects were freed inside the section that retired them")
        #expect(counters.map(\.counts.deinits) == [5_000, 5_000])
    }

    @Test("the worker stops cleanly and restarts on demand")
    func workerStopsAndRestarts() {
        let domain = RCUDomain()
        let counter = LiveCount()
        for _ in 0..<1000 { domain.retire(Counted(counter, domain)) }
        domain.stopWorker()
        #expect(counter.counts.deinits == 1000)
        #expect(domain._reclaimer.workerState.load(ordering: .relaxed) & _Reclaimer.stateMask == 0)
        for _ in 0..<1000 { domain.retire(Counted(counter, domain)) }
        domain.barrier()
        #expect(counter.counts.deinits == 2000)
    }

    @Test("polls from several threads wait for a reader, then complete", arguments: TestMode.withCanary)
    func pollingFromThreads(mode: TestMode) {
        let domain = mode.makeDomain()
        let completed = Count()
        let early = Count()
        withWatchdog("polling rounds", seconds: 120) {
            for _ in 0..<20 {
                let box = TokenBox()
                TestThread { box.put(domain.lock()) }.join()
                let polled = Count()
                let pollers = (0..<4).map { _ in
                    TestThread {
                        let state = domain.pollState()
                        // The reader is inside: the state cannot complete.
                        if domain.poll(state) { early.add() }
                        sleepMicroseconds(2_000)
                        if domain.poll(state) { early.add() }
                        polled.add()
                        if waitUntil(seconds: 30 * sanitizerSlowdown, { domain.poll(state) }) { completed.add() }
                    }
                }
                _ = waitUntil(seconds: 30) { polled.current == 4 }
                if let token = box.take() { domain.unlock(token) }
                for poller in pollers { poller.join() }
            }
        }
        #expect(completed.current == 80)
        expectViolations(early.current, in: mode, "poll() said complete while a reader that began before pollState() was inside")
    }

    @Test("synchronize(until:) waits for a reader, and returns at once for a completed state", arguments: TestMode.withCanary)
    func synchronizeUntil(mode: TestMode) {
        let domain = mode.makeDomain()
        let box = TokenBox()
        TestThread { box.put(domain.lock()) }.join()
        let state = domain.pollState()
        let returned = Flag()
        var returnedEarly = false
        withWatchdog("synchronize(until:) after the reader left", seconds: 60) {
            let waiter = TestThread {
                domain.synchronize(until: state)
                returned.set()
            }
            sleepMicroseconds(20_000)
            returnedEarly = returned.isSet || domain.poll(state)
            if let token = box.take() { domain.unlock(token) }
            waiter.join()
        }
        expectViolations(returnedEarly ? 1 : 0, in: mode, "synchronize(until:) returned while a reader that began before pollState() was inside")
        #expect(domain.poll(state))
        let before = domain.gracePeriodsCompleted
        domain.synchronize(until: state)
        #expect(domain.gracePeriodsCompleted == before)
    }

    @Test("async synchronize from many tasks waits for an earlier reader", arguments: TestMode.withCanary)
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
        expectViolations(early.current, in: mode, "an async synchronize returned while an earlier reader was inside")
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
