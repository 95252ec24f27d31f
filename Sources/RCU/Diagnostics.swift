#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import _RCUShims

// Stall warnings and statistics. Nothing here touches the read side: every
// count is kept by grace-period leaders, synchronize() callers and the
// reclamation worker.

/// A grace period that has waited longer than the domain's
/// ``RCUDomain/Configuration/stallTimeout`` for its readers.
///
/// The kernel's RCU CPU stall warnings are the model: the report names what
/// the grace period waits for, so the reader holding it up can be found.
public struct RCUStallReport: Sendable, CustomStringConvertible {
    /// A counter slot whose read sections do not balance.
    public struct Slot: Sendable, Equatable {
        /// The slot: a CPU number (for atomic-path readers, the CPU or a
        /// hash of the thread that entered).
        public let cpu: Int
        /// Sections entered on this slot minus sections ended on it, for the
        /// index waited for, since that index was last drained. Positive on
        /// the slot where a stalled reader entered; a section that began on
        /// one CPU and ended on another since then shows as a +1 and a -1.
        public let balance: Int
    }

    /// The domain (its description).
    public let domain: String
    /// The period index the grace period waits to drain (0 or 1).
    public let index: Int
    /// The slots whose counts for `index` do not balance.
    public let slots: [Slot]
    /// How long the grace period has waited so far.
    public let waited: Duration
    /// Callbacks and retired objects waiting for grace periods.
    public let pendingCallbacks: Int
    /// 1 for the first report of this stall, 2 for the next one a
    /// `stallTimeout` later, and so on.
    public let number: Int
    /// Blocking waits of this domain (``RCUDomain/synchronize()``,
    /// ``RCUDomain/synchronize(until:)``, ``RCUDomain/barrier()``) that
    /// threads are running from inside a `read {}` section, of this or any
    /// other domain.
    ///
    /// Release builds do not track which domain a thread's sections belong
    /// to, so they cannot stop a `synchronize()` inside a section of its own
    /// domain; such a call waits for itself forever. A nonzero value here is
    /// the likely cause of the stall. Token sections (``RCUDomain/lock()``)
    /// are not counted.
    public let waitsInsideReadSections: Int

    public var description: String {
        let slotText = slots.isEmpty
            ? "no slot unbalanced (a reader is between its increments)"
            : slots.map { "\($0.cpu) (\($0.balance > 0 ? "+" : "")\($0.balance))" }.joined(separator: ", ")
        let seconds = Double(waited.components.seconds) + Double(waited.components.attoseconds) * 1e-18
        return "swift-rcu: grace period of \(domain) stalled for \(_format(seconds)) s waiting for readers of index \(index);"
            + " unbalanced CPU slots: \(slotText); \(pendingCallbacks) callbacks pending (report \(number))"
            + (waitsInsideReadSections == 0 ? "" :
                "; \(waitsInsideReadSections) synchronize/barrier call(s) waiting inside read {} sections:"
                + " one inside a section of this domain waits for itself")
    }
}

/// A latency distribution, from a log-bucket histogram (each power of two
/// split into 8 buckets: values are exact to within 12.5%).
public struct RCULatencySummary: Sendable, Equatable {
    /// Samples recorded.
    public var count: UInt64
    /// Median (upper bound of its bucket).
    public var p50: Duration
    /// 99th percentile (upper bound of its bucket).
    public var p99: Duration
    /// Largest sample, exact.
    public var max: Duration
}

/// What a domain has done: a value, read with ``RCUDomain/statistics``.
///
/// Always on, and free on the read side: read sections count nothing here.
public struct RCUStatistics: Sendable, CustomStringConvertible {
    /// The domain's mode.
    public var mode: RCUMode
    /// Grace periods completed.
    public var gracePeriods: UInt64
    /// Duration of each grace period, from its start to the end of its wait.
    public var gracePeriodLatency: RCULatencySummary
    /// Calls of `synchronize()` and `synchronize(until:)` that waited.
    public var synchronizeCalls: UInt64
    /// Of those, the calls that ran no grace period of their own: another
    /// caller's grace period covered them.
    public var synchronizeCallsSharingAGracePeriod: UInt64
    /// Callbacks and retired objects queued (`retire`, `defer`, barrier
    /// markers) since the domain was created.
    public var callbacksQueued: Int
    /// Of those, run or released.
    public var callbacksRun: Int
    /// Queued and not yet run.
    public var pendingCallbacks: Int
    /// The largest `pendingCallbacks` the worker has seen.
    public var peakPendingCallbacks: Int
    /// How long the grace period running now has waited; zero when none runs.
    public var longestCurrentWait: Duration
    /// Stall reports made (see ``RCUStallReport``).
    public var stallReports: UInt64
    /// Times a retire stopped waiting for memory at the bound because
    /// nothing progressed for a stall timeout (see ``RCUDomain/retire(_:)``):
    /// the pending count may then have gone past
    /// ``RCUDomain/pendingCallbacksCeiling``.
    public var memoryBoundOverruns: UInt64

    public var description: String {
        func text(_ duration: Duration) -> String {
            let ns = Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) * 1e-9
            if ns == 0 { return "0" }
            if ns >= 1e9 { return _format(ns / 1e9) + " s" }
            if ns >= 1e6 { return _format(ns / 1e6) + " ms" }
            if ns >= 1e3 { return _format(ns / 1e3) + " us" }
            return _format(ns) + " ns"
        }
        let latency = gracePeriodLatency
        return "\(mode): \(gracePeriods) grace periods (p50 \(text(latency.p50)), p99 \(text(latency.p99)), max \(text(latency.max)));"
            + " \(synchronizeCalls) synchronize calls, \(synchronizeCallsSharingAGracePeriod) shared;"
            + " callbacks \(callbacksQueued) queued, \(callbacksRun) run, \(pendingCallbacks) pending (peak \(peakPendingCallbacks));"
            + " current wait \(text(longestCurrentWait)); \(stallReports) stall reports"
            + (memoryBoundOverruns == 0 ? "" : "; \(memoryBoundOverruns) memory-bound overruns")
    }
}

/// Three significant digits, without Foundation.
private func _format(_ value: Double) -> String {
    if value >= 100 { return String(Int(value.rounded())) }
    let scaled = (value * (value >= 10 ? 10 : 100)).rounded()
    let digits = value >= 10 ? 1 : 2
    let whole = Int(scaled) / (digits == 1 ? 10 : 100)
    let fraction = Int(scaled) % (digits == 1 ? 10 : 100)
    let fractionText = String(fraction)
    return "\(whole)." + String(repeating: "0", count: digits - fractionText.count) + fractionText
}

/// Log-bucket histogram of nanosecond durations: bucket `8 * e + m` holds
/// values whose highest set bit is `e` and whose next three bits are `m`.
internal struct _LatencyHistogram {
    private var buckets = [UInt64](repeating: 0, count: 64 * 8)
    private(set) var count: UInt64 = 0
    private(set) var max: UInt64 = 0

    mutating func record(_ nanoseconds: UInt64) {
        let value = Swift.max(nanoseconds, 1)
        let exponent = 63 - value.leadingZeroBitCount
        let mantissa = exponent >= 3 ? Int((value >> UInt64(exponent - 3)) & 7) : Int(value << UInt64(3 - exponent)) & 7
        buckets[exponent * 8 + mantissa] &+= 1
        count &+= 1
        if value > max { max = value }
    }

    /// The upper bound of the bucket holding the `fraction` quantile.
    func quantile(_ fraction: Double) -> UInt64 {
        guard count > 0 else { return 0 }
        let rank = UInt64((Double(count) * fraction).rounded(.up))
        var seen: UInt64 = 0
        // An index loop, not `enumerated()`: unspecialised, that asks the
        // Swift runtime for generic metadata under a lock, which a forked
        // child can find held by a thread that no longer exists (a child
        // reading `statistics` hung there once in ~20,000 forks).
        var index = 0
        while index < buckets.count {
            seen &+= buckets[index]
            if buckets[index] > 0 && seen >= rank {
                let exponent = index / 8
                let mantissa = UInt64(index % 8)
                let upper = exponent >= 3
                    ? ((8 + mantissa + 1) << UInt64(exponent - 3)) - 1
                    : (8 + mantissa + 1) >> UInt64(3 - exponent)
                return Swift.min(upper, max)
            }
            index += 1
        }
        return max
    }

    var summary: RCULatencySummary {
        RCULatencySummary(count: count, p50: .nanoseconds(Int64(quantile(0.5))),
                          p99: .nanoseconds(Int64(quantile(0.99))), max: .nanoseconds(Int64(max)))
    }
}

/// Counts kept outside the grace-period lock, so a stall handler (which
/// runs under it) can read ``RCUDomain/statistics``.
internal struct _DomainStatistics {
    var latency = _LatencyHistogram()
    var synchronizeCalls: UInt64 = 0
    var sharedCalls: UInt64 = 0
    var stallReports: UInt64 = 0
}

extension RCUDomain {
    /// What this domain has done so far.
    ///
    /// - Complexity: O(possible CPUs) plus the histogram's 512 buckets.
    public var statistics: RCUStatistics {
        let stats = _statistics.withLock { $0 }
        let started = _gpStartedAt.load(ordering: .relaxed)
        let now = _monotonicNanoseconds()
        // Run before queued: items are counted as queued before they can
        // run, so this order never shows more run than queued.
        let run = _reclaimer.processed.load(ordering: .acquiring)
        let queued = _reclaimer.totalEnqueued(self)
        return RCUStatistics(
            mode: mode,
            gracePeriods: gracePeriodsCompleted,
            gracePeriodLatency: stats.latency.summary,
            synchronizeCalls: stats.synchronizeCalls,
            synchronizeCallsSharingAGracePeriod: stats.sharedCalls,
            callbacksQueued: queued,
            callbacksRun: run,
            pendingCallbacks: pendingCallbacks,
            peakPendingCallbacks: peakPendingCallbacks,
            longestCurrentWait: started == 0 || now < started ? .zero : .nanoseconds(Int64(now - started)),
            stallReports: stats.stallReports,
            memoryBoundOverruns: _reclaimer.boundOverruns.load(ordering: .relaxed))
    }

    /// Receives this domain's stall reports (see
    /// ``Configuration/stallTimeout``). The default writes each report as one
    /// line on standard error.
    ///
    /// - Warning: The handler runs on the thread whose grace period stalled,
    ///   while it holds the domain's grace-period lock: it must return
    ///   promptly. Calling ``synchronize()``, ``synchronize(until:)`` or
    ///   ``barrier()`` of this domain from it would wait for itself and stops
    ///   the process with a message instead. `retire` and `defer` never wait
    ///   there, even past the memory bound. Reading ``statistics`` is fine.
    public var stallHandler: @Sendable (RCUStallReport) -> Void {
        get { _stallHandler.withLock { $0 } }
        set { _stallHandler.withLock { $0 = newValue } }
    }

    /// The default stall handler: one line on standard error.
    public static let defaultStallHandler: @Sendable (RCUStallReport) -> Void = { report in
        // write(2) on descriptor 2: no shared FILE state, one system call
        // per line (short writes to a terminal or pipe are not split here).
        var line = report.description + "\n"
        line.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    }

    /// The slots whose balance of `index` moved since it was last drained:
    /// the slots a stall report names.
    internal func _unbalancedSlots(_ index: Int, baseline: [Int64]) -> [RCUStallReport.Slot] {
        var slots: [RCUStallReport.Slot] = []
        for slot in 0..<_slotCount {
            let balance = rcu_shim_slot_balance(_state, UInt32(slot), index)
                &- (slot < baseline.count ? baseline[slot] : 0)
            if balance != 0 { slots.append(RCUStallReport.Slot(cpu: slot, balance: Int(balance))) }
        }
        return slots
    }

    /// Reports a stall if the running grace period has reached its next
    /// report time. Called by the grace-period leader while it waits.
    internal func _checkStall(index: Int, baseline: [Int64], _ stall: inout _StallClock) {
        guard stall.timeout > 0 else { return }
        let now = _monotonicNanoseconds()
        guard now >= stall.nextReport else { return }
        stall.reports += 1
        stall.nextReport = _StallClock.adding(stall.timeout, to: now)
        let report = RCUStallReport(
            domain: description, index: index, slots: _unbalancedSlots(index, baseline: baseline),
            waited: .nanoseconds(Int64(now - stall.started)), pendingCallbacks: pendingCallbacks,
            number: stall.reports, waitsInsideReadSections: _waitsInsideReadSections.load(ordering: .relaxed))
        _statistics.withLock { $0.stallReports &+= 1 }
        let handler = stallHandler
        let outer = rcu_shim_in_stall_handler()
        rcu_shim_set_in_stall_handler(_id)
        handler(report)
        rcu_shim_set_in_stall_handler(outer)
    }
}

extension RCUDomain {
    /// Runs the blocking wait `wait`, counted in `_waitsInsideReadSections`
    /// while it runs if the calling thread is inside a `read {}` section.
    /// One thread-local load when it is not.
    @inline(__always)
    internal func _noteReadDepth<Result>(_ wait: () -> Result) -> Result {
        guard rcu_shim_depth() > 0 else { return wait() }
        _waitsInsideReadSections.add(1, ordering: .relaxed)
        defer { _waitsInsideReadSections.subtract(1, ordering: .relaxed) }
        return wait()
    }
}

/// The stall schedule of one grace period.
internal struct _StallClock {
    let started: UInt64
    let timeout: UInt64
    var nextReport: UInt64
    var reports = 0

    init(started: UInt64, timeout: UInt64) {
        self.started = started
        self.timeout = timeout
        nextReport = Self.adding(timeout, to: started)
    }

    /// `time + timeout`, saturating: a timeout of years means "never".
    static func adding(_ timeout: UInt64, to time: UInt64) -> UInt64 {
        let (sum, overflow) = time.addingReportingOverflow(timeout)
        return overflow ? .max : sum
    }
}
