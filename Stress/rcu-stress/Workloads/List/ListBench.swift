// `bench --suite list`: `traverse-1k` (sum the 1,000 elements of a list inside
// one read section, per op) and `mixed-90-10` (90% such traversals, 10%
// writer ops alternating an append at the tail and a removal at the head, so
// the size stays ~1k). Impls: RCUList, liburcu's cds_list_rcu (traversal
// written in C as cds_list_for_each_entry_rcu inside rcu_read_lock, inlined;
// writers under a pthread mutex, nodes freed by call_rcu) and Mutex<Array>
// (readers and writers take the one lock). Each impl is a concrete type so its
// loop is specialised, as in the other suites.
import CLiburcu
import Glibc
import RCU
import RCUCollections
import Synchronization

protocol ListBenchTarget: Sendable {
    var name: String { get }
    func threadBegin()
    func threadEnd()
    /// One traversal summing every element, in one read section (or lock).
    func traverseSum() -> Int
    func insertAtTail(_ value: Int)
    func removeAtHead()
    /// Waits until removed nodes have been reclaimed (not timed).
    func settle()
}

extension ListBenchTarget {
    func threadBegin() {}
    func threadEnd() {}
    func settle() {}
}

struct RCUListBench: ListBenchTarget {
    let name = "RCUList"
    let list: RCUList<Int>
    init(count: Int) { list = RCUList(0..<count) }

    @inline(__always)
    func traverseSum() -> Int {
        list.read { view in
            var sum = 0
            for value in view { sum &+= value }
            return sum
        }
    }
    func insertAtTail(_ value: Int) { list.append(value) }
    func removeAtHead() { list.popFirst() }
    func settle() { list.domain.barrier() }
}

final class CdsListBench: ListBenchTarget, @unchecked Sendable {
    // @unchecked Sendable: the C list is built for concurrent use (writers
    // under its mutex, readers in liburcu read sections).
    let name = "cds_list_rcu"
    let list: UnsafeMutablePointer<clu_list>

    init(count: Int) {
        list = clu_list_create(nil, nil)
        for value in 0..<count { _ = clu_list_append(list, value, -1) }
    }
    deinit {
        // Empty it from a registered thread, wait for the frees, then free the head.
        runThreads(1) { [self] _ in
            clu_register_thread()
            _ = clu_list_remove_all(self.list)
            clu_barrier()
            clu_unregister_thread()
        }
        clu_list_destroy(list)
    }

    func threadBegin() { clu_register_thread() }
    func threadEnd() { clu_unregister_thread() }
    @inline(__always)
    func traverseSum() -> Int { clu_list_sum(list) }
    func insertAtTail(_ value: Int) { _ = clu_list_append(list, value, -1) }
    func removeAtHead() {
        var value = 0
        _ = clu_list_pop_first(list, &value)
    }
    func settle() {
        runThreads(1) { _ in
            clu_register_thread()
            clu_barrier()
            clu_unregister_thread()
        }
    }
}

final class MutexArrayBench: ListBenchTarget {
    let name = "Mutex<Array>"
    let array: Mutex<[Int]>
    init(count: Int) { array = Mutex(Array(0..<count)) }

    @inline(__always)
    func traverseSum() -> Int {
        array.withLock { array in
            var sum = 0
            for value in array { sum &+= value }
            return sum
        }
    }
    func insertAtTail(_ value: Int) { array.withLock { $0.append(value) } }
    func removeAtHead() { array.withLock { if !$0.isEmpty { $0.removeFirst() } } }
}

enum ListBenchCase: String, CaseIterable {
    case traverse1k = "traverse-1k"
    case mixed9010 = "mixed-90-10"
}

@inline(never)
func listTraverseLoop<T: ListBenchTarget>(_ target: T, _ stop: StopFlag) -> UInt64 {
    var operations: UInt64 = 0
    var accumulator = 0
    while !stop.isSet {
        for _ in 0..<32 { accumulator &+= target.traverseSum() }
        operations &+= 32
    }
    sink.consume(accumulator)
    return operations
}

@inline(never)
func listMixedLoop<T: ListBenchTarget>(_ target: T, _ stop: StopFlag, seed: UInt64) -> UInt64 {
    var operations: UInt64 = 0
    var accumulator = 0
    var random = StressRandom(seed: seed)
    var insertNext = true
    var value = 1_000_000
    while !stop.isSet {
        for _ in 0..<32 {
            if random.below(10) != 0 {
                accumulator &+= target.traverseSum()
            } else if insertNext {
                value &+= 1
                target.insertAtTail(value)
                insertNext = false
            } else {
                target.removeAtHead()
                insertNext = true
            }
        }
        operations &+= 32
    }
    sink.consume(accumulator)
    return operations
}

func measureList<T: ListBenchTarget>(_ target: T, benchCase: ListBenchCase, threads: Int, seconds: Double) -> Sample {
    let box = SampleBox()
    runMeasured(seconds: seconds, workers: threads) { index, stop, gate in
        pinCurrentThread(to: index)
        target.threadBegin()
        gate.arriveAndWait()
        let start = nowNanoseconds()
        let operations: UInt64
        switch benchCase {
        case .traverse1k: operations = listTraverseLoop(target, stop)
        case .mixed9010: operations = listMixedLoop(target, stop, seed: 0x1157 &+ UInt64(index))
        }
        box.add(operations: operations, nanoseconds: nowNanoseconds() - start)
        target.threadEnd()
    }
    // Not timed: let this slice's removed nodes be reclaimed before the next impl.
    target.settle()
    return box.value
}

enum AnyListBench {
    case rcuList(RCUListBench)
    case cdsList(CdsListBench)
    case mutexArray(MutexArrayBench)

    var name: String {
        switch self {
        case .rcuList(let target): return target.name
        case .cdsList(let target): return target.name
        case .mutexArray(let target): return target.name
        }
    }

    func measure(_ benchCase: ListBenchCase, threads: Int, seconds: Double) -> Sample {
        switch self {
        case .rcuList(let target): return measureList(target, benchCase: benchCase, threads: threads, seconds: seconds)
        case .cdsList(let target): return measureList(target, benchCase: benchCase, threads: threads, seconds: seconds)
        case .mutexArray(let target): return measureList(target, benchCase: benchCase, threads: threads, seconds: seconds)
        }
    }
}

func runListSuite(_ options: BenchOptions, slice: Double) -> [BenchResult] {
    var results: [BenchResult] = []
    for benchCase in ListBenchCase.allCases {
        for threads in options.threadCounts {
            // Fresh 1k-element lists per case and thread count, so every impl
            // starts from the same size and layout.
            let targets: [AnyListBench] = [
                .rcuList(RCUListBench(count: 1000)),
                .cdsList(CdsListBench(count: 1000)),
                .mutexArray(MutexArrayBench(count: 1000)),
            ].filter { options.includes($0.name) }
            results += interleavedResults(.list, benchCase.rawValue, threads: threads, names: targets.map(\.name),
                                          rounds: options.rounds, label: "list \(benchCase.rawValue) x\(threads)") {
                targets[$0].measure(benchCase, threads: threads, seconds: slice).nanosecondsPerOperation
            }
        }
    }
    return results
}
