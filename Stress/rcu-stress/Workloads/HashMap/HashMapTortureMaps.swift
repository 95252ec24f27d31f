// The maps of `torture --workload hashmap` (HashMapTorture.swift): RCUHashMap
// for this library's flavors and cds_lfht for liburcu-memb, behind one
// protocol, with values that carry a lease from the permanent pool.
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
