// `bench --suite read-side`, `synchronize` and `retire`: the primitives of
// every flavor (ReadSideImpl), on the pointer workload's unit: a published
// pointer read inside a section, a grace period, a retired object. Each loop
// is a generic `@inline(never)` function specialised per impl, so the read
// lock and unlock reach it inlined: no existential, no closure call.
import Glibc
import RCU
import Synchronization

// MARK: - read-side suite

enum ReadCase: String, CaseIterable {
    case lockUnlock = "lock-unlock"
    case lockDerefUnlock = "lock-deref-unlock"
    case lockCallUnlock = "lock-call-unlock"
}

let measureBatch = 1 << 14

@inline(never)
func lockUnlockLoop<I: ReadSideImpl>(_ impl: I, _ stop: StopFlag) -> UInt64 {
    var operations: UInt64 = 0
    while !stop.isSet {
        for _ in 0..<measureBatch {
            impl.section {}
        }
        operations &+= UInt64(measureBatch)
    }
    return operations
}

@inline(never)
func lockDerefUnlockLoop<I: ReadSideImpl>(_ impl: I, _ published: Published, _ stop: StopFlag) -> UInt64 {
    var operations: UInt64 = 0
    var accumulator = 0
    while !stop.isSet {
        for _ in 0..<measureBatch {
            accumulator &+= impl.section { impl.dereference(published) }
        }
        operations &+= UInt64(measureBatch)
    }
    sink.consume(accumulator)
    return operations
}

/// lock-call-unlock's callee: never inlined, and it writes memory the
/// section's compiler barriers must keep inside the section, so every impl's
/// loop holds its state across a real call, as a caller's code does.
@inline(never)
func sectionCallee(_ cell: UnsafeMutablePointer<Int>) -> Int {
    cell.pointee &+= 1
    return cell.pointee
}

@inline(never)
func lockCallUnlockLoop<I: ReadSideImpl>(_ impl: I, _ stop: StopFlag) -> UInt64 {
    // Per thread, so two threads do not share the callee's line.
    let cell = UnsafeMutablePointer<Int>.allocate(capacity: 16)
    cell.initialize(repeating: 0, count: 16)
    defer { cell.deallocate() }
    var operations: UInt64 = 0
    var accumulator = 0
    while !stop.isSet {
        for _ in 0..<measureBatch {
            accumulator &+= impl.section { sectionCallee(cell) }
        }
        operations &+= UInt64(measureBatch)
    }
    sink.consume(accumulator)
    return operations
}

struct ReadSideMeasurement: ImplVisitor {
    let benchCase: ReadCase
    let threads: Int
    let seconds: Double
    let published: Published

    func visit<I: ReadSideImpl>(_ impl: I) -> Sample {
        let box = SampleBox()
        let benchCase = benchCase
        let published = published
        runMeasured(seconds: seconds, workers: threads) { index, stop, gate in
            pinCurrentThread(to: index)
            impl.threadBegin()
            gate.arriveAndWait()
            let start = nowNanoseconds()
            let operations: UInt64
            switch benchCase {
            case .lockUnlock: operations = lockUnlockLoop(impl, stop)
            case .lockDerefUnlock: operations = lockDerefUnlockLoop(impl, published, stop)
            case .lockCallUnlock: operations = lockCallUnlockLoop(impl, stop)
            }
            box.add(operations: operations, nanoseconds: nowNanoseconds() - start)
            impl.threadEnd()
        }
        return box.value
    }
}

// MARK: - synchronize suite

enum SynchronizeCase: String, CaseIterable {
    case idle
    case busyReader = "busy-reader"
    case concurrent2 = "concurrent-2"
}

@inline(never)
func busyReaderLoop<I: ReadSideImpl>(_ impl: I, _ stop: StopFlag) {
    while !stop.isSet {
        for _ in 0..<256 { impl.section {} }
    }
}

@inline(never)
func synchronizeLoop<I: ReadSideImpl>(_ impl: I, _ stop: StopFlag) -> UInt64 {
    var operations: UInt64 = 0
    while !stop.isSet {
        impl.synchronize()
        operations &+= 1
    }
    return operations
}

struct SynchronizeMeasurement: ImplVisitor {
    let benchCase: SynchronizeCase
    let seconds: Double

    func visit<I: ReadSideImpl>(_ impl: I) -> Sample {
        let box = SampleBox()
        let readers = benchCase == .idle ? 0 : 1
        let updaters = benchCase == .concurrent2 ? 2 : 1
        let cpus = onlineCPUs()
        runMeasured(
            seconds: seconds, workers: updaters, background: readers,
            backgroundBody: { _, stop, gate in
                pinCurrentThread(to: cpus - 1)
                impl.threadBegin()
                gate.arriveAndWait()
                busyReaderLoop(impl, stop)
                impl.threadEnd()
            },
            body: { index, stop, gate in
                pinCurrentThread(to: index)
                gate.arriveAndWait()
                let start = nowNanoseconds()
                let operations = synchronizeLoop(impl, stop)
                box.add(operations: operations, nanoseconds: nowNanoseconds() - start)
            })
        return box.value
    }
}

// MARK: - retire suite

@inline(never)
func retireLoop<I: ReadSideImpl>(_ impl: I, _ stop: StopFlag) -> UInt64 {
    var operations: UInt64 = 0
    while !stop.isSet {
        for _ in 0..<256 { impl.retireNewObject() }
        operations &+= 256
    }
    return operations
}

enum RetireCase: String, CaseIterable {
    /// Allocate an object and retire it: malloc and free on both sides.
    case retire
    /// Retire objects prepared before the clock starts; liburcu's callback
    /// frees nothing. The library's own cost, its worker's included.
    case retireOnly = "retire-only"
}

/// Objects per retire-only cycle and thread: a cycle retires them all, then
/// waits in `barrier()` (timed) before reusing them. 2^18 per thread keeps
/// two threads under the default 2^20 pending bound.
let retirePoolSize = 1 << 18

@inline(never)
func retireOnlyLoop<I: ReadSideImpl>(_ impl: I, _ stop: StopFlag) -> (operations: UInt64, nanoseconds: UInt64) {
    let pool = impl.makeRetirePool(count: retirePoolSize)
    var operations: UInt64 = 0
    var nanoseconds: UInt64 = 0
    while !stop.isSet {
        impl.refillRetirePool(pool, count: retirePoolSize)  // not timed
        let start = nowNanoseconds()
        var index = 0
        while index < retirePoolSize {
            for _ in 0..<256 {
                impl.retirePooled(pool, index)
                index &+= 1
            }
            if stop.isSet { break }
        }
        // The worker's processing is part of the cost: the cycle ends when
        // every callback it queued has run.
        impl.barrier()
        nanoseconds &+= nowNanoseconds() - start
        operations &+= UInt64(index)
    }
    impl.releaseRetirePool(pool, count: retirePoolSize)
    return (operations, nanoseconds)
}

struct RetireMeasurement: ImplVisitor {
    let benchCase: RetireCase
    let threads: Int
    let seconds: Double

    func visit<I: ReadSideImpl>(_ impl: I) -> Sample {
        let box = SampleBox()
        let benchCase = benchCase
        runMeasured(seconds: seconds, workers: threads) { index, stop, gate in
            pinCurrentThread(to: index)
            impl.threadBegin()
            gate.arriveAndWait()
            switch benchCase {
            case .retire:
                let start = nowNanoseconds()
                let operations = retireLoop(impl, stop)
                box.add(operations: operations, nanoseconds: nowNanoseconds() - start)
            case .retireOnly:
                let (operations, nanoseconds) = retireOnlyLoop(impl, stop)
                box.add(operations: operations, nanoseconds: nanoseconds)
            }
            impl.threadEnd()
        }
        // Not timed: let the callbacks of this slice run before the next impl.
        impl.barrier()
        return box.value
    }
}

// MARK: - The suites

func runReadSideSuite(_ impls: [AnyImpl], _ options: BenchOptions, slice: Double) -> [BenchResult] {
    let published = Published(value: 8)
    return ReadCase.allCases.flatMap { benchCase in
        options.threadCounts.flatMap { threads in
            interleavedResults(.readSide, benchCase.rawValue, threads: threads, impls: impls, rounds: options.rounds,
                               ReadSideMeasurement(benchCase: benchCase, threads: threads, seconds: slice, published: published))
        }
    }
}

func runSynchronizeSuite(_ impls: [AnyImpl], _ options: BenchOptions, slice: Double) -> [BenchResult] {
    SynchronizeCase.allCases.flatMap { benchCase in
        interleavedResults(.synchronize, benchCase.rawValue, threads: benchCase == .concurrent2 ? 2 : 1, impls: impls,
                           rounds: options.rounds, SynchronizeMeasurement(benchCase: benchCase, seconds: slice))
    }
}

func runRetireSuite(_ impls: [AnyImpl], _ options: BenchOptions, slice: Double) -> [BenchResult] {
    RetireCase.allCases.flatMap { benchCase in
        options.threadCounts.flatMap { threads in
            interleavedResults(.retire, benchCase.rawValue, threads: threads, impls: impls, rounds: options.rounds,
                               RetireMeasurement(benchCase: benchCase, threads: threads, seconds: slice))
        }
    }
}
