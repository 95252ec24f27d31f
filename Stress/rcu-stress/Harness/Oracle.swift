// `rcu-stress oracle`: differential testing against liburcu. A seeded
// random sequence of operations is applied to this library's container and
// to liburcu's equivalent, with readers running concurrently; every result
// must match, and so must the final contents.
import Glibc

enum OracleWorkload: String, CaseIterable {
    case hashmap, list
    /// The workloads built so far.
    static let available: [OracleWorkload] = [.hashmap, .list]
}

struct OracleOptions {
    var workload: OracleWorkload = .hashmap
    var seed: UInt64 = 1
    var operations = 1_000_000
    /// Threads looking up / traversing while the sequence runs.
    var readers = 1
    var json = false
}

/// Runs the oracle; returns the process exit code (0: no mismatch).
func runOracle(_ options: OracleOptions) -> Int32 {
    switch options.workload {
    case .hashmap: return runHashMapOracle(options)
    case .list: return runListOracle(options)
    }
}

/// Test hook for the oracle itself: when the environment names an operation
/// index in RCU_STRESS_ORACLE_DIVERGE_AT, the oracle changes only this
/// library's container there, and must then report a mismatch
/// (scripts/cli-check.sh checks that it does: an oracle that cannot fail
/// proves nothing).
let oracleDivergeAt: Int? = getenv("RCU_STRESS_ORACLE_DIVERGE_AT").flatMap { Int(String(cString: $0)) }
