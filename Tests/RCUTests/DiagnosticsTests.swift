// Stall reports and statistics. Timing enters only as bounds and
// thresholds: a stalled reader is released by the first report, and that
// report's handler returns only after the reader has left, so "exactly one
// report" does not depend on how fast the machine is. (Before the handler
// waited, a loaded machine once let the reader take longer than a second
// timeout to leave: two reports.)
import RCU
import RCUTestSupport
import Synchronization
import Testing

/// Collects stall reports.
final class StallCollector: Sendable {
    // The library's pthread mutex, not Synchronization.Mutex, whose futex
    // ThreadSanitizer cannot see (a false race report under --sanitize=thread).
    let reports = _RCUMutex<[RCUStallReport]>([])
    let first = Flag()
    /// Set by the stalled reader once it has left its section.
    let readerLeft = Flag()
    /// Whether the first report's handler waits for `readerLeft`.
    let holdsFirstReport: Bool

    init(holdsFirstReport: Bool = false) {
        self.holdsFirstReport = holdsFirstReport
    }

    var handler: @Sendable (RCUStallReport) -> Void {
        { report in
            let count = self.reports.withLock { reports in
                reports.append(report)
                return reports.count
            }
            self.first.set()
            if self.holdsFirstReport && count == 1 { _ = self.readerLeft.wait(seconds: 60) }
        }
    }
}

/// A thread inside a token section of `domain` until `release` holds
/// (bounded); `entered` is set once the section is open, `left` (if given)
/// once it has ended.
private func holdSection(
    _ domain: RCUDomain, entered: Flag, left: Flag? = nil, until release: @escaping @Sendable () -> Bool
) -> TestThread {
    TestThread {
        let token = domain.lock()
        entered.set()
        _ = waitUntil(seconds: 60, release)
        domain.unlock(token)
        left?.set()
    }
}

/// The reports of a domain with stall timeout `timeout` while a reader holds
/// up a grace period for 300 ms (long enough for its leader to sleep and
/// check its clock several times).
private func reportsDuringShortStall(timeout: Duration?) -> [RCUStallReport] {
    var configuration = RCUDomain.Configuration(honorsEnvironment: false)
    configuration.stallTimeout = timeout
    let domain = RCUDomain(configuration: configuration)
    let collector = StallCollector()
    domain.stallHandler = collector.handler
    let entered = Flag()
    let release = Flag()
    let reader = holdSection(domain, entered: entered) { release.isSet }
    #expect(entered.wait())
    let waiter = TestThread { domain.synchronize() }
    sleepMicroseconds(300_000)
    release.set()
    waiter.join()
    reader.join()
    #expect(domain.statistics.gracePeriods >= 1)
    return collector.reports.withLock { $0 }
}

@Suite("Diagnostics", .timeLimit(.minutes(10)))
struct DiagnosticsTests {
    @Test("A stalled reader produces one report naming its slot", arguments: TestMode.allCases)
    func stallReport(mode: TestMode) {
        var configuration = mode.configuration
        configuration.stallTimeout = .milliseconds(300)
        let domain = RCUDomain(configuration: configuration)
        let collector = StallCollector(holdsFirstReport: true)
        domain.stallHandler = collector.handler
        let entered = Flag()
        // Held until the grace period reports it.
        let reader = holdSection(domain, entered: entered, left: collector.readerLeft) { collector.first.isSet }
        #expect(entered.wait())
        domain.synchronize()  // returns once the reader, released by the report, leaves
        reader.join()
        let reports = collector.reports.withLock { $0 }
        #expect(reports.count == 1)
        if let report = reports.first {
            #expect(report.number == 1)
            #expect(report.slots.reduce(0) { $0 + $1.balance } == 1, "the one open section: \(report)")
            #expect(report.slots.contains { $0.balance == 1 })
            #expect(report.waited >= .milliseconds(300))
            #expect(report.description.contains("stalled"))
            #expect(report.waitsInsideReadSections == 0)
        }
        #expect(domain.statistics.stallReports == 1)
    }

    @Test("A report counts the synchronize calls waiting inside read sections")
    func waitsInsideReadSections() {
        var configuration = RCUDomain.Configuration(honorsEnvironment: false)
        configuration.stallTimeout = .milliseconds(200)
        let domain = RCUDomain(configuration: configuration)
        let other = RCUDomain(configuration: RCUDomain.Configuration(honorsEnvironment: false))
        let collector = StallCollector(holdsFirstReport: true)
        domain.stallHandler = collector.handler
        let entered = Flag()
        let reader = holdSection(domain, entered: entered, left: collector.readerLeft) { collector.first.isSet }
        #expect(entered.wait())
        // A section of another domain: allowed, and counted, because a release
        // build could not tell it from one of `domain` (which would never end).
        other.read { other.read { domain.synchronize() } }
        reader.join()
        let reports = collector.reports.withLock { $0 }
        #expect(reports.count == 1)
        #expect(reports.first?.waitsInsideReadSections == 1)
        #expect(reports.first?.description.contains("waiting inside read {} sections") == true)
        // The count ends with the wait.
        let later = Flag()
        let second = holdSection(domain, entered: later) { collector.reports.withLock { $0.count } >= 2 }
        #expect(later.wait())
        domain.synchronize()
        second.join()
        #expect(collector.reports.withLock { $0.last?.waitsInsideReadSections } == 0)
    }

    @Test("A stallTimeout too large for nanoseconds means never, not a trap")
    func hugeStallTimeout() {
        #expect(reportsDuringShortStall(timeout: .seconds(Int64.max)).isEmpty)
    }

    @Test("Reports repeat after each further timeout while the stall lasts")
    func repeatedReports() {
        var configuration = RCUDomain.Configuration(honorsEnvironment: false)
        configuration.stallTimeout = .milliseconds(100)
        let domain = RCUDomain(configuration: configuration)
        let collector = StallCollector()
        domain.stallHandler = collector.handler
        let entered = Flag()
        let reader = holdSection(domain, entered: entered) { collector.reports.withLock { $0.count } >= 3 }
        #expect(entered.wait())
        domain.synchronize()
        reader.join()
        let reports = collector.reports.withLock { $0 }
        #expect(reports.prefix(3).map(\.number) == [1, 2, 3])
        // One report per threshold, not one per wake-up of the leader.
        for report in reports {
            #expect(report.waited >= .milliseconds(100 * report.number), "\(report)")
        }
    }

    @Test("No report without a stall, or with reports turned off")
    func noFalseReports() {
        var healthy = RCUDomain.Configuration(honorsEnvironment: false)
        healthy.stallTimeout = .seconds(5)
        let domain = RCUDomain(configuration: healthy)
        let collector = StallCollector()
        domain.stallHandler = collector.handler
        let torture = PoisonTorture(domain: domain)
        torture.run(seconds: 1)
        #expect(torture.counts.violations == 0)
        #expect(collector.reports.withLock { $0.isEmpty })

        #expect(reportsDuringShortStall(timeout: nil).isEmpty)
    }

    @Test("Statistics count grace periods, calls, sharing, callbacks and the current wait", arguments: TestMode.allCases)
    func statistics(mode: TestMode) {
        let domain = mode.makeDomain()
        for _ in 0..<10 { domain.synchronize() }
        var stats = domain.statistics
        #expect(stats.mode == domain.mode)
        #expect(stats.synchronizeCalls == 10)
        #expect(stats.gracePeriods >= 10)
        #expect(stats.gracePeriodLatency.count == stats.gracePeriods)
        #expect(stats.gracePeriodLatency.p50 <= stats.gracePeriodLatency.p99)
        #expect(stats.gracePeriodLatency.p99 <= stats.gracePeriodLatency.max)
        #expect(stats.longestCurrentWait == .zero)

        // Eight callers queued behind one reader share grace periods, and the
        // current wait is visible while they wait.
        let entered = Flag()
        let release = Flag()
        let reader = holdSection(domain, entered: entered) { release.isSet }
        #expect(entered.wait())
        // Every caller must have called synchronize() before the reader
        // leaves, or a late one runs a grace period of its own (seen under
        // the sanitizers, where creating threads is slow): the same
        // start-count and settling pause as `concurrentCallersShare`.
        let started = Count()
        let callers = (0..<8).map { _ in TestThread { started.add(); domain.synchronize() } }
        #expect(waitUntil { started.current == 8 })
        #expect(waitUntil { domain.statistics.longestCurrentWait > .zero })
        sleepMicroseconds(200_000)  // let every caller reach its wait
        release.set()
        for caller in callers { caller.join() }
        reader.join()
        stats = domain.statistics
        #expect(stats.synchronizeCalls == 18)
        #expect(stats.synchronizeCallsSharingAGracePeriod >= 5, "8 callers need at most 3 grace periods")

        final class Retired {}
        for _ in 0..<1000 { domain.retire(Retired()) }
        domain.barrier()
        stats = domain.statistics
        #expect(stats.pendingCallbacks == 0)
        #expect(stats.callbacksQueued >= 1000)
        #expect(stats.callbacksRun == stats.callbacksQueued)
        #expect(stats.peakPendingCallbacks >= 1)
    }
}
