// `torture --workload hashmap`: liburcu's test_urcu_hash checks on
// RCUHashMap (rcu flavors) and on cds_lfht (liburcu-memb).
// - Stable keys are inserted first and never removed (their values are
//   replaced): every lookup of one must succeed (test_urcu_hash's -V).
// - Churned keys are inserted, replaced and removed at random.
// - Every value holds a lease from a permanent pool, poisoned when the value
//   is freed; readers re-check the lease after a dwell inside their section.
// - Readers periodically traverse the whole map: no key twice (-U), every
//   stable key present, no poison.
// - At the end: prefill + inserts - removes must equal the final count, and
//   after removing everything and a barrier no lease may be outstanding.
import CLiburcu
import Glibc
@_spi(RCUTesting) import RCU
import RCUCollections
import Synchronization

let hashStableKeys = 512
/// Enough churned keys that the fill and drain phases move the table
/// between about 1k and 64k buckets, so resizes run under the readers.
let hashChurnKeys = 1 << 16

/// A map value: its key and a lease, stored inline so a reader checks them
/// without touching (or reference counting) another object; the owner
/// poisons the lease when the last copy of the value is freed.
struct HashTortureValue: Sendable {
    let key: Int
    let lease: Int
    let owner: Lease
    init(key: Int, pool: LeasePool) {
        self.key = key
        owner = Lease(pool)
        lease = owner.index
    }
}

/// The map under torture: RCUHashMap or cds_lfht.
protocol TortureHashMap: Sendable {
    func threadBegin()
    func threadEnd()
    /// Looks `key` up inside a read section; when found, re-checks its lease
    /// `dwell` times. Returns nil when absent, else whether it stayed live
    /// and belonged to `key`.
    func check(_ key: Int, dwell: Int) -> Bool?
    /// Inserts or replaces; returns whether a value was replaced.
    func upsert(_ key: Int) -> Bool
    /// Inserts unless present; returns whether it inserted.
    func insertUnique(_ key: Int) -> Bool
    /// Removes; returns whether this call removed the key.
    func remove(_ key: Int) -> Bool
    /// Visits every (key, lease is live) inside one read section.
    func traverse(_ visit: (Int, Bool) -> Void)
    var count: Int { get }
    var pool: LeasePool { get }
    /// The table size, where the map reports one (RCUHashMap).
    var bucketCount: Int? { get }
    /// Removes everything and waits until every removed value is freed.
    func drain()
    /// Removes everything without waiting (the broken flavor's worker).
    func drainWithoutWaiting()
    var gracePeriods: Int { get }
    /// Runs `body` after a grace period on the flavor's callback thread.
    func deferred(_ body: @escaping @Sendable () -> Void)
    /// `--sabotage duplicate-stable`: adds a second entry for `key` and
    /// returns a token for `removeDuplicate`, or nil where the map cannot
    /// hold a key twice (RCUHashMap).
    func addDuplicate(_ key: Int) -> UInt?
    func removeDuplicate(_ token: UInt)
}

struct LibraryTortureMap: TortureHashMap {
    let map: RCUHashMap<Int, HashTortureValue>
    let pool: LeasePool
    func threadBegin() {}
    func threadEnd() {}
    func check(_ key: Int, dwell: Int) -> Bool? {
        map.withValue(forKey: key) { value in
            var live = pool.isLive(value.lease)
            for _ in 0..<dwell where live { live = pool.isLive(value.lease) }
            return live && value.key == key
        }
    }
    func upsert(_ key: Int) -> Bool { map.updateValue(HashTortureValue(key: key, pool: pool), forKey: key) != nil }
    func insertUnique(_ key: Int) -> Bool { map.insertIfAbsent(HashTortureValue(key: key, pool: pool), forKey: key).inserted }
    func remove(_ key: Int) -> Bool { map.removeValue(forKey: key) != nil }
    func traverse(_ visit: (Int, Bool) -> Void) {
        map.forEach { key, value in visit(key, pool.isLive(value.lease) && value.key == key) }
    }
    var count: Int { map.count }
    var bucketCount: Int? { map.bucketCount }
    func drain() {
        map.removeAll()
        map.domain.barrier()
    }
    func drainWithoutWaiting() { map.removeAll() }
    var gracePeriods: Int { Int(map.domain.gracePeriodsCompleted) }
    func deferred(_ body: @escaping @Sendable () -> Void) { map.domain.defer(body) }
    func addDuplicate(_ key: Int) -> UInt? { nil }
    func removeDuplicate(_ token: UInt) {}
}

/// cds_lfht whose entries carry a lease as their value.
final class LiburcuTortureMap: TortureHashMap, @unchecked Sendable {
    // @unchecked Sendable: `table` is created in init and destroyed in
    // deinit; cds_lfht is safe for concurrent use by registered threads.
    let table: OpaquePointer
    let pool: LeasePool
    private let updates = Atomic<Int>(0)

    init(pool: LeasePool) {
        self.pool = pool
        table = clu_ht_new(16)
    }

    deinit { clu_ht_destroy(table) }

    private var context: UnsafeMutableRawPointer { Unmanaged.passUnretained(pool).toOpaque() }
    private static let release: @convention(c) (UnsafeMutableRawPointer?, Int64) -> Void = { context, lease in
        Unmanaged<LeasePool>.fromOpaque(context!).takeUnretainedValue().release(Int(lease))
    }

    func threadBegin() { clu_register_thread() }
    func threadEnd() { clu_unregister_thread() }
    func check(_ key: Int, dwell: Int) -> Bool? {
        clu_read_lock()
        defer { clu_read_unlock() }
        guard let node = clu_ht_find(table, UInt(bitPattern: key.hashValue), Int64(key)) else { return nil }
        let lease = Int(node.pointee.value)
        var live = pool.isLive(lease)
        for _ in 0..<dwell where live { live = pool.isLive(lease) }
        return live && node.pointee.key == Int64(key)
    }
    func upsert(_ key: Int) -> Bool {
        var old: Int64 = 0
        return clu_ht_upsert(table, UInt(bitPattern: key.hashValue), Int64(key), Int64(pool.acquire()),
                             &old, Self.release, context) != 0
    }
    func insertUnique(_ key: Int) -> Bool {
        var current: Int64 = 0
        let lease = pool.acquire()
        let inserted = clu_ht_insert_unique(table, UInt(bitPattern: key.hashValue), Int64(key), Int64(lease),
                                            &current, Self.release, context) != 0
        if !inserted { pool.release(lease) }  // its entry was never published
        return inserted
    }
    func remove(_ key: Int) -> Bool {
        var old: Int64 = 0
        return clu_ht_remove(table, UInt(bitPattern: key.hashValue), Int64(key), &old) != 0
    }
    func traverse(_ visit: (Int, Bool) -> Void) {
        withoutActuallyEscaping(visit) { visit in
            let box = TraverseBox(visit: visit, pool: pool)
            withExtendedLifetime(box) {
                clu_ht_for_each(table, Unmanaged.passUnretained(box).toOpaque()) { context, key, lease in
                    let box = Unmanaged<TraverseBox>.fromOpaque(context!).takeUnretainedValue()
                    box.visit(Int(key), box.pool.isLive(Int(lease)))
                }
            }
        }
    }
    var count: Int { clu_ht_count(table) }
    var bucketCount: Int? { nil }
    func drain() {
        _ = clu_ht_remove_all(table)
        clu_barrier()
    }
    func drainWithoutWaiting() { _ = clu_ht_remove_all(table) }
    var gracePeriods: Int { 0 }
    func deferred(_ body: @escaping @Sendable () -> Void) { LiburcuImpl().deferred(body) }
    func addDuplicate(_ key: Int) -> UInt? {
        let node = clu_ht_add_duplicate(table, UInt(bitPattern: key.hashValue), Int64(key), Int64(pool.acquire()),
                                        Self.release, context)
        return UInt(bitPattern: node)
    }
    func removeDuplicate(_ token: UInt) {
        _ = clu_ht_remove_node(table, UnsafeMutablePointer<clu_ht_node>(bitPattern: token))
    }
}

private final class TraverseBox {
    let visit: (Int, Bool) -> Void
    let pool: LeasePool
    init(visit: @escaping (Int, Bool) -> Void, pool: LeasePool) {
        self.visit = visit
        self.pool = pool
    }
}

extension LeasePool {
    func isLive(_ index: Int) -> Bool {
        index >= 0 && index < capacity && states[index].load(ordering: .relaxed) == liveState
    }
}

/// Counters beyond the shared ones; the detectors are violations too.
final class HashTortureCounters: Sendable {
    let missedStable = Detector(DetectorName.missedStable)
    let duplicates = Detector(DetectorName.duplicates)
    let poisoned = Detector(DetectorName.poisoned)
    let traversals = Atomic<Int>(0)
    let inserted = Atomic<Int>(0)
    let removed = Atomic<Int>(0)
    let smallestTable = Atomic<Int>(Int.max)
    let largestTable = Atomic<Int>(0)
}

/// What a sabotage has done and must undo (guarded by its Mutex).
final class SabotageBook: Sendable {
    struct State {
        /// The stable key (list: id) taken out last, to put back next.
        var removed: Int? = nil
        /// The duplicate entry added last, to remove next.
        var duplicate: UInt? = nil
        /// The stable key the next step works on.
        var next = 0
    }
    let state = Mutex(State())
}

struct HashMapWorkload<Map: TortureHashMap>: TortureWorkload {
    let map: Map
    let counters: TortureCounters
    let hashCounters: HashTortureCounters
    let dwell: Int
    let startGracePeriods: Int
    let sabotage: Sabotage?
    let sabotageBook = SabotageBook()
    /// Set for the broken flavor: the writer runs on the domain's worker
    /// (see WorkerDriver in ListWorkloads.swift).
    let workerDriver: WorkerDriver?

    /// One lookup: a stable key or a churned one. Returns false on a violation.
    private func readOne(_ random: inout StressRandom) -> Bool {
        let value = random.next()
        if value & 1 == 0 {
            let key = Int((value >> 8) % UInt64(hashStableKeys))
            switch map.check(key, dwell: dwell) {
            case nil:
                hashCounters.missedStable.add()
                return false
            case false?:
                hashCounters.poisoned.add()
                return false
            case true?:
                return true
            }
        }
        let key = hashStableKeys + Int((value >> 8) % UInt64(hashChurnKeys))
        if map.check(key, dwell: dwell) == false {
            hashCounters.poisoned.add()
            return false
        }
        return true
    }

    /// A full traversal: no duplicate, no poison, every stable key seen.
    private func traverse() -> Int {
        var seen = Set<Int>(minimumCapacity: hashStableKeys + hashChurnKeys)
        var bad = 0
        map.traverse { key, live in
            if !seen.insert(key).inserted {
                hashCounters.duplicates.add()
                bad += 1
            }
            if !live {
                hashCounters.poisoned.add()
                bad += 1
            }
        }
        for key in 0..<hashStableKeys where !seen.contains(key) {
            hashCounters.missedStable.add()
            bad += 1
        }
        hashCounters.traversals.add(1, ordering: .relaxed)
        return bad
    }

    private func reads(_ count: Int, _ random: inout StressRandom) {
        for _ in 0..<count where !readOne(&random) { counters.violations.add(1, ordering: .relaxed) }
        counters.reads.add(count, ordering: .relaxed)
    }

    func readerLoop(_ stop: StopFlag) {
        var random = StressRandom()
        var rounds = 0
        while !stop.isSet && !interruptRequested.load(ordering: .relaxed) {
            reads(256, &random)
            rounds += 1
            if rounds % 64 == 0 {
                let bad = traverse()
                if bad > 0 { counters.violations.add(bad, ordering: .relaxed) }
            }
        }
    }

    func readBurst(_ count: Int) {
        var random = StressRandom()
        reads(count, &random)
    }

    func signalRead() {
        var random = StressRandom(seed: UInt64(stress_gettid()))
        if !readOne(&random) { counters.violations.add(1, ordering: .relaxed) }
        counters.signalReads.add(1, ordering: .relaxed)
    }

    func updateOnce() {
        if let driver = workerDriver {
            // The broken flavor: the writer runs on the domain's worker;
            // this thread only starts it.
            driver.updaterStep { map.deferred { [self] in workerStep(driver) } }
            return
        }
        if let sabotage { sabotageStep(sabotage) }
        writerBatch()
    }

    /// A batch of writer operations on the broken domain's worker, which then
    /// queues the next batch; at the end it empties the map.
    func workerStep(_ driver: WorkerDriver) {
        if driver.stop.load(ordering: .acquiring) {
            map.drainWithoutWaiting()
            driver.done.store(true, ordering: .releasing)
            return
        }
        // A pause before each batch: the nodes the worker has just freed
        // stay intact (poisoned leases, valid links) until the batch's
        // allocations reuse them, so readers on them count poison instead
        // of following a reused node's garbage into a crash.
        sleepSeconds(0.001)
        writerBatch()
        map.deferred { [self] in workerStep(driver) }
    }

    /// One step of a sabotage: undo the previous one and break the next
    /// stable key.
    func sabotageStep(_ sabotage: Sabotage) {
        sabotageBook.state.withLock { state in
            let key = state.next
            state.next = (state.next + 1) % hashStableKeys
            switch sabotage {
            case .removeStable:
                if let removed = state.removed { _ = map.insertUnique(removed) }
                _ = map.remove(key)
                state.removed = key
            case .duplicateStable:
                if let token = state.duplicate { map.removeDuplicate(token) }
                state.duplicate = map.addDuplicate(key)
            }
        }
    }

    /// Puts back what the last sabotage step broke, so the leak accounting
    /// holds.
    func undoSabotage() {
        sabotageBook.state.withLock { state in
            if let removed = state.removed { _ = map.insertUnique(removed) }
            if let token = state.duplicate { map.removeDuplicate(token) }
            state.removed = nil
            state.duplicate = nil
        }
    }

    func writerBatch() {
        var random = StressRandom()
        // Phases of 256k updates: filling (60% inserts, 30% removes) and
        // draining (10% and 80%), so the table grows and shrinks.
        let filling = (counters.updates.load(ordering: .relaxed) >> 18) & 1 == 0
        let (upserts, uniques) = filling ? (35, 60) : (5, 10)
        for _ in 0..<64 {
            let value = random.next()
            let key = hashStableKeys + Int((value >> 8) % UInt64(hashChurnKeys))
            switch Int(value % 100) {
            case 0..<upserts:
                if !map.upsert(key) { hashCounters.inserted.add(1, ordering: .relaxed) }
            case upserts..<uniques:
                if map.insertUnique(key) { hashCounters.inserted.add(1, ordering: .relaxed) }
            case uniques..<90:
                if map.remove(key) { hashCounters.removed.add(1, ordering: .relaxed) }
            default:
                // Replace a stable key's value: never absent.
                if !map.upsert(Int((value >> 8) % UInt64(hashStableKeys))) {
                    hashCounters.missedStable.add()
                    counters.violations.add(1, ordering: .relaxed)
                }
            }
        }
        counters.updates.add(64, ordering: .relaxed)
        counters.gracePeriods.store(map.gracePeriods - startGracePeriods, ordering: .relaxed)
        if let buckets = map.bucketCount {
            hashCounters.smallestTable.min(buckets, ordering: .relaxed)
            hashCounters.largestTable.max(buckets, ordering: .relaxed)
        }
    }

    func finish() -> Int {
        if let driver = workerDriver {
            driver.stop.store(true, ordering: .releasing)
            if driver.started.load(ordering: .relaxed) {
                _ = waitWithBound(seconds: 30) { driver.done.load(ordering: .acquiring) }
            } else {
                map.drainWithoutWaiting()
            }
            // No barrier (it would queue from this thread, see WorkerDriver):
            // wait for the worker to free what the drain retired.
            _ = waitWithBound(seconds: 30) { map.pool.live == 0 }
            return map.pool.live
        }
        undoSabotage()
        let expected = hashStableKeys + hashCounters.inserted.load(ordering: .relaxed)
            - hashCounters.removed.load(ordering: .relaxed)
        let count = map.count
        map.drain()
        let outstanding = map.pool.live
        return abs(count - expected) + outstanding
    }
}

extension TortureRun {
    func runHashMap<I: ReadSideImpl>(_ impl: I, counters: TortureCounters) -> TortureResult {
        let pool = LeasePool()
        let hashCounters = HashTortureCounters()
        var result: TortureResult
        if let rcu = impl as? RCUImpl {
            let map = LibraryTortureMap(map: RCUHashMap(domain: rcu.domain), pool: pool)
            let prefill: @Sendable () -> Void = {
                for key in 0..<hashStableKeys { map.map[key] = HashTortureValue(key: key, pool: pool) }
            }
            let broken = options.flavor == .broken
            if broken {
                // On the worker, like every later write of the broken flavor:
                // the prefill's resizes retire the old tables.
                let done = OneShot()
                map.deferred {
                    prefill()
                    done.set()
                }
                done.wait()
            } else {
                prefill()
            }
            result = run(impl, HashMapWorkload(map: map, counters: counters, hashCounters: hashCounters,
                                               dwell: options.dwell, startGracePeriods: map.gracePeriods,
                                               sabotage: options.sabotage, workerDriver: broken ? WorkerDriver() : nil))
        } else {
            clu_register_thread()
            do {
                // Destroyed at the end of this scope, while registered.
                let map = LiburcuTortureMap(pool: pool)
                for key in 0..<hashStableKeys { _ = map.upsert(key) }
                result = run(impl, HashMapWorkload(map: map, counters: counters, hashCounters: hashCounters,
                                                   dwell: options.dwell, startGracePeriods: 0,
                                                   sabotage: options.sabotage, workerDriver: nil))
            }
            clu_unregister_thread()
        }
        let detectors = [hashCounters.missedStable, hashCounters.duplicates, hashCounters.poisoned]
        result.details += detectors.map { ($0.name, $0.value) }
            + [("traversals", hashCounters.traversals.load(ordering: .relaxed))]
        result.fired = detectors.filter { $0.value > 0 }.map(\.name)
        if impl is RCUImpl {
            result.details += [
                ("buckets_min", hashCounters.smallestTable.load(ordering: .relaxed)),
                ("buckets_max", hashCounters.largestTable.load(ordering: .relaxed)),
            ]
        }
        return result
    }
}
