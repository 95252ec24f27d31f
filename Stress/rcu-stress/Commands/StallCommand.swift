// `rcu-stress stall`: the stall-warning check. One reader stays inside a
// read section for `--seconds` while another thread waits in synchronize();
// the domain's stall threshold is `--timeout` (the library's default, 10 s,
// unless given). Expects floor(seconds / timeout) reports, each naming a CPU
// slot with the one open section; exit 0 when that holds. Where the reader
// leaves at (or within 0.1 s of) a multiple of the timeout, that multiple's
// report races the reader's exit, so one report fewer is accepted too.
// `--inside-read` checks the misuse instead: synchronize() inside a read
// section of its own domain, which release builds cannot stop.
import ArgumentParser
import Glibc
import RCU
import Synchronization

struct StallCommand: StressCommand {
    static let configuration = CommandConfiguration(
        commandName: "stall",
        abstract: "Check the stall reports: a reader stalls while synchronize() waits.",
        discussion: """
            One reader stays inside a read section for --seconds while synchronize() waits, \
            with a stall threshold of --timeout; expects floor(seconds / timeout) reports, each \
            naming the reader's CPU slot (at an exact multiple, one fewer is accepted too: the \
            last report races the reader's exit). --inside-read checks the misuse instead: \
            synchronize() inside a read section of its own domain, which a release build must \
            report (debug builds stop at the call). Exit 0 when the reports are as expected, 1 \
            otherwise, 130/143 on SIGINT/SIGTERM.
            """)

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds the reader stalls (default 12).", valueName: "seconds"))
    var seconds: Double?

    @Option(parsing: .unconditional, help: ArgumentHelp("The stall threshold, in seconds (the library's default).", valueName: "seconds"))
    var timeout = 10.0

    @Flag(help: "synchronize() inside a read section of its own domain instead; its reader never leaves.")
    var insideRead = false

    @Flag(help: "Print one JSON object on stdout, nothing else.")
    var json = false

    mutating func validate() throws {
        if let seconds { try checkSeconds(seconds, option: "--seconds") }
        try checkSeconds(timeout, option: "--timeout")
        if insideRead && seconds != nil {
            throw ValidationError("--seconds does not apply to stall --inside-read: its reader never leaves")
        }
    }

    func execute() -> Int32 {
        runStall(StallOptions(seconds: seconds ?? 12, timeout: timeout, json: json, insideRead: insideRead))
    }
}

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
        // The stall, in steps that show progress; a signal ends it early.
        var progress = ProgressLine()
        let begin = nowNanoseconds()
        while !Interrupt.isRequested {
            let elapsed = Double(nowNanoseconds() - begin) / 1e9
            if elapsed >= options.seconds { break }
            progress.show("stall \(fixed(elapsed, 1))s of \(fixed(options.seconds, 1)) s,"
                + " \(reports.withLock { $0.count }) stall report(s)")
            Interrupt.sleep(min(0.25, options.seconds - elapsed))
        }
        progress.clear()
        domain.unlock(token)
    }
    entered.wait()
    let start = nowNanoseconds()
    domain.synchronize()
    let waited = Double(nowNanoseconds() - start) / 1e9
    reader.join()

    let seen = reports.withLock { $0 }
    let expected = Int((options.seconds / options.timeout).rounded(.down))
    // At (or within 0.1 s of) a multiple k of the timeout, the k-th report
    // races the reader's exit: k - 1 and k are both right.
    let nearest = (options.seconds / options.timeout).rounded()
    let atMultiple = nearest >= 1 && abs(options.seconds - nearest * options.timeout) <= 0.1
    let accepted = atMultiple ? [Int(nearest) - 1, Int(nearest)] : [expected]
    // Every report names the reader's slot, except a racing last one: it may
    // be taken while the reader is between its unlock's increments.
    let racing = atMultiple && seen.count == accepted[1]
    let named = seen.dropLast(racing ? 1 : 0).allSatisfy { report in report.slots.contains { $0.balance == 1 } }
    let interrupted = Interrupt.isRequested
    let passed = accepted.contains(seen.count) && named && !interrupted
    let expectation = atMultiple
        ? "expected \(accepted[0]) or \(accepted[1]) (the reader leaves at a multiple of the timeout, so the last report"
            + " may land before or after it leaves, and need not name its slot)"
        : "expected \(expected)"
    if options.json {
        emit(JSON.object([
            ("tool", .string("rcu-stress")), ("command", .string("stall")),
            ("stall_s", .number(options.seconds)), ("timeout_s", .number(options.timeout)),
            ("waited_s", .number((waited * 1000).rounded() / 1000)),
            ("reports", .integer(Int64(seen.count))), ("expected_reports", .integer(Int64(expected))),
            ("accepted_reports", .array(accepted.map { .integer(Int64($0)) })),
            ("slots", .array(seen.map { report in .array(report.slots.map { .integer(Int64($0.cpu)) }) })),
            ("statistics", .string(domain.statistics.description)),
            ("interrupted", .bool(interrupted)),
        ]).render())
    } else {
        emit("rcu-stress stall: \(Machine.current.summary)")
        emit("reader stalled \(fixed(options.seconds, 1)) s, threshold \(fixed(options.timeout, 1)) s:"
            + " synchronize waited \(fixed(waited, 2)) s, \(seen.count) stall report(s), \(expectation)"
            + (named ? "" : "; a report did not name the reader's slot"))
        emit("statistics: \(domain.statistics)")
        emit(interrupted ? "interrupted: partial results" : passed ? "PASS" : "FAIL")
    }
    return passed ? 0 : 1
}

/// synchronize() inside a read section of its own domain waits for itself.
/// A debug build stops at the call with a message; a release build must
/// report it as a stall whose `waitsInsideReadSections` counts the call.
/// The wait can never end, so the first report decides and exits; a signal
/// before it is handled by a thread of its own, which says so and exits.
private func runInsideRead(_ options: StallOptions) -> Never {
    var configuration = RCUDomain.Configuration()
    configuration.stallTimeout = .nanoseconds(Int64(options.timeout * 1e9))
    let domain = RCUDomain(configuration: configuration)
    domain.stallHandler = { report in
        RCUDomain.defaultStallHandler(report)
        let counted = report.waitsInsideReadSections == 1
        let named = report.slots.contains { $0.balance == 1 }
        let passed = counted && named
        emitInsideRead(options, report: report, message: "reported"
            + (counted ? ", the report counts the wait" : ", but waitsInsideReadSections is \(report.waitsInsideReadSections), not 1")
            + (named ? "" : "; the report did not name the section's slot"), passed: passed)
        finish(passed ? 0 : 1)  // the grace period cannot end, so leave from here
    }
    _ = StressThread {
        while Interrupt.sleep(3600) {}
        emitInsideRead(options, report: nil, message: "interrupted before the first report", passed: false)
        finish(1)
    }
    domain.read { domain.synchronize() }
    emit("FAIL: synchronize() inside its own read section returned")
    finish(1)
}

private func emitInsideRead(_ options: StallOptions, report: RCUStallReport?, message: String, passed: Bool) {
    if options.json {
        emit(JSON.object([
            ("tool", .string("rcu-stress")), ("command", .string("stall")),
            ("inside_read", .bool(true)), ("timeout_s", .number(options.timeout)),
            ("reports", .integer(report == nil ? 0 : 1)),
            ("waits_inside_read_sections", .integer(Int64(report?.waitsInsideReadSections ?? 0))),
            ("slots", .array((report?.slots ?? []).map { .integer(Int64($0.cpu)) })),
            ("interrupted", .bool(report == nil)),
        ]).render())
    } else {
        emit("rcu-stress stall --inside-read: \(Machine.current.summary)")
        emit("synchronize() inside its own read section, threshold \(fixed(options.timeout, 1)) s: \(message)")
        emit(report == nil ? "interrupted: partial results" : passed ? "PASS" : "FAIL")
    }
}
