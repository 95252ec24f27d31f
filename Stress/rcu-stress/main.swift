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
case .tour(let quick):
    exit(runTour(quick: quick))
}
