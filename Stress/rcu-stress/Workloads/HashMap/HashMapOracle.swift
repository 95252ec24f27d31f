// `rcu-stress oracle --workload hashmap`: one seeded operation sequence
// applied to RCUHashMap and to cds_lfht, same keys and hashes, while reader
// threads look keys up in both. Every result must match, and so must the
// counts and the whole contents at checkpoints and at the end.
import CLiburcu
import Glibc
import RCU
import RCUCollections
import Synchronization

/// Values carry their key in the high bits, so a reader can check that what
/// it found belongs to the key it asked for.
private func oracleValue(key: Int, version: UInt64) -> Int { key << 24 | Int(version & 0xFF_FFFF) }
private let oracleKeySpace = 1 << 16

private final class OracleReaders: Sendable {
    let checks = Atomic<Int>(0)
    let violations = Atomic<Int>(0)
}

func runHashMapOracle(_ options: OracleOptions) -> Int32 {
    clu_register_thread()
    defer { clu_unregister_thread() }
    let map = RCUHashMap<Int, Int>()
    let table = clu_ht_new(16)!
    defer { clu_ht_destroy(table) }
    let tableBits = UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(table)))
    let stop = StopFlag()
    let readers = OracleReaders()
    var threads: [StressThreadBox] = []
    for index in 0..<options.readers {
        threads.append(StressThreadBox(StressThread {
            clu_register_thread()
            let table = OpaquePointer(bitPattern: tableBits)!
            var random = StressRandom(seed: options.seed &+ UInt64(index) &+ 1)
            var checks = 0
            while !stop.isSet {
                let key = Int(random.next() % UInt64(oracleKeySpace))
                if let value = map[key], value >> 24 != key { readers.violations.add(1, ordering: .relaxed) }
                var value: Int64 = 0
                if clu_ht_lookup(table, UInt(bitPattern: key.hashValue), Int64(key), &value) != 0,
                   Int(value) >> 24 != key {
                    readers.violations.add(1, ordering: .relaxed)
                }
                checks += 1
            }
            readers.checks.add(checks, ordering: .relaxed)
            clu_unregister_thread()
        }))
    }

    let start = nowNanoseconds()
    var random = StressRandom(seed: options.seed)
    var mismatch: String? = nil
    var completed = 0
    func contentsOfTable() -> [Int: Int] {
        let box = ContentsBox()
        withExtendedLifetime(box) {
            clu_ht_for_each(table, Unmanaged.passUnretained(box).toOpaque()) { context, key, value in
                Unmanaged<ContentsBox>.fromOpaque(context!).takeUnretainedValue().contents[Int(key)] = Int(value)
            }
        }
        return box.contents
    }
    func describe(_ value: Int?) -> String { value.map(String.init) ?? "nil" }

    var progress = ProgressLine()
    for step in 0..<options.operations {
        if Interrupt.isRequested { break }
        if step & 4095 == 0 {
            progress.show("oracle hashmap: \(step) of \(options.operations) operations, 0 mismatches, count \(map.count)")
        }
        let draw = random.next()
        let key = Int((draw >> 16) % UInt64(oracleKeySpace))
        let hash = UInt(bitPattern: key.hashValue)
        let value = oracleValue(key: key, version: draw)
        // Phases of 100k operations: filling, mixed and draining, so both
        // tables grow and shrink.
        let phase = (step / 100_000) % 3
        let (insertShare, uniqueShare) = phase == 0 ? (45, 60) : phase == 1 ? (30, 40) : (10, 15)
        let roll = Int(draw % 100)
        var operation: String
        var ours: String
        var theirs: String
        if step == oracleDivergeAt { map[key] = -1 }  // test hook: RCUHashMap only
        if step % 250_000 == 125_000 {
            operation = "removeAll()"
            let before = map.count
            map.removeAll()
            ours = "removed \(before)"
            theirs = "removed \(clu_ht_remove_all(table))"
        } else if roll < 25 {
            operation = "lookup(\(key))"
            var found: Int64 = 0
            ours = describe(map[key])
            theirs = describe(clu_ht_lookup(table, hash, Int64(key), &found) != 0 ? Int(found) : nil)
        } else if roll < 25 + insertShare {
            operation = "updateValue(\(value), forKey: \(key))"
            var old: Int64 = 0
            ours = describe(map.updateValue(value, forKey: key))
            theirs = describe(clu_ht_upsert(table, hash, Int64(key), Int64(value), &old, nil, nil) != 0 ? Int(old) : nil)
        } else if roll < 25 + uniqueShare {
            operation = "insertIfAbsent(\(value), forKey: \(key))"
            var current: Int64 = 0
            let result = map.insertIfAbsent(value, forKey: key)
            ours = "\(result.inserted) \(result.currentValue)"
            let inserted = clu_ht_insert_unique(table, hash, Int64(key), Int64(value), &current, nil, nil) != 0
            theirs = "\(inserted) \(inserted ? value : Int(current))"
        } else {
            operation = "removeValue(forKey: \(key))"
            var old: Int64 = 0
            ours = describe(map.removeValue(forKey: key))
            theirs = describe(clu_ht_remove(table, hash, Int64(key), &old) != 0 ? Int(old) : nil)
        }
        if ours != theirs {
            mismatch = "operation \(step): \(operation): RCUHashMap \(ours), cds_lfht \(theirs)"
            break
        }
        if step % 50_000 == 49_999 || step == options.operations - 1 {
            let (ourCount, theirCount) = (map.count, clu_ht_count(table))
            if ourCount != theirCount {
                mismatch = "after operation \(step): count: RCUHashMap \(ourCount), cds_lfht \(theirCount)"
                break
            }
            let (ourContents, theirContents) = (map.snapshot(), contentsOfTable())
            if ourContents != theirContents {
                let differing = Set(ourContents.keys).symmetricDifference(theirContents.keys).sorted().prefix(5)
                mismatch = "after operation \(step): contents differ (\(ourContents.count) against \(theirContents.count) entries; keys in one only: \(Array(differing)))"
                break
            }
        }
        completed = step + 1
    }
    progress.clear()
    stop.set()
    for thread in threads { thread.join() }
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let readerViolations = readers.violations.load(ordering: .relaxed)
    let failed = mismatch != nil || readerViolations > 0
    if options.json {
        emit(JSON.object([
            ("tool", .string("rcu-stress")), ("command", .string("oracle")), ("workload", .string("hashmap")),
            ("seed", .integer(Int64(bitPattern: options.seed))), ("ops", .integer(Int64(completed))),
            ("mismatches", .integer(mismatch == nil ? 0 : 1)), ("first_mismatch", mismatch.map(JSON.string) ?? .null),
            ("reader_checks", .integer(Int64(readers.checks.load(ordering: .relaxed)))),
            ("reader_violations", .integer(Int64(readerViolations))),
            ("final_count", .integer(Int64(map.count))), ("seconds", .number((seconds * 1000).rounded() / 1000)),
            ("interrupted", .bool(Interrupt.isRequested)),
        ]).render())
    } else {
        if let mismatch { emit("MISMATCH \(mismatch)") }
        emit("oracle hashmap seed \(options.seed): \(completed) operations, \(mismatch == nil ? 0 : 1) mismatches,"
              + " \(readers.checks.load(ordering: .relaxed)) reader lookups with \(readerViolations) violations,"
              + " final count \(map.count), \(fixed(seconds, 1)) s")
        if Interrupt.isRequested { emit("interrupted: partial results") }
    }
    return failed ? 1 : 0
}

private final class ContentsBox {
    var contents: [Int: Int] = [:]
}
