// `rcu-stress storm`: the memory-bound check. Retiring threads flood a domain
// with a small maxPendingCallbacks while one reader stalls inside a read
// section for a while; nothing can be reclaimed during the stall, so the
// retirers must wait instead of queueing without bound.
//
// The peak is counted, not sampled: every StormObject adds 1 to `outstanding`
// just before it is retired and subtracts 1 in its deinit, and the peak is a
// CAS-max at each increment. Every increment of an object comes before its
// decrement in the counter's modification order (the retire hands the object
// to the worker, which releases it), so the count at any moment is the
// number of objects retired and not yet deinitialised, plus at most one per
// retirer that counted its object and has not yet queued it: an upper bound
// on what the library holds, off by at most the number of retirers. The
// library's own `peakPendingCallbacks` (sampled where the library looks) is
// reported beside it; `within_bound` is judged on the exact one.
import ArgumentParser
import Glibc
import RCU
import Synchronization

struct StormCommand: StressCommand {
    static let configuration = CommandConfiguration(
        commandName: "storm",
        abstract: "Retire flood against a small memory bound while one reader stalls.",
        discussion: """
            --retirers threads retire objects as fast as they can into a domain whose \
            maxPendingCallbacks is --bound, while one reader stalls inside a section for --stall \
            seconds (from second 1). The peak pending is counted at each retire, not sampled. \
            Exit 0 when that peak stayed within the library's ceiling (bounds under 1024 per \
            possible CPU act as that one and are reported, not judged) and every retired object was \
            deinitialised after barrier(); 1 otherwise; 130/143 on SIGINT/SIGTERM.
            """)

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds to run.", valueName: "seconds"))
    var duration = 60.0

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds the reader stalls.", valueName: "seconds"))
    var stall = 5.0

    @Option(parsing: .unconditional, help: ArgumentHelp("The domain's maxPendingCallbacks (1 to 2^30).", valueName: "n"))
    var bound = 65_536

    @Option(parsing: .unconditional, help: ArgumentHelp("Retiring threads (1 to 64).", valueName: "n"))
    var retirers = 2

    @Flag(help: "Print one JSON object on stdout, nothing else.")
    var json = false

    mutating func validate() throws {
        try checkSeconds(duration, option: "--duration")
        try checkSeconds(stall, option: "--stall")
        try checkCount(bound, option: "--bound", range: 1...(1 << 30))
        try checkCount(retirers, option: "--retirers", range: 1...64)
    }

    func execute() -> Int32 {
        runStorm(StormOptions(duration: duration, stall: stall, bound: bound, retirers: retirers, json: json))
    }
}

struct StormOptions {
    var duration = 60.0
    var stall = 5.0
    var bound = 65_536
    var retirers = 2
    var json = false
}

/// Counts of the storm's objects, shared with their deinit.
final class StormCounts: Sendable {
    /// Retired (or about to be) and not yet deinitialised.
    let outstanding = Atomic<Int>(0)
    /// The largest value `outstanding` reached.
    let peak = Atomic<Int>(0)
    let deinitialised = Atomic<Int>(0)

    /// Counts one object about to be retired; call just before `retire`.
    @inline(__always)
    func willRetire() {
        let now = outstanding.wrappingAdd(1, ordering: .relaxed).newValue
        // A plain load first: the CAS-max runs only when the peak grows.
        if now > peak.load(ordering: .relaxed) { _ = peak.max(now, ordering: .relaxed) }
    }
}

final class StormObject {
    var payload: (Int, Int, Int, Int) = (0, 0, 0, 0)
    let counts: StormCounts
    init(_ counts: StormCounts) { self.counts = counts }
    deinit {
        counts.outstanding.wrappingSubtract(1, ordering: .relaxed)
        counts.deinitialised.wrappingAdd(1, ordering: .relaxed)
    }
}


/// Runs the storm; returns the process exit code.
func runStorm(_ options: StormOptions) -> Int32 {
    var configuration = RCUDomain.Configuration()
    configuration.maxPendingCallbacks = options.bound
    let domain = RCUDomain(configuration: configuration)
    let counts = StormCounts()
    let stop = StopFlag()
    let retired = Atomic<Int>(0)

    // One retire and a barrier on this thread before any other thread
    // exists: the reclamation worker is then the process's second thread,
    // which scripts/cli-check.sh relies on to make its start fail
    // (RLIMIT_NPROC) and look for the library's message.
    counts.willRetire()
    domain.retire(StormObject(counts))
    domain.barrier()
    retired.add(1, ordering: .relaxed)

    let start = nowNanoseconds()
    let stalledReader = StressThread {
        // Stall once, a second into the run (a signal ends the stall).
        if Interrupt.sleep(min(1, options.duration / 4)) {
            _ = domain.read { Interrupt.sleep(options.stall) }
        }
    }
    var retirers: [StressThreadBox] = []
    for _ in 0..<options.retirers {
        retirers.append(StressThreadBox(StressThread {
            var count = 0
            while !stop.isSet && !Interrupt.isRequested {
                for _ in 0..<256 {
                    counts.willRetire()
                    domain.retire(StormObject(counts))
                }
                count += 256
            }
            retired.add(count, ordering: .relaxed)
        }))
    }
    var progress = ProgressLine()
    while Double(nowNanoseconds() - start) / 1e9 < options.duration && !Interrupt.isRequested {
        progress.show("storm \(fixed(Double(nowNanoseconds() - start) / 1e9, 1))s"
            + " deinitialised \(counts.deinitialised.load(ordering: .relaxed))"
            + " outstanding \(counts.outstanding.load(ordering: .relaxed)) peak \(counts.peak.load(ordering: .relaxed))")
        Interrupt.sleep(min(0.25, options.duration - Double(nowNanoseconds() - start) / 1e9))
    }
    progress.clear()
    stop.set()
    for thread in retirers { thread.join() }
    stalledReader.join()
    domain.barrier()
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let exactPeak = counts.peak.load(ordering: .relaxed)
    let libraryPeak = domain.peakPendingCallbacks
    let total = retired.load(ordering: .relaxed)
    let deinitialised = counts.deinitialised.load(ordering: .relaxed)
    let pendingAfterBarrier = domain.pendingCallbacks
    // Every retired object must have been deinitialised by the barrier.
    let leaked = total - deinitialised
    // The library promises its ceiling: the bound itself from 1,024 per
    // possible CPU on, and 1,024 per possible CPU for smaller bounds.
    let ceiling = domain.pendingCallbacksCeiling
    let withinBound = exactPeak <= ceiling
    let guaranteed = options.bound >= ceiling
    let passed = withinBound && leaked == 0 && pendingAfterBarrier == 0
    if options.json {
        emit(JSON.object([
            ("tool", .string("rcu-stress")), ("command", .string("storm")),
            ("duration_s", .number((seconds * 1000).rounded() / 1000)), ("stall_s", .number(options.stall)),
            ("retirers", .integer(Int64(options.retirers))), ("bound", .integer(Int64(options.bound))),
            ("retired", .integer(Int64(total))), ("peak_pending", .integer(Int64(exactPeak))),
            ("peak_pending_exact", .integer(Int64(exactPeak))),
            ("peak_pending_library", .integer(Int64(libraryPeak))),
            ("pending_after_barrier", .integer(Int64(pendingAfterBarrier))),
            ("deinitialised", .integer(Int64(deinitialised))), ("leaked", .integer(Int64(leaked))),
            ("within_bound", .bool(withinBound)), ("bound_guaranteed", .bool(guaranteed)),
            ("ceiling", .integer(Int64(ceiling))),
            ("interrupted", .bool(Interrupt.isRequested)),
        ]).render())
    } else {
        emit("rcu-stress storm: \(Machine.current.summary)")
        emit("\(options.retirers) retirers for \(fixed(seconds, 1)) s, one reader stalled \(fixed(options.stall, 1)) s:"
            + " retired \(total) (\(formatDouble(Double(total) / seconds, significant: 4))/s),"
            + " peak pending \(exactPeak) of bound \(options.bound)"
            + (guaranteed ? "" : " (ceiling \(ceiling): bounds below 1,024 per possible CPU act as that)")
            + ": \(withinBound ? "within" : "EXCEEDED")")
        emit("peak counted at each retire (retired and not yet deinitialised; over-counts by at most the"
            + " \(options.retirers) retirers in flight): \(exactPeak); the library's peakPendingCallbacks: \(libraryPeak);"
            + " after barrier(): \(pendingAfterBarrier) pending, \(leaked) retired objects not deinitialised")
        if Interrupt.isRequested { emit("interrupted: partial results") }
    }
    return passed ? 0 : 1
}
