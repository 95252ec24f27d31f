// `rcu-stress torture`: what every workload's run shares: the options, the
// result and its JSON (the contract's object), the counters, and the table.
// The run itself (threads, faults, the live line) is TortureRun.swift; each
// workload's readers and updaters are in Workloads/.
import CLiburcu
import Glibc
import RCU
import Synchronization

enum Workload: String, CaseIterable {
    case pointer, snapshot, hashmap, list
}

enum GracePeriodMode: String, CaseIterable {
    case sync, async, poll, retire, mixed
    /// The modes `mixed` picks from.
    static let concrete: [GracePeriodMode] = [.sync, .async, .poll, .retire]
}

enum Fault: String, CaseIterable {
    case migrate, signals, churn, oversubscribe, fork
}

struct TortureOptions {
    var flavor: FlavorName = .rcu
    var workload: Workload = .pointer
    var readers: Int? = nil
    var updaters = 1
    var duration = 10.0
    var gracePeriodMode: GracePeriodMode = .sync
    var faults: [Fault] = []
    var json = false
    /// Re-reads of the element inside each read section (`--dwell`).
    var requestedDwell: Int? = nil
    /// The dwell: as given, else 64; the broken flavor's hashmap canary
    /// dwells 8,192 times, so a reader sitting on a node is much likelier to
    /// see it freed (and poisoned) than to walk into a reused one and crash
    /// (with 64, 5 of 10 runs died of SIGSEGV before the poison detector
    /// fired; with 8,192, none of 65).
    var dwell: Int {
        requestedDwell ?? (flavor == .broken && workload == .hashmap ? 8192 : 64)
    }
    /// Stop at the first violation (the tour's canary run).
    var stopOnViolation = false
    /// The live progress line's label (TTY only; default `[flavor]`).
    var progressLabel: String? = nil
    /// A targeted fault that breaks the workload on purpose (Detectors.swift).
    var sabotage: Sabotage? = nil

    /// A run that must be caught: the broken flavor, or a sabotage.
    var isCanary: Bool { flavor == .broken || sabotage != nil }

    /// The detector a canary run must be caught by; nil where any violation
    /// counts (the pointer workload has one check, age and poison together).
    var aimedDetector: String? {
        if let sabotage { return sabotage.aimedDetector(workload) }
        if flavor == .broken && (workload == .hashmap || workload == .list) { return DetectorName.poisoned }
        return nil
    }

    var readerCount: Int {
        if let readers { return readers }
        return faults.contains(.oversubscribe) ? 4 * onlineCPUs() : onlineCPUs()
    }
}

/// Ages are recorded up to this bucket (the last one means "this or more").
let ageBuckets = 11
let liveState = 0x5AFE
let poisonState = -0xDEAD

struct TortureResult {
    var options: TortureOptions
    var seconds = 0.0
    var reads = 0
    var signalReads = 0
    var updates = 0
    var gracePeriods = 0
    var violations = 0
    var leaked = 0
    var ageHistogram = Array(repeating: 0, count: ageBuckets)
    var interrupted = false
    /// Workload-specific counts (already included in `violations` where
    /// they are violations), reported as extra JSON fields.
    var details: [(String, Int)] = []
    /// The library domain's statistics after the run (rcu flavors).
    var statistics: String? = nil
    /// The mode the flavor's domain runs (rcu flavors).
    var mode: String? = nil
    /// The detectors that counted at least one violation (containers).
    var fired: [String] = []

    // The floor: a correct-flavor run that did (almost) nothing proves
    // nothing, so it fails. 1,000 reads and 10 updates per second of the
    // run: the slowest correct runs seen on this 2-CPU VM (8 readers and
    // the fork fault, or valgrind) do over 25 updates and 1e5 reads per second.
    static let minimumReadsPerSecond = 1000.0
    static let minimumUpdatesPerSecond = 10.0
    private var floorSeconds: Double { min(options.duration, seconds) }
    var minimumReads: Int { Int((Self.minimumReadsPerSecond * floorSeconds).rounded(.up)) }
    var minimumUpdates: Int { Int((Self.minimumUpdatesPerSecond * floorSeconds).rounded(.up)) }
    /// Too few reads or updates (correct flavors only; canaries stop early).
    var belowFloor: Bool { !options.isCanary && (reads < minimumReads || updates < minimumUpdates) }

    /// Whether the canary was caught: by its aimed detector, or (pointer) by
    /// any violation.
    var caught: Bool {
        if let aimed = options.aimedDetector { return fired.contains(aimed) }
        return violations > 0
    }

    /// The expected outcome: a caught canary, or a clean correct run that
    /// did enough work.
    var passed: Bool {
        options.isCanary ? caught : violations == 0 && leaked == 0 && !belowFloor
    }

    /// Why the run failed, for the tour's summary and the torture command.
    var problem: String? {
        if passed { return nil }
        if options.isCanary {
            if let aimed = options.aimedDetector {
                let others = fired.isEmpty ? "none fired" : "fired: \(fired.joined(separator: ", "))"
                let crash = details.first { $0.0 == "crashed_signal" }.map { ", the child died of signal \($0.1)" } ?? ""
                return "not caught by \(aimed) (\(violations) violations, \(others)\(crash))"
            }
            return "not caught: no violation"
        }
        var parts: [String] = []
        if violations > 0 || leaked > 0 { parts.append("\(violations) violations, \(leaked) leaked") }
        if belowFloor {
            parts.append("too few operations to prove anything: \(reads) reads (floor \(minimumReads)),"
                + " \(updates) updates (floor \(minimumUpdates))")
        }
        return parts.joined(separator: "; ")
    }

    var json: JSON {
        var fields: [(String, JSON)] = [
            ("tool", .string("rcu-stress")),
            ("workload", .string(options.workload.rawValue)),
            ("flavor", .string(options.flavor.rawValue)),
            ("gp", .string(options.gracePeriodMode.rawValue)),
            ("faults", .array(options.faults.map { .string($0.rawValue) })),
            ("duration_s", .number((seconds * 1000).rounded() / 1000)),
            ("readers", .integer(Int64(options.readerCount))),
            ("updaters", .integer(Int64(options.updaters))),
            ("reads", .integer(Int64(reads))),
            ("signal_reads", .integer(Int64(signalReads))),
            ("updates", .integer(Int64(updates))),
            ("grace_periods", .integer(Int64(gracePeriods))),
            ("violations", .integer(Int64(violations))),
            ("leaked", .integer(Int64(leaked))),
            ("age_histogram", .array(ageHistogram.map { .integer(Int64($0)) })),
            ("interrupted", .bool(interrupted)),
            ("min_reads", .integer(Int64(minimumReads))),
            ("min_updates", .integer(Int64(minimumUpdates))),
            ("below_floor", .bool(belowFloor)),
            ("passed", .bool(passed)),
        ]
        if let mode { fields.append(("mode", .string(mode))) }
        if let sabotage = options.sabotage { fields.append(("sabotage", .string(sabotage.rawValue))) }
        if let aimed = options.aimedDetector { fields.append(("aimed_detector", .string(aimed))) }
        if options.workload == .hashmap || options.workload == .list {
            fields.append(("fired", .array(fired.map { JSON.string($0) })))
        }
        if let statistics { fields.append(("statistics", .string(statistics))) }
        for (key, value) in details { fields.append((key, .integer(Int64(value)))) }
        return .object(fields)
    }
}

/// Counters shared by the threads of one run.
final class TortureCounters: Sendable {
    let reads = Atomic<Int>(0)
    let signalReads = Atomic<Int>(0)
    let updates = Atomic<Int>(0)
    let gracePeriods = Atomic<Int>(0)
    let violations = Atomic<Int>(0)
    let forks = Atomic<Int>(0)
    let forkFailures = Atomic<Int>(0)
    let histogram = Mutex<[Int]>(Array(repeating: 0, count: ageBuckets))

    func merge(_ local: [Int]) {
        histogram.withLock { total in
            for bucket in 0..<ageBuckets { total[bucket] += local[bucket] }
        }
    }
}


// MARK: - One run

/// Each reader's running count of reads, published after every batch with a
/// relaxed store into a slot of its own (128 bytes apart, on 128-byte
/// boundaries: no shared cache line, no read-modify-write), so the live line
/// shows reads as they happen without slowing the readers. The run's total
/// is the slots' sum plus `TortureCounters.reads` (short-lived threads).
final class ReaderProgress: @unchecked Sendable {
    // @unchecked Sendable: each slot is written by one reader thread and read
    // by the monitor, both through its atomic; the storage is freed in
    // deinit, after every reader has been joined.
    private static let stride = 128
    private let storage: UnsafeMutableRawPointer
    let readers: Int

    init(readers: Int) {
        self.readers = readers
        storage = .allocate(byteCount: readers * Self.stride, alignment: Self.stride)
        for index in 0..<readers {
            (storage + index * Self.stride).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
        }
    }

    deinit {
        for index in 0..<readers { slotPointer(index).deinitialize(count: 1) }
        storage.deallocate()
    }

    private func slotPointer(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (storage + index * Self.stride).assumingMemoryBound(to: Atomic<Int>.self)
    }

    /// Reader `index`'s slot.
    func slot(_ index: Int) -> ReadCount { ReadCount(slot: UnsafePointer(slotPointer(index)), owner: self) }

    /// Reads published so far by every reader.
    var total: Int { (0..<readers).reduce(0) { $0 + slotPointer($1).pointee.load(ordering: .relaxed) } }
}

/// One reader's slot of ReaderProgress: `publish` its count after a batch.
struct ReadCount: @unchecked Sendable {
    // @unchecked Sendable: the slot is only touched through its atomic, and
    // `owner` keeps its storage alive.
    let slot: UnsafePointer<Atomic<Int>>
    let owner: ReaderProgress

    @inline(__always)
    func publish(_ reads: Int) { slot.pointee.store(reads, ordering: .relaxed) }
}

/// What a torture run needs from a workload; the threads, faults and
/// accounting around it are shared.
protocol TortureWorkload: Sendable {
    var counters: TortureCounters { get }
    /// A reader thread's loop until `stop` (or a signal); publishes its
    /// running count of reads in `reads` after every batch.
    func readerLoop(_ stop: StopFlag, _ reads: ReadCount)
    func readBurst(_ count: Int)
    func signalRead()
    func updateOnce()
    /// Called after every thread has stopped: drain callbacks, return leaks.
    func finish() -> Int
}

/// The impl a torture flavor runs on.
func tortureImpl(_ flavor: FlavorName) -> AnyImpl {
    switch flavor {
    case .liburcu: return .liburcu(LiburcuImpl())
    default: return .rcu(Domains.impl(for: flavor)!)
    }
}

func runTorture(_ options: TortureOptions) -> TortureResult {
    if needsIsolation(options) { return runIsolatedTorture(options) }
    var result = tortureImpl(options.flavor).visit(TortureRun(options: options))
    if let impl = Domains.impl(for: options.flavor) {
        result.statistics = impl.domain.statistics.description
        result.mode = impl.domain.mode.description
    }
    return result
}

// MARK: - Output

func tortureTable(_ results: [TortureResult]) -> String {
    var table = TextTable(["flavor", "mode", "faults", "workload", "gp", "reads/s", "updates/s", "GPs/s", "violations", "leaked", "ages 0/1/2+ / fired"],
                          leftAligned: [0, 1, 2, 3, 4])
    for result in results {
        let seconds = max(result.seconds, 1e-9)
        let ages = result.ageHistogram
        let old = ages.dropFirst(2).reduce(0, +)
        let workload = result.options.workload.rawValue + (result.options.sabotage.map { " (\($0.rawValue))" } ?? "")
        let fired = result.fired.isEmpty ? (result.options.isCanary ? "none" : "-") : result.fired.joined(separator: ",")
        table.add([
            result.options.flavor.rawValue,
            result.mode ?? "-",
            result.options.faults.isEmpty ? "none" : result.options.faults.map(\.rawValue).joined(separator: ","),
            workload,
            result.options.gracePeriodMode.rawValue,
            formatDouble(Double(result.reads) / seconds, significant: 4),
            formatDouble(Double(result.updates) / seconds, significant: 4),
            formatDouble(Double(result.gracePeriods) / seconds, significant: 4),
            String(result.violations),
            String(result.leaked),
            result.options.workload == .pointer ? "\(ages[0])/\(ages[1])/\(old)" : fired,
        ])
    }
    return table.render()
}
