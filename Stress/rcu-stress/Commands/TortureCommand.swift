// `rcu-stress torture`: the command line of one torture run, and its output.
import ArgumentParser

struct TortureCommand: StressCommand {
    static let configuration = CommandConfiguration(
        commandName: "torture",
        abstract: "Torture one flavor on one workload, rcutorture-style, under faults.",
        discussion: """
            Readers check, inside their read sections, that nothing they hold was freed or \
            poisoned while updaters publish, retire and wait for grace periods. A correct \
            flavor's run fails on a violation, a leak, or fewer than 1000 reads and 10 updates \
            per second of its duration. A canary (--flavor broken, or --sabotage) must be caught \
            by the detector it aims at. Exit 0 for the expected outcome, 1 otherwise, 64 for a \
            bad argument, 74 if the result could not be written, 130/143 on SIGINT/SIGTERM.

            Flavors: rcu, rcu-atomic, rcu-fence, rcu-atomic-fence and rcu-seqcst are this \
            library in each of its five modes; liburcu-memb is the reference oracle; broken is a \
            domain whose grace periods do not wait (the canary: it must be caught).
            """)

    @Option(help: "The implementation under test.")
    var flavor: FlavorName = .rcu

    @Option(help: "What the readers and updaters work on.")
    var workload: Workload = .pointer

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Reader threads (default: the online CPUs; 4 per CPU with --faults oversubscribe).",
                               valueName: "n"))
    var readers: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Updater threads (1 to 64).", valueName: "n"))
    var updaters = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds to run.", valueName: "seconds"))
    var duration = 10.0

    @Option(help: ArgumentHelp("How updaters wait for a grace period (mixed: a random one per update).",
                               valueName: "mode"))
    var gp: GracePeriodMode = .sync

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Faults, a comma list of: \(valueList(Fault.self)).", valueName: "list"))
    var faults: String?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Re-reads of the element inside each read section (default 64; 8192 for the broken flavor's hashmap canary).",
                               valueName: "n"))
    var dwell: Int?

    @Option(help: "Break the hashmap or list workload on purpose: the run must be caught by that sabotage's detector (remove-stable: missed_stable; duplicate-stable: duplicates on the hashmap with liburcu-memb, out_of_order on the list).")
    var sabotage: Sabotage?

    @Flag(help: "Stop at the first violation (the tour's canary runs).")
    var stopOnViolation = false

    @Flag(help: "Print one JSON object on stdout (the contract's), nothing else.")
    var json = false

    mutating func validate() throws {
        if let readers { try checkCount(readers, option: "--readers", range: 1...256) }
        try checkCount(updaters, option: "--updaters", range: 1...64)
        try checkSeconds(duration, option: "--duration")
        if let faults { _ = try parseFaults(faults) }
        if let dwell { try checkCount(dwell, option: "--dwell", range: 0...1_000_000) }
        if let sabotage {
            if workload != .hashmap && workload != .list {
                throw ValidationError("--sabotage \(sabotage.rawValue) does not apply to --workload \(workload.rawValue); accepted workloads: hashmap, list")
            }
            if flavor == .broken {
                throw ValidationError("--sabotage does not combine with --flavor broken (already a canary); accepted flavors: \(FlavorName.correct.map(\.rawValue).joined(separator: ", "))")
            }
            if sabotage == .duplicateStable && workload == .hashmap && flavor != .liburcu {
                throw ValidationError("--sabotage duplicate-stable on the hashmap needs --flavor liburcu-memb (RCUHashMap's API cannot hold a key twice); accepted flavors: liburcu-memb")
            }
        }
        if flavor == .broken && workload == .snapshot {
            throw ValidationError("--flavor broken does not run the snapshot workload (RCUSnapshot frees its boxes, so a violation would crash instead of being counted); accepted workloads: pointer, hashmap, list")
        }
    }

    var options: TortureOptions {
        var options = TortureOptions()
        options.flavor = flavor
        options.workload = workload
        options.readers = readers
        options.updaters = updaters
        options.duration = duration
        options.gracePeriodMode = gp
        options.faults = faults.map { (try? parseFaults($0)) ?? [] } ?? []
        options.requestedDwell = dwell
        options.sabotage = sabotage
        options.stopOnViolation = stopOnViolation
        options.json = json
        return options
    }

    func execute() -> Int32 {
        let options = options
        let result = runTorture(options)
        if options.json {
            emit(result.json.render())
        } else {
            emit("rcu-stress torture: \(Machine.current.summary)")
            emit(tortureTable([result]))
            emit("age histogram (0..\(ageBuckets - 1)+): \(result.ageHistogram.map(String.init).joined(separator: " "))")
            if !result.details.isEmpty {
                emit(result.details.map { "\(String($0.0.map { $0 == "_" ? " " : $0 })) \($0.1)" }.joined(separator: ", "))
            }
            if let aimed = result.options.aimedDetector {
                emit("canary aimed at \(aimed): \(result.caught ? "caught" : "NOT caught");"
                    + " detectors fired: \(result.fired.isEmpty ? "none" : result.fired.joined(separator: ", "))")
            } else if !result.fired.isEmpty {
                emit("detectors fired: \(result.fired.joined(separator: ", "))")
            }
            if result.interrupted { emit("interrupted: partial results") }
            if let statistics = result.statistics { emit("statistics: \(statistics)") }
            if let problem = result.problem { emit("FAIL: \(problem)") }
        }
        if StandardOutput.failed {
            // The result went to standard error with the failure; its verdict
            // closes it there, in words.
            let aimed = result.options.aimedDetector.map { " by \($0)" } ?? ""
            let verdict = result.options.isCanary
                ? (result.caught ? "the canary was caught\(aimed)" : "the canary was NOT caught\(aimed)")
                : (result.problem ?? "no violation, no leak, above the floor of work")
            printError("rcu-stress: torture \(result.passed ? "passed" : "FAILED"): \(verdict)")
        }
        // Exit 0 for the expected outcome: a clean run of a correct flavor that
        // did at least the floor of work, or a canary caught by its detector.
        // (An interruption's 128 + n wins, in finish().)
        return result.passed ? 0 : 1
    }
}
