// `rcu-stress bench`: every impl of a case runs in the same process, in
// interleaved rounds (impl A, B, C, A, B, C, ...), so slow phases of a noisy
// machine hit every impl alike. A result is the median over rounds.
import Glibc
import RCU
import Synchronization

/// An implementation under test, as a closed set of concrete types, so each
/// measurement loop is specialised for one of them (see `ImplVisitor`).
enum AnyImpl {
    case rcu(RCUImpl)
    case liburcu(LiburcuImpl)
    case rwlock(RWLockImpl)
    case mutex(MutexImpl)

    var name: String {
        switch self {
        case .rcu(let impl): return impl.name
        case .liburcu(let impl): return impl.name
        case .rwlock(let impl): return impl.name
        case .mutex(let impl): return impl.name
        }
    }

    func visit<V: ImplVisitor>(_ visitor: V) -> V.Output {
        switch self {
        case .rcu(let impl): return visitor.visit(impl)
        case .liburcu(let impl): return visitor.visit(impl)
        case .rwlock(let impl): return visitor.visit(impl)
        case .mutex(let impl): return visitor.visit(impl)
        }
    }

    /// The contract's impls for the read-side and synchronize suites.
    static func readSideSet() -> [AnyImpl] {
        [
            .rcu(Domains.impl(for: .rcu)!),
            .rcu(Domains.impl(for: .rcuAtomic)!),
            .rcu(Domains.impl(for: .rcuFence)!),
            .liburcu(LiburcuImpl()),
            .rwlock(RWLockImpl()),
            .mutex(MutexImpl()),
        ]
    }
}

/// A generic operation applied to a concrete impl type.
protocol ImplVisitor {
    associatedtype Output
    func visit<I: ReadSideImpl>(_ impl: I) -> Output
}

/// One measured interval: operations and the summed per-thread time.
struct Sample {
    var operations: UInt64 = 0
    var threadNanoseconds: UInt64 = 0
    var nanosecondsPerOperation: Double {
        operations == 0 ? .infinity : Double(threadNanoseconds) / Double(operations)
    }
}

/// Collects per-thread samples.
final class SampleBox: Sendable {
    private let samples = Mutex<Sample>(Sample())
    func add(operations: UInt64, nanoseconds: UInt64) {
        samples.withLock {
            $0.operations &+= operations
            $0.threadNanoseconds &+= nanoseconds
        }
    }
    var value: Sample { samples.withLock { $0 } }
}

/// Runs `workers` (each on its own thread, pinned round-robin) until `seconds`
/// have passed after all of them arrived at the gate, then stops and joins.
/// `background` threads start first and stop last (busy readers).
func runMeasured(
    seconds: Double,
    workers: Int,
    background: Int = 0,
    backgroundBody: @escaping @Sendable (Int, StopFlag, StartGate) -> Void = { _, _, _ in },
    body: @escaping @Sendable (Int, StopFlag, StartGate) -> Void
) {
    let gate = StartGate(parties: workers + background)
    let stop = StopFlag()
    let backgroundStop = StopFlag()
    var threads: [StressThreadBox] = []
    for index in 0..<background {
        threads.append(StressThreadBox(StressThread { backgroundBody(index, backgroundStop, gate) }))
    }
    var workerThreads: [StressThreadBox] = []
    for index in 0..<workers {
        workerThreads.append(StressThreadBox(StressThread { body(index, stop, gate) }))
    }
    gate.openWhenAllArrived()
    Interrupt.sleep(seconds)  // a signal ends the interval (the sample is then dropped)
    stop.set()
    for thread in workerThreads { thread.join() }
    backgroundStop.set()
    for thread in threads { thread.join() }
}

// MARK: - Driver

struct BenchResult {
    let suite: String
    let benchCase: String
    let impl: String
    let threads: Int
    let nanosecondsPerOperation: Double
    /// Operations per second over all threads.
    var operationsPerSecond: Double { Double(threads) * 1e9 / nanosecondsPerOperation }

    func json(includeSuite: Bool) -> JSON {
        var fields: [(String, JSON)] = []
        if includeSuite { fields.append(("suite", .string(suite))) }
        fields += [
            ("case", .string(benchCase)),
            ("impl", .string(impl)),
            ("threads", .integer(Int64(threads))),
            ("ns_per_op", .number((nanosecondsPerOperation * 1000).rounded() / 1000)),
            ("ops_per_sec", .number(operationsPerSecond.rounded())),
        ]
        return .object(fields)
    }
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    if sorted.isEmpty { return .nan }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Measures each of `names` (by position) in `rounds` interleaved rounds,
/// showing the case, round and impl on a terminal; returns the median ns/op
/// per position. A signal stops it: the measurement it cut short is
/// dropped, and a position with no measurement gets NaN (runBench leaves
/// those out).
func interleavedMedians(names: [String], rounds: Int, label: String, _ measure: (Int) -> Double) -> [Double] {
    var samples = Array(repeating: [Double](), count: names.count)
    var progress = ProgressLine()
    rounds: for round in 0..<rounds {
        for position in names.indices {
            if Interrupt.isRequested { break rounds }
            progress.show("\(label) round \(round + 1)/\(rounds) \(names[position])", force: true)
            let sample = measure(position)
            if Interrupt.isRequested { break rounds }
            samples[position].append(sample)
        }
    }
    progress.clear()
    return samples.map(median)
}

/// One case at one thread count: measures each of `names` in interleaved
/// rounds (interleavedMedians) and returns the suite's rows for it.
func interleavedResults(
    _ suite: Suite, _ benchCase: String, threads: Int, names: [String], rounds: Int, label: String,
    _ measure: (Int) -> Double
) -> [BenchResult] {
    let medians = interleavedMedians(names: names, rounds: rounds, label: label, measure)
    return zip(names, medians).map { name, ns in
        BenchResult(suite: suite.rawValue, benchCase: benchCase, impl: name, threads: threads, nanosecondsPerOperation: ns)
    }
}

/// The same for the read-side impls, each measured by `measurement`
/// specialised for its concrete type.
func interleavedResults<V: ImplVisitor>(
    _ suite: Suite, _ benchCase: String, threads: Int, impls: [AnyImpl], rounds: Int, _ measurement: V
) -> [BenchResult] where V.Output == Sample {
    interleavedResults(suite, benchCase, threads: threads, names: impls.map(\.name), rounds: rounds,
                       label: "\(suite.rawValue) \(benchCase) x\(threads)") {
        impls[$0].visit(measurement).nanosecondsPerOperation
    }
}

enum Suite: String, CaseIterable {
    case readSide = "read-side"
    case synchronize
    case retire
    case snapshot
    case hashmap
    case list
    case all

    /// The contract's impl names of the suite (what --impls accepts);
    /// `all`: every suite's. Each suite's runner filters its impls by these
    /// names (BenchOptions.includes), and scripts/cli-check.sh checks that
    /// every name selects exactly its impl.
    var implNames: [String] {
        switch self {
        case .readSide, .synchronize, .retire:
            return ["rcu", "rcu-atomic", "rcu-fence", "liburcu-memb", "pthread-rwlock", "mutex"]
        case .snapshot: return ["RCUSnapshot", "RCUReference", "liburcu-memb", "Mutex"]
        case .hashmap: return ["RCUHashMap", "cds_lfht", "Mutex<Dictionary>"]
        case .list: return ["RCUList", "cds_list_rcu", "Mutex<Array>"]
        case .all:
            var names: [String] = []
            for suite in Suite.allCases where suite != .all {
                for name in suite.implNames where !names.contains(name) { names.append(name) }
            }
            return names
        }
    }
}

struct BenchOptions {
    var suite: Suite = .all
    var duration: Double = 1.0
    var threads: Int? = nil
    var rounds: Int = 5
    var json = false
    /// Only these impls (all when nil); each suite takes the names it has.
    var impls: [String]? = nil
    /// Skip the cases whose set-up dominates a short run (hashmap
    /// lookup-1m's 1M-key prefills); the quick tour sets it.
    var omitsLargePrefills = false
    /// The reader thread counts of the cases that take one: --threads, or
    /// 1 and the online CPUs.
    var threadCounts: [Int] { threads.map { [$0] } ?? Array(Set([1, onlineCPUs()])).sorted() }

    /// Whether --impls selects the impl named `name` (all do without it).
    func includes(_ name: String) -> Bool { impls?.contains(name) ?? true }
}

func runBench(_ options: BenchOptions) -> [BenchResult] {
    let suites: [Suite] = options.suite == .all ? [.readSide, .synchronize, .retire, .snapshot, .hashmap, .list] : [options.suite]
    var results: [BenchResult] = []
    let slice = options.duration / Double(options.rounds)
    let impls = AnyImpl.readSideSet().filter { options.includes($0.name) }
    for suite in suites {
        // A suite none of whose impls --impls names is left out; a signal
        // stops the run with what was measured.
        if !suite.implNames.contains(where: options.includes) || Interrupt.isRequested { continue }
        switch suite {
        case .readSide: results += runReadSideSuite(impls, options, slice: slice)
        case .synchronize: results += runSynchronizeSuite(impls, options, slice: slice)
        case .retire: results += runRetireSuite(impls, options, slice: slice)
        case .snapshot: results += runSnapshotSuite(options, slice: slice)
        case .hashmap: results += runHashMapSuite(options, slice: slice)
        case .list: results += runListSuite(options, slice: slice)
        case .all: break
        }
    }
    return results.filter { !$0.nanosecondsPerOperation.isNaN }
}

func benchJSON(_ results: [BenchResult], suite: Suite, interrupted: Bool = false) -> String {
    JSON.object([
        ("tool", .string("rcu-stress")),
        ("suite", .string(suite.rawValue)),
        ("machine", Machine.current.json),
        ("results", .array(results.map { $0.json(includeSuite: suite == .all) })),
        ("interrupted", .bool(interrupted)),
    ]).render()
}

func benchTable(_ results: [BenchResult]) -> String {
    var table = TextTable(["case", "threads", "impl", "ns/op", "Mops/s", "vs liburcu"])
    for result in results {
        let reference = referenceResult(for: result, in: results)
        let ratio = reference.map { fixed(result.nanosecondsPerOperation / $0.nanosecondsPerOperation, 2) + "x" } ?? "-"
        table.add([
            "\(result.suite) \(result.benchCase)", String(result.threads), result.impl,
            formatDouble(result.nanosecondsPerOperation, significant: 4),
            formatDouble(result.operationsPerSecond / 1e6, significant: 4),
            ratio,
        ])
    }
    return table.render()
        + "ns/op is per thread (wall time of each thread / its operations), the median of interleaved rounds;\n"
        + "'vs liburcu' is ns/op divided by the liburcu reference's from this run: liburcu-memb, or cds_list_rcu\n"
        + "for the list suite and cds_lfht for the hashmap suite (lower is faster).\n"
}

/// The liburcu impl a suite's ratios are taken against.
func referenceImpl(forSuite suite: String) -> String {
    switch suite {
    case Suite.hashmap.rawValue: return "cds_lfht"
    case Suite.list.rawValue: return "cds_list_rcu"
    default: return "liburcu-memb"
    }
}

/// The liburcu reference's result (see `referenceImpl`) for the same suite,
/// case and thread count.
func referenceResult(for result: BenchResult, in results: [BenchResult]) -> BenchResult? {
    let reference = referenceImpl(forSuite: result.suite)
    return results.first {
        $0.suite == result.suite && $0.benchCase == result.benchCase
            && $0.threads == result.threads && $0.impl == reference
    }
}
