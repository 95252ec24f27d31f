// `rcu-stress torture`: rcutorture's design. A ring of elements, each with an
// age and a state word; updaters publish a fresh element, mark the old one
// retired (age 1), wait for a grace period, and then age every element that
// was retired before the wait began. An element of age >= 2 has outlived a
// full grace period since it was unpublished, so it is poisoned (and later
// recycled). Readers, inside a read section, load the current element, dwell,
// and re-read its age and state: seeing age >= 2 or poison means a grace
// period ended while a reader still held the element. Storage is recycled,
// never freed, so a violation shows as a wrong value, not as a lucky crash.
import CLiburcu
import Glibc
import RCU
import Synchronization

enum Workload: String, CaseIterable {
    case pointer, snapshot, hashmap, list
    /// The workloads built so far; the others are reserved by the contract.
    static let available: [Workload] = [.pointer, .snapshot, .hashmap, .list]
}

enum GracePeriodMode: String, CaseIterable {
    case sync, async, poll, retire, mixed
    static let available: [GracePeriodMode] = allCases
    /// The modes `mixed` picks from.
    static let concrete: [GracePeriodMode] = [.sync, .async, .poll, .retire]
}

enum Fault: String, CaseIterable {
    case migrate, signals, churn, oversubscribe, fork
    static let available: [Fault] = [.migrate, .signals, .churn, .oversubscribe, .fork]
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
    /// Print the live progress line (TTY only).
    var showsProgress = true
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

// MARK: - The element ring

struct TortureElement: ~Copyable {
    let age = Atomic<Int>(0)
    let state = Atomic<Int>(poisonState)
}

/// Updater-side bookkeeping, guarded by the ring's lock.
struct RingBook {
    var free: [Int]
    var retired: [Int] = []
    /// Times each element was published: a snapshot of the retired list
    /// names (element, incarnation), so an element that was recycled and
    /// retired again before an old callback runs is not aged by it.
    var incarnation: [Int]
}

final class ElementRing: @unchecked Sendable {
    // @unchecked Sendable: `elements` is allocated once and only accessed
    // through its atomics; the bookkeeping lives in a Mutex.
    let count: Int
    let elements: UnsafeMutablePointer<TortureElement>
    let current = Atomic<Int>(0)
    let book: Mutex<RingBook>
    /// Age at which a poisoned element returns to the free list: late enough
    /// that a reader a broken grace period let through sees poison, not a
    /// recycled live element.
    let recycleAge = 8

    init(count: Int) {
        self.count = count
        elements = .allocate(capacity: count)
        for index in 0..<count { (elements + index).initialize(to: TortureElement()) }
        elements[0].state.store(liveState, ordering: .relaxed)
        book = Mutex(RingBook(free: Array(1..<count), incarnation: Array(repeating: 0, count: count)))
    }

    deinit {
        elements.deinitialize(count: count)
        elements.deallocate()
    }

    /// Elements accounted for: current + free + retired; the rest leaked.
    var leaked: Int {
        book.withLock { count - 1 - $0.free.count - $0.retired.count }
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

/// An element as retired at one publication.
struct RetiredElement: Hashable, Sendable {
    let index: Int
    let incarnation: Int
}

// MARK: - Reader and updater, generic over the flavor

struct PointerTorture<I: ReadSideImpl>: Sendable {
    let impl: I
    let ring: ElementRing
    let counters: TortureCounters
    let dwell: Int

    /// One read section; returns the age seen (ageBuckets - 1 if poisoned).
    @inline(__always)
    func readOnce(dwell: Int) -> Int {
        impl.section {
            let index = ring.current.load(ordering: .acquiring)
            let element = ring.elements + index
            var state = element.pointee.state.load(ordering: .relaxed)
            var spins = 0
            while spins < dwell && state == liveState {
                state = element.pointee.state.load(ordering: .relaxed)
                spins += 1
            }
            let age = element.pointee.age.load(ordering: .relaxed)
            if state != liveState || age >= 2 {
                counters.violations.add(1, ordering: .relaxed)
            }
            return state == liveState ? min(age, ageBuckets - 1) : ageBuckets - 1
        }
    }

    @inline(never)
    func readerLoop(_ stop: StopFlag) {
        var histogram = Array(repeating: 0, count: ageBuckets)
        var reads = 0
        while !stop.isSet && !interruptRequested.load(ordering: .relaxed) {
            for _ in 0..<64 {
                histogram[readOnce(dwell: dwell)] += 1
            }
            reads += 64
        }
        counters.reads.add(reads, ordering: .relaxed)
        counters.merge(histogram)
    }

    /// A short burst of reads (churned threads).
    func readBurst(_ count: Int) {
        var histogram = Array(repeating: 0, count: ageBuckets)
        for _ in 0..<count { histogram[readOnce(dwell: dwell)] += 1 }
        counters.reads.add(count, ordering: .relaxed)
        counters.merge(histogram)
    }

    /// Publish, retire, wait for a grace period (as `mode` says), then age,
    /// poison and recycle. In the retire mode the aging runs in a callback
    /// after the grace period, and the updater does not wait.
    func updateOnce(_ requested: GracePeriodMode) {
        let mode = requested == .mixed ? GracePeriodMode.concrete.randomElement()! : requested
        let published: [RetiredElement]? = ring.book.withLock { book in
            guard !book.free.isEmpty else { return nil }
            let fresh = book.free.removeFirst()
            book.incarnation[fresh] += 1
            ring.elements[fresh].age.store(0, ordering: .relaxed)
            ring.elements[fresh].state.store(liveState, ordering: .relaxed)
            let old = ring.current.exchange(fresh, ordering: .acquiringAndReleasing)
            ring.elements[old].age.store(1, ordering: .relaxed)
            book.retired.append(old)
            return book.retired.map { RetiredElement(index: $0, incarnation: book.incarnation[$0]) }
        }
        guard let waitingFor = published else {
            // Every element is waiting for callbacks (retire mode): let them run.
            sched_yield()
            return
        }
        switch mode {
        case .sync:
            impl.synchronize()
        case .async:
            let impl = impl
            blockOn { await impl.synchronizeAsync() }
        case .poll:
            let handle = impl.startPoll()
            while !impl.pollCompleted(handle) { sched_yield() }
        case .retire, .mixed:
            impl.deferred { [self] in age(waitingFor) }
            counters.updates.add(1, ordering: .relaxed)
            return
        }
        age(waitingFor)
        counters.updates.add(1, ordering: .relaxed)
    }

    /// After a grace period: every element retired before it began has now
    /// outlived one; age those, poison at 2, recycle once old enough.
    func age(_ waitingFor: [RetiredElement]) {
        counters.gracePeriods.add(1, ordering: .relaxed)
        ring.book.withLock { book in
            let waited = Set(waitingFor)
            var stillRetired: [Int] = []
            for index in book.retired {
                let element = ring.elements + index
                var age = element.pointee.age.load(ordering: .relaxed)
                if waited.contains(RetiredElement(index: index, incarnation: book.incarnation[index])) {
                    age += 1
                    element.pointee.age.store(age, ordering: .relaxed)
                }
                if age >= 2 { element.pointee.state.store(poisonState, ordering: .relaxed) }
                if age >= ring.recycleAge {
                    book.free.append(index)
                } else {
                    stillRetired.append(index)
                }
            }
            book.retired = stillRetired
        }
    }
}

// MARK: - Faults

/// Reader threads currently alive, for the migrate and signals faults. A
/// thread is in the registry only between its registration and the moment it
/// leaves, so signalling a registered thread never targets an exited one.
final class ReaderRegistry: Sendable {
    private let threads = Mutex<[Int32: pthread_t]>([:])

    func add() { threads.withLock { $0[stress_gettid()] = pthread_self() } }
    func remove() { _ = threads.withLock { $0.removeValue(forKey: stress_gettid()) } }

    /// Runs `body` on one random registered thread, under the lock.
    func withRandomThread(_ body: (Int32, pthread_t) -> Void) {
        threads.withLock { threads in
            guard let entry = threads.randomElement() else { return }
            body(entry.key, entry.value)
        }
    }
}

/// The read a signal handler performs, set while a signals fault runs.
/// nonisolated(unsafe): written only while no signal can be delivered (before
/// the storm starts and after every reader has been joined).
nonisolated(unsafe) var signalReadHook: (() -> Void)? = nil

let signalHandler: @convention(c) (Int32) -> Void = { _ in
    signalReadHook?()
}

/// Set by SIGINT: runs stop early, join, and print what they have.
let interruptRequested = Atomic<Bool>(false)

let interruptHandler: @convention(c) (Int32) -> Void = { _ in
    interruptRequested.store(true, ordering: .relaxed)
}

func installInterruptHandler() {
    _ = stress_install_handler(SIGINT, interruptHandler)
}

// MARK: - One run

/// What a torture run needs from a workload; the threads, faults and
/// accounting around it are shared.
protocol TortureWorkload: Sendable {
    var counters: TortureCounters { get }
    func readerLoop(_ stop: StopFlag)
    func readBurst(_ count: Int)
    func signalRead()
    func updateOnce()
    /// Called after every thread has stopped: drain callbacks, return leaks.
    func finish() -> Int
}

struct PointerWorkload<I: ReadSideImpl>: TortureWorkload {
    let torture: PointerTorture<I>
    let mode: GracePeriodMode
    var counters: TortureCounters { torture.counters }
    func readerLoop(_ stop: StopFlag) { torture.readerLoop(stop) }
    func readBurst(_ count: Int) { torture.readBurst(count) }
    func signalRead() {
        _ = torture.readOnce(dwell: 0)
        counters.signalReads.add(1, ordering: .relaxed)
    }
    func updateOnce() { torture.updateOnce(mode) }
    func finish() -> Int {
        torture.impl.barrier()
        return torture.ring.leaked
    }
}

struct SnapshotWorkloadRun<Cell: SnapshotCell>: TortureWorkload {
    let torture: SnapshotTorture<Cell>
    let pool: LeasePool
    var counters: TortureCounters { torture.counters }
    func readerLoop(_ stop: StopFlag) { torture.readerLoop(stop) }
    func readBurst(_ count: Int) { torture.readBurst(count) }
    func signalRead() {
        torture.readBurst(1)
        counters.signalReads.add(1, ordering: .relaxed)
    }
    func updateOnce() { torture.updateOnce(pool) }
    func finish() -> Int {
        torture.cell.barrier()
        return pool.live - 1  // the published value holds one lease
    }
}

struct TortureRun: ImplVisitor {
    let options: TortureOptions

    func visit<I: ReadSideImpl>(_ impl: I) -> TortureResult {
        let counters = TortureCounters()
        switch options.workload {
        case .snapshot:
            let pool = LeasePool()
            if let rcu = impl as? RCUImpl {
                let cell = LibrarySnapshotCell(
                    cell: RCUSnapshot(SnapshotValue(generation: 0, pool: pool), domain: rcu.domain))
                let workload = SnapshotWorkloadRun(torture: SnapshotTorture(cell: cell, counters: counters), pool: pool)
                return run(impl, workload)
            }
            let cell = LiburcuSnapshotCell(SnapshotValue(generation: 0, pool: pool), mode: options.gracePeriodMode)
            let workload = SnapshotWorkloadRun(torture: SnapshotTorture(cell: cell, counters: counters), pool: pool)
            return run(impl, workload)
        case .hashmap:
            return runHashMap(impl, counters: counters)
        case .list:
            return runList(impl, counters: counters)
        case .pointer:
            let ring = ElementRing(count: 16 + 16 * options.updaters)
            let torture = PointerTorture(impl: impl, ring: ring, counters: counters, dwell: options.dwell)
            return run(impl, PointerWorkload(torture: torture, mode: options.gracePeriodMode))
        }
    }

    func run<I: ReadSideImpl, W: TortureWorkload>(_ impl: I, _ workload: W) -> TortureResult {
        let counters = workload.counters
        let stop = StopFlag()
        let registry = ReaderRegistry()
        let faults = Set(options.faults)
        let cpus = onlineCPUs()
        var threads: [StressThreadBox] = []
        var faultThreads: [StressThreadBox] = []

        if faults.contains(.signals) {
            signalReadHook = { workload.signalRead() }
            _ = stress_install_handler(SIGUSR1, signalHandler)
        }

        let rssAtStart = residentKilobytes()
        let start = nowNanoseconds()
        for _ in 0..<options.readerCount {
            threads.append(StressThreadBox(StressThread {
                impl.threadBegin()
                registry.add()
                workload.readerLoop(stop)
                registry.remove()
                impl.threadEnd()
            }))
        }
        var updaterThreads: [StressThreadBox] = []
        for _ in 0..<options.updaters {
            updaterThreads.append(StressThreadBox(StressThread {
                impl.threadBegin()
                while !stop.isSet && !interruptRequested.load(ordering: .relaxed) {
                    workload.updateOnce()
                }
                impl.threadEnd()
            }))
        }
        if faults.contains(.migrate) {
            faultThreads.append(StressThreadBox(StressThread {
                var generator = SystemRandomNumberGenerator()
                while !stop.isSet {
                    registry.withRandomThread { tid, _ in
                        _ = stress_pin_thread(tid, Int32(Int.random(in: 0..<cpus, using: &generator)))
                    }
                    sleepSeconds(0.0002)
                }
            }))
        }
        if faults.contains(.signals) {
            faultThreads.append(StressThreadBox(StressThread {
                while !stop.isSet {
                    registry.withRandomThread { _, thread in _ = pthread_kill(thread, SIGUSR1) }
                    sleepSeconds(0.00005)
                }
            }))
        }
        if faults.contains(.fork) {
            // Every 50 ms: fork; the child (one thread, mid-flight copies of
            // every domain) must synchronize, retire and barrier, then exit 0.
            // liburcu-memb's child only exits: memb has no fork support for
            // its registered readers (a synchronize there would wait for
            // threads that do not exist).
            let usesLibrary = impl is RCUImpl
            if usesLibrary {
                // Warm up in the parent what the child will run: a child
                // that first instantiates Swift type metadata can block on a
                // runtime lock another parent thread held at fork(). (One
                // child in the fault matrix hung on a run's first fork, while
                // its threads were starting; likely this, not proven.)
                impl.retireNewObject()
                impl.barrier()
            }
            faultThreads.append(StressThreadBox(StressThread {
                while !stop.isSet {
                    if !forkAndCheckChild({
                        guard usesLibrary else { return true }
                        impl.synchronize()
                        impl.retireNewObject()
                        impl.barrier()
                        return true
                    }) {
                        counters.violations.add(1, ordering: .relaxed)
                        counters.forkFailures.add(1, ordering: .relaxed)
                    }
                    counters.forks.add(1, ordering: .relaxed)
                    sleepSeconds(0.05)
                }
            }))
        }
        if faults.contains(.churn) {
            faultThreads.append(StressThreadBox(StressThread {
                while !stop.isSet {
                    let child = StressThread {
                        impl.threadBegin()
                        registry.add()
                        workload.readBurst(500)
                        registry.remove()
                        impl.threadEnd()
                    }
                    child.join()
                }
            }))
        }

        monitor(options: options, counters: counters, start: start)
        stop.set()
        for thread in faultThreads { thread.join() }
        for thread in updaterThreads { thread.join() }
        for thread in threads { thread.join() }
        if faults.contains(.signals) {
            // No signal is sent after the storm thread was joined, and every
            // reader that could receive one has been joined too.
            signalReadHook = nil
        }
        let leaked = workload.finish()
        let end = nowNanoseconds()

        var result = TortureResult(options: options)
        result.seconds = Double(end - start) / 1e9
        result.reads = counters.reads.load(ordering: .relaxed)
        result.signalReads = counters.signalReads.load(ordering: .relaxed)
        result.updates = counters.updates.load(ordering: .relaxed)
        result.gracePeriods = counters.gracePeriods.load(ordering: .relaxed)
        result.violations = counters.violations.load(ordering: .relaxed)
        result.leaked = leaked
        result.ageHistogram = counters.histogram.withLock { $0 }
        result.interrupted = interruptRequested.load(ordering: .relaxed)
        result.details += [("rss_start_kb", rssAtStart), ("rss_end_kb", residentKilobytes()),
                           ("rss_peak_kb", peakResidentKilobytes())]
        if faults.contains(.fork) {
            result.details += [("forks", counters.forks.load(ordering: .relaxed)),
                               ("fork_failures", counters.forkFailures.load(ordering: .relaxed))]
        }
        return result
    }

    /// Waits for the run's end, printing a live line on a TTY.
    private func monitor(options: TortureOptions, counters: TortureCounters, start: UInt64) {
        let live = stderrIsTerminal && options.showsProgress && options.duration > 2
        var lastPrint = 0.0
        while true {
            let elapsed = Double(nowNanoseconds() - start) / 1e9
            if elapsed >= options.duration || interruptRequested.load(ordering: .relaxed) { break }
            if options.stopOnViolation && counters.violations.load(ordering: .relaxed) > 0 { break }
            if live && elapsed - lastPrint >= 0.5 {
                lastPrint = elapsed
                writeStandardError("\r\u{1B}[K[\(options.flavor.rawValue)] \(fixed(elapsed, 1))s"
                    + " reads \(counters.reads.load(ordering: .relaxed))"
                    + " updates \(counters.updates.load(ordering: .relaxed))"
                    + " violations \(counters.violations.load(ordering: .relaxed))")
            }
            sleepSeconds(0.02)
        }
        if live { writeStandardError("\r\u{1B}[K") }
    }
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
