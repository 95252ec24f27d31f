#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) @testable import RCU
import Synchronization
import RCUTestSupport
import Testing

@Suite("Grace periods", .serialized, .timeLimit(.minutes(10)))
struct GracePeriodTests {
    /// A reader enters, then lingers 50 ms, sets `released`, and unlocks;
    /// meanwhile this thread calls synchronize(). Returns whether
    /// synchronize() returned only after `released` was set.
    private func synchronizeOutlastsEarlierReader(_ domain: RCUDomain) -> Bool {
        let entered = Flag()
        let released = Flag()
        let reader = TestThread {
            let token = domain.lock()
            entered.set()
            sleepMicroseconds(50_000)  // give synchronize time to start waiting
            released.set()
            domain.unlock(token)
        }
        #expect(entered.wait())
        domain.synchronize()
        let outlasted = released.isSet
        reader.join()
        return outlasted
    }

    @Test("synchronize waits for a reader that began before it", arguments: TestMode.withCanary)
    func waitsForEarlierReader(mode: TestMode) {
        let outlasted = synchronizeOutlastsEarlierReader(mode.makeDomain())
        expectViolations(outlasted ? 0 : 1, in: mode, "synchronize() returned while an earlier reader was inside")
    }

    @Test("synchronize does not wait for readers that began after its flip", arguments: TestMode.allCases)
    func doesNotWaitForLaterReader(mode: TestMode) {
        let domain = mode.makeDomain()
        let early = domain.lock()
        let periodBefore = domain._currentPeriod
        let finished = Flag()
        let updater = TestThread {
            domain.synchronize()
            finished.set()
        }
        // The updater flips once it sees the early reader; readers that start
        // after the flip count under the new index.
        #expect(waitUntil { domain._currentPeriod != periodBefore })
        let late = domain.lock()
        domain.unlock(early)
        let returned = finished.wait(seconds: 30)
        domain.unlock(late)
        updater.join()
        #expect(returned, "synchronize() waited for a reader that began after the flip")
    }

    @Test("a fast path with no readers, and counts balance afterwards", arguments: TestMode.allCases)
    func idleSynchronize(mode: TestMode) {
        let domain = mode.makeDomain()
        let before = domain.gracePeriodsCompleted
        for _ in 0..<100 { domain.synchronize() }
        #expect(domain.gracePeriodsCompleted == before + 100)
        #expect(domain._gracePeriodCounters.flips == 0)
        #expect(domain._openSections() == 0)
    }

    @Test("concurrent callers share grace periods", arguments: TestMode.withCanary)
    func concurrentCallersShare(mode: TestMode) {
        let domain = mode.makeDomain()
        let token = domain.lock()
        let callers = 8
        let returned = Atomic<Int>(0)
        let started = Atomic<Int>(0)
        let released = Flag()
        let early = Atomic<Int>(0)
        var threads: [TestThread] = []
        for _ in 0..<callers {
            threads.append(TestThread {
                started.add(1, ordering: .relaxed)
                domain.synchronize()
                if !released.isSet { early.add(1, ordering: .relaxed) }
                returned.add(1, ordering: .relaxed)
            })
        }
        #expect(waitUntil { started.load(ordering: .relaxed) == callers })
        sleepMicroseconds(200_000)  // let every caller reach its wait
        let before = domain.gracePeriodsCompleted
        released.set()
        domain.unlock(token)
        for thread in threads { thread.join() }
        let returnedValue = returned.load(ordering: .relaxed)
        #expect(returnedValue == callers)
        let earlyValue = early.load(ordering: .relaxed)
        expectViolations(earlyValue, in: mode, "a caller returned while the reader was inside")
        // All eight began during the first grace period (or before it), so
        // one more covers the rest.
        if !mode.isCanary { #expect(domain.gracePeriodsCompleted - before <= 2) }
    }

    @Test("torture: readers never see a poisoned object", arguments: TestMode.withCanary)
    func torture(mode: TestMode) {
        let torture = PoisonTorture(domain: mode.makeDomain())
        if mode.isCanary {
            // A bound, not a duration: it stops at the first violation
            // (usually well under a second; once 20 s ran out in a
            // ThreadSanitizer run on a loaded 2-CPU machine).
            torture.run(seconds: threadSanitizerBuild ? 60 : 20, stopOnViolation: true)
        } else {
            torture.run(seconds: 2)
        }
        let (reads, updates, violations) = torture.counts
        #expect(updates > 0)
        #expect(reads > 0)
        expectViolations(violations, in: mode, "a reader saw a poisoned object")
        if !mode.isCanary { #expect(torture.domain._openSections() == 0) }
    }
}
