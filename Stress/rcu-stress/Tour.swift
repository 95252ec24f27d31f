// The default tour: everything rcu-stress checks and measures, briefly, with
// one summary at the end.
import Glibc

/// Runs the tour and returns the process exit code.
func runTour(quick: Bool) -> Int32 {
    print("rcu-stress tour: \(Machine.current.summary)")
    var options = BenchOptions()
    options.duration = quick ? 0.2 : 0.6
    options.rounds = 3
    let results = runBench(options)
    print(benchTable(results))
    return 0
}
