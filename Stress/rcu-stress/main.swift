// rcu-stress: torture tester and benchmark for swift-rcu, with liburcu as the
// reference. Contract: shared/design/stress-contract.md.
import Glibc

let command: Command
do {
    command = try parseCommand(Array(CommandLine.arguments.dropFirst()))
} catch {
    printError("rcu-stress: \(error.message)")
    exit(64)
}

switch command {
case .help:
    print(usageText)
case .bench(let options):
    let results = runBench(options)
    if options.json {
        print(benchJSON(results, suite: options.suite))
    } else {
        print("rcu-stress bench --suite \(options.suite.rawValue): \(Machine.current.summary)")
        print(benchTable(results))
    }
    if let path = options.svgPath {
        guard writeFile(path, ratioChartSVG(results, machine: Machine.current)) else {
            printError("rcu-stress: cannot write \(path)")
            exit(1)
        }
    }
case .torture(let options):
    installInterruptHandler()
    let result = runTorture(options)
    if options.json {
        print(result.json.render())
    } else {
        print("rcu-stress torture: \(Machine.current.summary)")
        print(tortureTable([result]))
        print("age histogram (0..\(ageBuckets - 1)+): \(result.ageHistogram.map(String.init).joined(separator: " "))")
        if !result.details.isEmpty {
            print(result.details.map { "\(String($0.0.map { $0 == "_" ? " " : $0 })) \($0.1)" }.joined(separator: ", "))
        }
        if let aimed = result.options.aimedDetector {
            print("canary aimed at \(aimed): \(result.caught ? "caught" : "NOT caught");"
                  + " detectors fired: \(result.fired.isEmpty ? "none" : result.fired.joined(separator: ", "))")
        } else if !result.fired.isEmpty {
            print("detectors fired: \(result.fired.joined(separator: ", "))")
        }
        if result.interrupted { print("interrupted: partial results") }
        if let statistics = result.statistics { print("statistics: \(statistics)") }
        if let problem = result.problem { print("FAIL: \(problem)") }
    }
    // Exit 0 for the expected outcome: a clean run of a correct flavor that
    // did at least the floor of work, or a canary caught by its detector.
    exit(result.passed ? 0 : 1)
case .storm(let options):
    installInterruptHandler()
    exit(runStorm(options))
case .oracle(let options):
    installInterruptHandler()
    exit(runOracle(options))
case .stall(let options):
    exit(runStall(options))
case .tour(let quick):
    exit(runTour(quick: quick))
}
