// `rcu-stress storm`: the memory-bound check. Retiring threads flood a domain
// with a small maxPendingCallbacks while one reader stalls inside a read
// section for a while; nothing can be reclaimed during the stall, so the
// retirers must wait instead of queueing without bound. Reports the peak
// number pending (sampled by a monitor every millisecond and by the library
// itself) against the bound.
import Glibc
import RCU
import Synchronization

struct StormOptions {
    var duration = 60.0
    var stall = 5.0
    var bound = 65_536
    var retirers = 2
    var json = false
}

final class StormObject {
    var payload: (Int, Int, Int, Int) = (0, 0, 0, 0)
}

/// Runs the storm; returns the process exit code.
func runStorm(_ options: StormOptions) -> Int32 {
    var configuration = RCUDomain.Configuration()
    configuration.maxPendingCallbacks = options.bound
    let domain = RCUDomain(configuration: configuration)
    let stop = StopFlag()
    let retired = Atomic<Int>(0)
    let peakSampled = Atomic<Int>(0)
    let start = nowNanoseconds()

    let stalledReader = StressThread {
        // Stall once, a second into the run.
        sleepSeconds(min(1, options.duration / 4))
        domain.read { sleepSeconds(options.stall) }
    }
    var retirers: [StressThreadBox] = []
    for _ in 0..<options.retirers {
        retirers.append(StressThreadBox(StressThread {
            var count = 0
            while !stop.isSet && !interruptRequested.load(ordering: .relaxed) {
                for _ in 0..<256 { domain.retire(StormObject()) }
                count += 256
            }
            retired.add(count, ordering: .relaxed)
        }))
    }
    let monitor = StressThread {
        while !stop.isSet {
            let pending = domain.pendingCallbacks
            if pending > peakSampled.load(ordering: .relaxed) { peakSampled.store(pending, ordering: .relaxed) }
            sleepSeconds(0.001)
        }
    }
    while Double(nowNanoseconds() - start) / 1e9 < options.duration && !interruptRequested.load(ordering: .relaxed) {
        if stderrIsTerminal {
            writeStandardError("\r\u{1B}[Kstorm \(fixed(Double(nowNanoseconds() - start) / 1e9, 1))s pending \(domain.pendingCallbacks)")
        }
        sleepSeconds(0.25)
    }
    if stderrIsTerminal { writeStandardError("\r\u{1B}[K") }
    stop.set()
    for thread in retirers { thread.join() }
    monitor.join()
    stalledReader.join()
    domain.barrier()
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let peak = max(peakSampled.load(ordering: .relaxed), domain.peakPendingCallbacks)
    let total = retired.load(ordering: .relaxed)
    let withinBound = peak <= options.bound
    if options.json {
        print(JSON.object([
            ("tool", .string("rcu-stress")), ("command", .string("storm")),
            ("duration_s", .number((seconds * 1000).rounded() / 1000)), ("stall_s", .number(options.stall)),
            ("retirers", .integer(Int64(options.retirers))), ("bound", .integer(Int64(options.bound))),
            ("retired", .integer(Int64(total))), ("peak_pending", .integer(Int64(peak))),
            ("pending_after_barrier", .integer(Int64(domain.pendingCallbacks))),
            ("within_bound", .bool(withinBound)),
        ]).render())
    } else {
        print("rcu-stress storm: \(Machine.current.summary)")
        print("\(options.retirers) retirers for \(fixed(seconds, 1)) s, one reader stalled \(fixed(options.stall, 1)) s:"
            + " retired \(total) (\(formatDouble(Double(total) / seconds, significant: 4))/s),"
            + " peak pending \(peak) of bound \(options.bound): \(withinBound ? "within" : "EXCEEDED")")
    }
    return withinBound && domain.pendingCallbacks == 0 ? 0 : 1
}
