// The hashmap workloads: torture, oracle and bench suite. Not built yet.
import RCU

extension TortureRun {
    func runHashMap<I: ReadSideImpl>(_ impl: I, counters: TortureCounters) -> TortureResult {
        fatalError("rcu-stress: the hashmap torture is not built yet")
    }
}

func runHashMapOracle(_ options: OracleOptions) -> Int32 {
    fatalError("rcu-stress: the hashmap oracle is not built yet")
}

func runHashMapSuite(_ options: BenchOptions, slice: Double) -> [BenchResult] { [] }
