// `bench --suite snapshot`: read one field of a read-mostly config value, via
// RCUSnapshot, RCUReference, liburcu-memb (rcu_read_lock + rcu_dereference of
// a C struct) and Mutex. Each impl is a concrete type so its loop is
// specialised, as in the other suites.
import CLiburcu
import Glibc
import RCU
import Synchronization

struct BenchConfig: Sendable {
    var port = 8080
    var limits = [1, 2, 3, 4]
}

final class BenchConfigObject: Sendable {
    let port = 8080
}

protocol ConfigReader: Sendable {
    var name: String { get }
    func threadBegin()
    func threadEnd()
    func readPort() -> Int
}

extension ConfigReader {
    func threadBegin() {}
    func threadEnd() {}
}

struct SnapshotReader: ConfigReader {
    let name = "RCUSnapshot"
    let cell = RCUSnapshot(BenchConfig())
    @inline(__always) func readPort() -> Int { cell.read { $0.port } }
}

struct ReferenceReader: ConfigReader {
    let name = "RCUReference"
    let reference = RCUReference(BenchConfigObject())
    @inline(__always) func readPort() -> Int { reference.read { $0.unsafelyUnwrapped.port } }
}

/// liburcu: a C-layout struct behind a pointer slot.
final class LiburcuConfigReader: ConfigReader, @unchecked Sendable {
    // @unchecked Sendable: the slot and the struct are written once in init.
    let name = "liburcu-memb"
    private let value: UnsafeMutablePointer<Int>
    private let slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    init() {
        value = .allocate(capacity: 4)
        value.initialize(repeating: 8080, count: 4)
        slot = .allocate(capacity: 1)
        slot.initialize(to: UnsafeMutableRawPointer(value))
    }
    deinit {
        value.deallocate()
        slot.deallocate()
    }
    func threadBegin() { clu_register_thread() }
    func threadEnd() { clu_unregister_thread() }
    @inline(__always) func readPort() -> Int {
        clu_read_lock()
        let port = clu_dereference(slot)!.assumingMemoryBound(to: Int.self).pointee
        clu_read_unlock()
        return port
    }
}

final class MutexConfigReader: ConfigReader {
    let name = "Mutex"
    private let config = Mutex(BenchConfig())
    @inline(__always) func readPort() -> Int { config.withLock { $0.port } }
}

enum AnyConfigReader {
    case snapshot(SnapshotReader)
    case reference(ReferenceReader)
    case liburcu(LiburcuConfigReader)
    case mutex(MutexConfigReader)

    var name: String {
        switch self {
        case .snapshot(let reader): return reader.name
        case .reference(let reader): return reader.name
        case .liburcu(let reader): return reader.name
        case .mutex(let reader): return reader.name
        }
    }

    func measure(threads: Int, seconds: Double) -> Sample {
        switch self {
        case .snapshot(let reader): return measureConfigReads(reader, threads: threads, seconds: seconds)
        case .reference(let reader): return measureConfigReads(reader, threads: threads, seconds: seconds)
        case .liburcu(let reader): return measureConfigReads(reader, threads: threads, seconds: seconds)
        case .mutex(let reader): return measureConfigReads(reader, threads: threads, seconds: seconds)
        }
    }
}

@inline(never)
func configReadLoop<R: ConfigReader>(_ reader: R, _ stop: StopFlag) -> UInt64 {
    var operations: UInt64 = 0
    var accumulator = 0
    while !stop.isSet {
        for _ in 0..<measureBatch { accumulator &+= reader.readPort() }
        operations &+= UInt64(measureBatch)
    }
    sink.consume(accumulator)
    return operations
}

func measureConfigReads<R: ConfigReader>(_ reader: R, threads: Int, seconds: Double) -> Sample {
    let box = SampleBox()
    runMeasured(seconds: seconds, workers: threads) { index, stop, gate in
        pinCurrentThread(to: index)
        reader.threadBegin()
        gate.arriveAndWait()
        let start = nowNanoseconds()
        let operations = configReadLoop(reader, stop)
        box.add(operations: operations, nanoseconds: nowNanoseconds() - start)
        reader.threadEnd()
    }
    return box.value
}

func runSnapshotSuite(_ options: BenchOptions, slice: Double) -> [BenchResult] {
    let readers: [AnyConfigReader] = [
        .snapshot(SnapshotReader()), .reference(ReferenceReader()),
        .liburcu(LiburcuConfigReader()), .mutex(MutexConfigReader()),
    ].filter { options.includes($0.name) }
    return options.threadCounts.flatMap { threads in
        interleavedResults(.snapshot, "read-field", threads: threads, names: readers.map(\.name), rounds: options.rounds,
                           label: "snapshot read-field x\(threads)") {
            readers[$0].measure(threads: threads, seconds: slice).nanosecondsPerOperation
        }
    }
}
