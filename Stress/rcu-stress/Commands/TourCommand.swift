// The default tour: torture every flavor with and without faults (every mode
// of the library under all five faults), show that each canary is caught by
// the detector it is aimed at, check the memory bound, then run the
// benchmark suites briefly, and print one summary. Exit 0 only if no correct
// run showed a violation or a leak or did too little work, and every canary
// was caught.
import ArgumentParser
import Glibc
import RCU

struct TourCommand: StressCommand {
    static let configuration = CommandConfiguration(
        commandName: "tour",
        abstract: "The default tour (what `rcu-stress` alone runs, about 1-2 minutes).",
        discussion: """
            Tortures each workload on each flavor, with and without faults (each mode of the \
            library under all five), runs the canaries (each must be caught by the detector it \
            aims at), the storm, and every benchmark suite briefly, then prints one summary. \
            Exit 0 only if no correct run saw a violation or a leak or did too little work, the \
            memory bound held and every canary was caught; 1 otherwise; 130/143 on \
            SIGINT/SIGTERM (what ran is summarised).
            """)

    @Flag(help: "A short tour (about 20 s).")
    var quick = false

    func execute() -> Int32 {
        runTour(quick: quick)
    }
}

/// The durations of one tour.
private struct TourPlan {
    let quick: Bool
    /// Pointer runs without faults and with all five, per correct flavor.
    var pointerSeconds: Double { quick ? 0.25 : 2 }
    var faultSeconds: Double { quick ? 0.5 : 3 }
    /// Snapshot, mixed grace-period, hashmap and list runs per correct flavor.
    var containerSeconds: Double { quick ? 0.25 : 1.5 }
    /// The contract: a canary is caught within 2 s.
    let canarySeconds = 2.0
}

/// Runs the tour and returns the process exit code.
func runTour(quick: Bool) -> Int32 {
    let plan = TourPlan(quick: quick)
    let tourStart = nowNanoseconds()
    emit("rcu-stress tour\(quick ? " (quick)" : ""): \(Machine.current.summary)")
    var results: [TortureResult] = []
    var canaries: [TortureResult] = []
    var problems: [String] = []
    func interrupted() -> Bool { Interrupt.isRequested }
    func torture(_ options: TortureOptions, label: String) -> TortureResult {
        var options = options
        options.progressLabel = "torture \(label)"
        let result = runTorture(options)
        if let problem = result.problem { problems.append("\(label): \(problem)") }
        return result
    }

    // Pointer runs: every correct flavor without faults and with all five,
    // so each mode of the library runs under migration, signals, churn,
    // oversubscription and fork.
    let allFaults = Fault.allCases
    for flavor in FlavorName.correct {
        for faults in [[], allFaults] where !interrupted() {
            var options = TortureOptions()
            options.flavor = flavor
            options.faults = faults
            options.duration = faults.isEmpty ? plan.pointerSeconds : plan.faultSeconds
            let faultText = faults.isEmpty ? "no faults" : "all faults"
            results.append(torture(options, label: "\(flavor.rawValue) (pointer, \(faultText))"))
        }
    }
    // The snapshot workload (RCUSnapshot / liburcu's cell), reclaiming by
    // retire, the pointer workload with mixed grace-period modes, and the
    // containers (RCUHashMap / cds_lfht, RCUList / cds_list_rcu).
    for flavor in FlavorName.correct {
        for (workload, mode) in [(Workload.snapshot, GracePeriodMode.retire), (.pointer, .mixed),
                                 (.hashmap, .sync), (.list, .sync)] where !interrupted() {
            var options = TortureOptions()
            options.flavor = flavor
            options.workload = workload
            options.gracePeriodMode = mode
            options.duration = plan.containerSeconds
            results.append(torture(options, label: "\(flavor.rawValue) (\(workload.rawValue), --gp \(mode.rawValue))"))
        }
    }
    // The canaries, each stopping at its first violation: the broken flavor
    // (grace periods that do not wait) on the pointer workload without and
    // with faults, and on the containers, where the poison detector must
    // fire; and each sabotage, whose own detector must fire.
    var canaryRuns: [(TortureOptions, String)] = []
    for faults in [[], allFaults] {
        var options = TortureOptions()
        options.flavor = .broken
        options.faults = faults
        canaryRuns.append((options, "canary broken (pointer, \(faults.isEmpty ? "no faults" : "all faults"))"))
    }
    for workload in [Workload.hashmap, .list] {
        var options = TortureOptions()
        options.flavor = .broken
        options.workload = workload
        canaryRuns.append((options, "canary broken (\(workload.rawValue))"))
    }
    for (workload, flavor, sabotage) in [(Workload.hashmap, FlavorName.rcu, Sabotage.removeStable),
                                         (.hashmap, .liburcu, .duplicateStable),
                                         (.list, .rcu, .removeStable), (.list, .rcu, .duplicateStable)] {
        var options = TortureOptions()
        options.flavor = flavor
        options.workload = workload
        options.sabotage = sabotage
        canaryRuns.append((options, "canary \(flavor.rawValue) (\(workload.rawValue), --sabotage \(sabotage.rawValue))"))
    }
    for (options, label) in canaryRuns where !interrupted() {
        var options = options
        options.duration = plan.canarySeconds
        options.stopOnViolation = true
        canaries.append(torture(options, label: label))
    }

    emit("\ntorture (pointer runs \(fixed(plan.pointerSeconds, 2)) s without faults and \(fixed(plan.faultSeconds, 2)) s with"
        + " \(allFaults.map(\.rawValue).joined(separator: ",")); snapshot, mixed-mode, hashmap and list runs"
        + " \(fixed(plan.containerSeconds, 2)) s; a correct run needs \(Int(TortureResult.minimumReadsPerSecond)) reads"
        + " and \(Int(TortureResult.minimumUpdatesPerSecond)) updates per second):")
    emit(tortureTable(results))
    emit("canaries (each stops at its first violation, within \(Int(plan.canarySeconds)) s; 'fired' lists the"
        + " detectors that counted; the container canaries must be caught by the one they aim at):")
    emit(tortureTable(canaries))
    for canary in canaries where canary.passed {
        let how = canary.options.aimedDetector.map { "caught by \($0)" } ?? "caught (\(canary.violations) violations)"
        let label = canary.options.sabotage.map { "\(canary.options.flavor.rawValue) --sabotage \($0.rawValue)" }
            ?? canary.options.flavor.rawValue
        emit("  \(label) on \(canary.options.workload.rawValue): \(how)")
    }
    let coverage = modeCoverageProblems(results)
    if !interrupted() { problems += coverage }  // an interrupted tour ran fewer modes on purpose

    if !interrupted() {
        var storm = StormOptions()
        storm.duration = quick ? 1.5 : 6
        storm.stall = quick ? 0.5 : 2
        emit("")
        if runStorm(storm) != 0 {
            problems.append("storm: the peak counted at each retire exceeded the bound, or retired objects were not all deinitialised after barrier()")
        }
        emit("")
    }

    if !interrupted() {
        var options = BenchOptions()
        options.duration = quick ? 0.03 : 0.3
        options.rounds = quick ? 1 : 3
        options.omitsLargePrefills = quick
        let benchResults = runBench(options)
        emit("benchmarks (\(options.rounds) interleaved round\(options.rounds == 1 ? "" : "s"), medians\(quick ? "; quick: no lookup-1m" : "")):")
        emit(benchTable(benchResults))
    }

    emit("tour time: \(fixed(Double(nowNanoseconds() - tourStart) / 1e9, 1)) s")
    if interrupted() {
        // The exit code is 128 + the signal's number (finish()).
        emit("interrupted: partial results" + (problems.isEmpty ? "" : "; problems seen until then:"))
        for problem in problems { emit("  - \(problem)") }
        return 1
    }
    if problems.isEmpty {
        emit("PASS: every correct flavor ran without violations or leaks and above the floor of work, every mode ran under all faults, the memory bound held, and every canary was caught by its detector.")
        return 0
    }
    emit("FAIL:")
    for problem in problems { emit("  - \(problem)") }
    return 1
}

/// The library's five modes must each have run the pointer workload under
/// all faults. A mode is excused where this machine lacks what it needs
/// (rseq, membarrier) or an RCU_FORCE_* variable forces the flavors' domains
/// into another; the summary says which.
private func modeCoverageProblems(_ results: [TortureResult]) -> [String] {
    let underFaults = Set(results.filter { $0.options.faults.count == Fault.allCases.count }.compactMap(\.mode))
    let machine = Machine.current
    let switches: [String] = ["RCU_FORCE_ATOMIC", "RCU_FORCE_FENCE", "RCU_FORCE_SEQCST"]
    let forced = switches.filter { name in
        getenv(name).map { !["", "0", "false", "no", "off"].contains(String(cString: $0).lowercased()) } ?? false
    }
    var problems: [String] = []
    var excused: [String] = []
    for flavor in FlavorName.correct {
        guard let mode = flavor.requestedMode, !underFaults.contains(mode) else { continue }
        let available = (!mode.hasPrefix("rseq") || machine.rseq) && (!mode.hasSuffix("membarrier") || machine.membarrier)
        if !available {
            excused.append("\(mode) (this machine has no \(machine.rseq ? "membarrier" : "rseq"))")
        } else if !forced.isEmpty {
            excused.append("\(mode) (\(forced.joined(separator: ", ")) set)")
        } else {
            problems.append("mode \(mode) did not run under all faults (\(flavor.rawValue) ran \(results.first { $0.options.flavor == flavor }?.mode ?? "nothing"))")
        }
    }
    emit("modes run under all faults: \(underFaults.sorted().joined(separator: ", "))"
        + (excused.isEmpty ? "" : "; not run: \(excused.joined(separator: ", "))"))
    return problems
}
