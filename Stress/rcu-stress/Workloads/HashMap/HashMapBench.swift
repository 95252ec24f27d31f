// `bench --suite hashmap`: RCUHashMap against cds_lfht (liburcu's rculfhash)
// and Mutex<Dictionary>, with the same Int keys and the same hash: every impl
// hashes with Swift's `hashValue` (SipHash-1-3, seeded per process), and
// cds_lfht receives that value. Lookups take their own read section (or the
// lock) per operation, as a caller's would.
//
// Cases: `lookup-64k` / `lookup-1m` (random present keys of a prefilled
// map), `mixed-90-10` (90% lookups, 5% inserts, 5% removes over twice the
// prefilled key range), `insert-remove` (each thread inserts and removes its
// own fresh keys next to a 64k prefill; both count as operations).
import CLiburcu
import Glibc
import RCU
import RCUCollections
import Synchronization

protocol BenchHashMap: Sendable {
    var name: String { get }
    func threadBegin()
    func threadEnd()
    func lookup(_ key: Int) -> Int
    func insert(_ key: Int, _ value: Int)
    func remove(_ key: Int)
}

extension BenchHashMap {
    func threadBegin() {}
    func threadEnd() {}
}

struct RCUHashMapBench: BenchHashMap {
    let name = "RCUHashMap"
    let map = RCUHashMap<Int, Int>()
    @inline(__always) func lookup(_ key: Int) -> Int { map[key] ?? 0 }
    @inline(__always) func insert(_ key: Int, _ value: Int) { map[key] = value }
    @inline(__always) func remove(_ key: Int) { map.removeValue(forKey: key) }
}

final class LfhtBench: BenchHashMap, @unchecked Sendable {
    // @unchecked Sendable: `table` is created in init and destroyed in
    // deinit; cds_lfht is safe for concurrent use by registered threads.
    let name = "cds_lfht"
    let table: OpaquePointer

    init(initialBuckets: Int = 16) {
        clu_register_thread()
        table = clu_ht_new(UInt(initialBuckets))
        clu_unregister_thread()
    }

    deinit {
        clu_register_thread()
        clu_ht_destroy(table)
        clu_unregister_thread()
    }

    func threadBegin() { clu_register_thread() }
    func threadEnd() { clu_unregister_thread() }
    @inline(__always) func lookup(_ key: Int) -> Int {
        var value: Int64 = 0
        _ = clu_ht_lookup(table, UInt(bitPattern: key.hashValue), Int64(key), &value)
        return Int(value)
    }
    @inline(__always) func insert(_ key: Int, _ value: Int) {
        var old: Int64 = 0
        _ = clu_ht_upsert(table, UInt(bitPattern: key.hashValue), Int64(key), Int64(value), &old, nil, nil)
    }
    @inline(__always) func remove(_ key: Int) {
        var old: Int64 = 0
        _ = clu_ht_remove(table, UInt(bitPattern: key.hashValue), Int64(key), &old)
    }
}

final class MutexDictionaryBench: BenchHashMap {
    let name = "Mutex<Dictionary>"
    let dictionary = Mutex<[Int: Int]>([:])
    @inline(__always) func lookup(_ key: Int) -> Int { dictionary.withLock { $0[key] ?? 0 } }
    @inline(__always) func insert(_ key: Int, _ value: Int) { dictionary.withLock { $0[key] = value } }
    @inline(__always) func remove(_ key: Int) { _ = dictionary.withLock { $0.removeValue(forKey: key) } }
}

enum HashMapCase: String, CaseIterable {
    case lookup64k = "lookup-64k"
    case lookup1m = "lookup-1m"
    case mixed = "mixed-90-10"
    case insertRemove = "insert-remove"

    var prefill: Int { self == .lookup1m ? 1 << 20 : 1 << 16 }
}

@inline(never)
func hashMapLoop<M: BenchHashMap>(_ map: M, _ benchCase: HashMapCase, thread: Int, _ stop: StopFlag) -> UInt64 {
    var random = StressRandom()
    var operations: UInt64 = 0
    var accumulator = 0
    let keyMask = UInt64(benchCase.prefill - 1)
    switch benchCase {
    case .lookup64k, .lookup1m:
        while !stop.isSet {
            for _ in 0..<measureBatch { accumulator &+= map.lookup(Int(random.next() & keyMask)) }
            operations &+= UInt64(measureBatch)
        }
    case .mixed:
        let spaceMask = keyMask << 1 | 1
        while !stop.isSet {
            for _ in 0..<measureBatch {
                let draw = random.next()
                let key = Int((draw >> 8) & spaceMask)
                let roll = draw & 0xFF
                if roll < 230 {
                    accumulator &+= map.lookup(key)
                } else if roll < 243 {
                    map.insert(key, key)
                } else {
                    map.remove(key)
                }
            }
            operations &+= UInt64(measureBatch)
        }
    case .insertRemove:
        var key = (thread + 1) << 40
        while !stop.isSet {
            for _ in 0..<(measureBatch / 2) {
                map.insert(key, key)
                map.remove(key)
                key += 1
            }
            operations &+= UInt64(measureBatch)
        }
    }
    sink.consume(accumulator)
    return operations
}

func measureHashMap<M: BenchHashMap>(_ map: M, _ benchCase: HashMapCase, threads: Int, seconds: Double) -> Sample {
    let box = SampleBox()
    runMeasured(seconds: seconds, workers: threads) { index, stop, gate in
        pinCurrentThread(to: index)
        map.threadBegin()
        gate.arriveAndWait()
        let start = nowNanoseconds()
        let operations = hashMapLoop(map, benchCase, thread: index, stop)
        box.add(operations: operations, nanoseconds: nowNanoseconds() - start)
        map.threadEnd()
    }
    return box.value
}

func prefillHashMap<M: BenchHashMap>(_ map: M, _ count: Int) {
    map.threadBegin()
    for key in 0..<count {
        if key & 4095 == 0 && Interrupt.isRequested { break }  // a signal stops the run
        map.insert(key, key)
    }
    map.threadEnd()
}

enum AnyBenchHashMap {
    case rcu(RCUHashMapBench)
    case lfht(LfhtBench)
    case mutex(MutexDictionaryBench)

    static func all() -> [AnyBenchHashMap] {
        [.rcu(RCUHashMapBench()), .lfht(LfhtBench()), .mutex(MutexDictionaryBench())]
    }

    var name: String {
        switch self {
        case .rcu(let map): return map.name
        case .lfht(let map): return map.name
        case .mutex(let map): return map.name
        }
    }

    func prefill(_ count: Int) {
        switch self {
        case .rcu(let map): prefillHashMap(map, count)
        case .lfht(let map):
            // Sized for the prefill first: inserting 1M keys into the 16
            // buckets it starts with, while liburcu 0.13's lazy auto-resize
            // lagged behind, took from seconds to over 8 minutes here.
            clu_register_thread()
            clu_ht_resize(map.table, UInt(count))
            clu_unregister_thread()
            prefillHashMap(map, count)
            // Let liburcu's resize worker finish growing before measuring.
            // Size it for its contents now (cds_lfht_resize, a public API),
            // as RCUHashMap sized itself while filling: in this process
            // liburcu 0.13's lazy auto-resize sometimes left the first
            // table far too small (6 us lookups at 64k entries).
            clu_register_thread()
            clu_barrier()
            clu_ht_resize(map.table, UInt(count))
            clu_unregister_thread()
        case .mutex(let map): prefillHashMap(map, count)
        }
    }

    func measure(_ benchCase: HashMapCase, threads: Int, seconds: Double) -> Sample {
        switch self {
        case .rcu(let map): return measureHashMap(map, benchCase, threads: threads, seconds: seconds)
        case .lfht(let map): return measureHashMap(map, benchCase, threads: threads, seconds: seconds)
        case .mutex(let map): return measureHashMap(map, benchCase, threads: threads, seconds: seconds)
        }
    }
}

func runHashMapSuite(_ options: BenchOptions, slice: Double) -> [BenchResult] {
    var results: [BenchResult] = []
    for benchCase in HashMapCase.allCases where !(options.omitsLargePrefills && benchCase.prefill > 1 << 16) {
        if Interrupt.isRequested { break }
        // Fresh maps per case, prefilled once and shared by its rounds.
        let maps = AnyBenchHashMap.all().filter { options.includes($0.name) }
        var progress = ProgressLine()
        for map in maps {
            progress.show("hashmap \(benchCase.rawValue): prefilling \(map.name) with \(benchCase.prefill) keys", force: true)
            map.prefill(benchCase.prefill)
        }
        progress.clear()
        for threads in options.threadCounts {
            results += interleavedResults(.hashmap, benchCase.rawValue, threads: threads, names: maps.map(\.name),
                                          rounds: options.rounds, label: "hashmap \(benchCase.rawValue) x\(threads)") {
                maps[$0].measure(benchCase, threads: threads, seconds: slice).nanosecondsPerOperation
            }
        }
    }
    return results
}
