// The default tour: torture every flavor with and without faults, show that
// the canary is caught, then run the benchmark suites briefly, and print one
// summary. Exit 0 only if no correct flavor showed a violation or a leak and
// the canary was caught in every run.

/// Runs the tour and returns the process exit code.
func runTour(quick: Bool) -> Int32 {
    installInterruptHandler()
    print("rcu-stress tour\(quick ? " (quick)" : ""): \(Machine.current.summary)")
    let tortureSeconds = quick ? 1.0 : 3.0
    let allFaults = Fault.available
    var results: [TortureResult] = []
    var problems: [String] = []

    for flavor in FlavorName.allCases {
        for faults in [[], allFaults] {
            if interruptRequested.load(ordering: .relaxed) { break }
            var options = TortureOptions()
            options.flavor = flavor
            options.faults = faults
            options.showsProgress = false
            if flavor == .broken {
                // The contract: the canary is caught within 2 s on 2 CPUs.
                options.duration = 2
                options.stopOnViolation = true
            } else {
                options.duration = tortureSeconds
            }
            let faultText = faults.isEmpty ? "no faults" : faults.map(\.rawValue).joined(separator: ",")
            if stderrIsTerminal { writeStandardError("\r\u{1B}[Ktorture \(flavor.rawValue), \(faultText)...") }
            let result = runTorture(options)
            results.append(result)
            if flavor == .broken {
                if result.violations == 0 {
                    problems.append("canary not caught (\(faultText)): the harness cannot fail")
                }
            } else if result.violations > 0 || result.leaked > 0 {
                problems.append("\(flavor.rawValue) (\(faultText)): \(result.violations) violations, \(result.leaked) leaked")
            }
        }
    }
    // The snapshot workload (RCUSnapshot / liburcu's cell), reclaiming by
    // retire, the pointer workload with mixed grace-period modes, and the
    // containers (RCUHashMap / cds_lfht, RCUList / cds_list_rcu), whose
    // canary runs must be caught too.
    for flavor in FlavorName.allCases {
        for (workload, mode) in [(Workload.snapshot, GracePeriodMode.retire), (.pointer, .mixed),
                                 (.hashmap, .sync), (.list, .sync)] {
            if interruptRequested.load(ordering: .relaxed) { break }
            if flavor == .broken && (workload == .snapshot || workload == .pointer) { continue }
            var options = TortureOptions()
            options.flavor = flavor
            options.workload = workload
            options.gracePeriodMode = mode
            // The contract: a canary is caught within 2 s.
            options.duration = flavor == .broken ? 2 : quick ? 1 : 2
            options.stopOnViolation = flavor == .broken
            options.showsProgress = false
            if stderrIsTerminal { writeStandardError("\r\u{1B}[Ktorture \(flavor.rawValue), \(workload.rawValue), --gp \(mode.rawValue)...") }
            let result = runTorture(options)
            results.append(result)
            if flavor == .broken {
                if result.violations == 0 { problems.append("canary not caught (\(workload.rawValue)): the harness cannot fail") }
            } else if result.violations > 0 || result.leaked > 0 {
                problems.append("\(flavor.rawValue) (\(workload.rawValue), --gp \(mode.rawValue)): \(result.violations) violations, \(result.leaked) leaked")
            }
        }
    }
    if stderrIsTerminal { writeStandardError("\r\u{1B}[K") }
    print("\ntorture (\(Int(tortureSeconds)) s per correct pointer run, broken stops at its first violation; snapshot, mixed-mode, hashmap and list runs \(quick ? 1 : 2) s):")
    print(tortureTable(results))

    if !interruptRequested.load(ordering: .relaxed) {
        var storm = StormOptions()
        storm.duration = quick ? 3 : 6
        storm.stall = quick ? 1 : 2
        if runStorm(storm) != 0 { problems.append("storm: reclamation exceeded its memory bound") }
        print("")
    }

    var benchResults: [BenchResult] = []
    if !interruptRequested.load(ordering: .relaxed) {
        var options = BenchOptions()
        options.duration = quick ? 0.15 : 0.3
        options.rounds = 3
        benchResults = runBench(options)
        print("benchmarks (\(options.rounds) interleaved rounds, medians):")
        print(benchTable(benchResults))
    }

    if interruptRequested.load(ordering: .relaxed) {
        problems.append("interrupted: results are partial")
    }
    if problems.isEmpty {
        print("PASS: every correct flavor ran without violations or leaks, and the broken canary was caught in every run.")
        return 0
    }
    print("FAIL:")
    for problem in problems { print("  - \(problem)") }
    return 1
}
