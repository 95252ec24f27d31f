// `rcu-stress oracle`: differential testing against liburcu. A seeded
// random sequence of operations is applied to this library's container and
// to liburcu's equivalent, with readers running concurrently; every result
// must match, and so must the final contents.
import ArgumentParser
import Glibc

struct OracleCommand: StressCommand {
    static let configuration = CommandConfiguration(
        commandName: "oracle",
        abstract: "Differential test: one seeded operation sequence on this library's container and liburcu's.",
        discussion: """
            hashmap: RCUHashMap against cds_lfht (same keys, same hashes); list: RCUList against \
            cds_list_*_rcu and an Array model. Reader threads look up or traverse both meanwhile. \
            Exit 0 when every result, count and content matched, 1 at the first difference, 64 for \
            a bad argument, 130/143 on SIGINT/SIGTERM (the operations done so far are reported). \
            RCU_STRESS_ORACLE_DIVERGE_AT=N changes only this library's container at operation N, \
            to show that the oracle can fail.
            """)

    @Option(help: "The container pair to compare (required).")
    var workload: OracleWorkload?

    @Option(parsing: .unconditional, help: ArgumentHelp("The sequence's seed (0 or more).", valueName: "n"))
    var seed = 1

    @Option(parsing: .unconditional, help: ArgumentHelp("Operations to apply (1 to 10^9).", valueName: "n"))
    var ops = 1_000_000

    @Option(parsing: .unconditional, help: ArgumentHelp("Reader threads running meanwhile (0 to 64).", valueName: "n"))
    var readers = 1

    @Flag(help: "Print one JSON object on stdout, nothing else.")
    var json = false

    mutating func validate() throws {
        guard workload != nil else {
            throw ValidationError("oracle needs --workload; accepted: \(valueList(OracleWorkload.self))")
        }
        try checkCount(seed, option: "--seed", range: 0...Int.max)
        try checkCount(ops, option: "--ops", range: 1...1_000_000_000)
        try checkCount(readers, option: "--readers", range: 0...64)
    }

    func execute() -> Int32 {
        runOracle(OracleOptions(workload: workload ?? .hashmap, seed: UInt64(seed), operations: ops,
                                readers: readers, json: json))
    }
}

enum OracleWorkload: String, CaseIterable {
    case hashmap, list
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
