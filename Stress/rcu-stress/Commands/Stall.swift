// `rcu-stress stall`: the stall-warning check. One reader stays inside a
// read section for `--seconds` while another thread waits in synchronize();
// the domain's stall threshold is `--timeout` (the library's default, 10 s,
// unless given). Expects exactly floor(seconds / timeout) reports, each
// naming a CPU slot with the one open section; exit 0 when that holds.
// `--inside-read` checks the misuse instead: synchronize() inside a read
// section of its own domain, which release builds cannot stop.
import Glibc
import RCU
import Synchronization

struct StallOptions {
    var seconds = 12.0
    var timeout = 10.0
    var json = false
    var insideRead = false
}

func runStall(_ options: StallOptions) -> Int32 {
    if options.insideRead { runInsideRead(options) }
    var configuration = RCUDomain.Configuration()
    configuration.stallTimeout = .nanoseconds(Int64(options.timeout * 1e9))
    let domain = RCUDomain(configuration: configuration)
    let reports = Mutex<[RCUStallReport]>([])
    domain.stallHandler = { report in
        RCUDomain.defaultStallHandler(report)  // the line a user would see
        reports.withLock { $0.append(report) }
    }
    let entered = OneShot()
    let reader = StressThread {
        let token = domain.lock()
        entered.set()
        sleepSeconds(options.seconds)
        domain.unlock(token)
    }
    entered.wait()
    let start = nowNanoseconds()
    domain.synchronize()
    let waited = Double(nowNanoseconds() - start) / 1e9
    reader.join()

    let seen = reports.withLock { $0 }
    let expected = Int((options.seconds / options.timeout).rounded(.down))
    let named = seen.allSatisfy { report in report.slots.contains { $0.balance == 1 } }
    let passed = seen.count == expected && named
    if options.json {
        print(JSON.object([
            ("tool", .string("rcu-stress")), ("command", .string("stall")),
            ("stall_s", .number(options.seconds)), ("timeout_s", .number(options.timeout)),
            ("waited_s", .number((waited * 1000).rounded() / 1000)),
            ("reports", .integer(Int64(seen.count))), ("expected_reports", .integer(Int64(expected))),
            ("slots", .array(seen.map { report in .array(report.slots.map { .integer(Int64($0.cpu)) }) })),
            ("statistics", .string(domain.statistics.description)),
        ]).render())
    } else {
        print("rcu-stress stall: \(Machine.current.summary)")
        print("reader stalled \(fixed(options.seconds, 1)) s, threshold \(fixed(options.timeout, 1)) s:"
              + " synchronize waited \(fixed(waited, 2)) s, \(seen.count) stall report(s), expected \(expected)"
              + (named ? "" : "; a report did not name the reader's slot"))
        print("statistics: \(domain.statistics)")
        print(passed ? "PASS" : "FAIL")
    }
    return passed ? 0 : 1
}

/// synchronize() inside a read section of its own domain waits for itself.
/// A debug build stops at the call with a message; a release build must
/// report it as a stall whose `waitsInsideReadSections` counts the call.
/// The wait can never end, so the first report decides and exits.
private func runInsideRead(_ options: StallOptions) -> Never {
    var configuration = RCUDomain.Configuration()
    configuration.stallTimeout = .nanoseconds(Int64(options.timeout * 1e9))
    let domain = RCUDomain(configuration: configuration)
    domain.stallHandler = { report in
        RCUDomain.defaultStallHandler(report)
        let counted = report.waitsInsideReadSections == 1
        let named = report.slots.contains { $0.balance == 1 }
        let passed = counted && named
        if options.json {
            print(JSON.object([
                ("tool", .string("rcu-stress")), ("command", .string("stall")),
                ("inside_read", .bool(true)), ("timeout_s", .number(options.timeout)),
                ("reports", .integer(1)), ("waits_inside_read_sections", .integer(Int64(report.waitsInsideReadSections))),
                ("slots", .array(report.slots.map { .integer(Int64($0.cpu)) })),
            ]).render())
        } else {
            print("rcu-stress stall --inside-read: \(Machine.current.summary)")
            print("synchronize() inside its own read section, threshold \(fixed(options.timeout, 1)) s: reported"
                  + (counted ? ", the report counts the wait" : ", but waitsInsideReadSections is \(report.waitsInsideReadSections), not 1")
                  + (named ? "" : "; the report did not name the section's slot"))
            print(passed ? "PASS" : "FAIL")
        }
        exit(passed ? 0 : 1)  // flushes stdout; the grace period cannot end, so leave from here
    }
    domain.read { domain.synchronize() }
    print("FAIL: synchronize() inside its own read section returned")
    exit(1)
}
