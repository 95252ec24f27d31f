// The list workloads: torture, oracle and bench suite. Not built yet.
import RCU

extension TortureRun {
    func runList<I: ReadSideImpl>(_ impl: I, counters: TortureCounters) -> TortureResult {
        fatalError("rcu-stress: the list torture is not built yet")
    }
}

func runListOracle(_ options: OracleOptions) -> Int32 {
    fatalError("rcu-stress: the list oracle is not built yet")
}

func runListSuite(_ options: BenchOptions, slice: Double) -> [BenchResult] { [] }
