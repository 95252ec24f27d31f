// The lists of `torture --workload list` (ListTorture.swift): RCUList for
// this library's flavors and liburcu's cds_list for liburcu-memb, behind one
// protocol; their elements carry a lease from the permanent pool.
// ListOracle.swift and ListBench.swift hold the oracle and the bench suite.
import CLiburcu
import Glibc
import RCU
import RCUCollections
import Synchronization

/// An element of the list torture (and of the oracle's RCUList).
struct ListElement: Sendable {
    let id: Int
    let lease: Int
    let owner: Lease
    init(id: Int, pool: LeasePool) {
        owner = Lease(pool)
        self.id = id
        lease = owner.index
    }
}

/// The free hook of the cds_list nodes: poisons the node's lease in the
/// LeasePool named by the context (unretained; the pool outlives the list).
let listLeaseFreeHook: clu_list_free_hook = { context, lease in
    Unmanaged<LeasePool>.fromOpaque(context!).takeUnretainedValue().release(lease)
}

/// The list under torture: RCUList or liburcu's cds_list.
protocol ListTortureList: Sendable {
    associatedtype Handle
    func append(id: Int) -> Handle
    func prepend(id: Int) -> Handle
    func insert(id: Int, after anchor: Handle) -> Handle
    func insert(id: Int, before anchor: Handle) -> Handle
    func remove(_ handle: Handle)
    func replace(_ handle: Handle, id: Int) -> Handle
    /// One read section over the whole list: `visit(id, lease)` per element,
    /// in order, until it returns false.
    func traverse(_ visit: (Int, Int) -> Bool)
    /// Removes everything and waits for reclamation; returns nodes still
    /// allocated (C) or 0.
    func drain() -> Int
    /// Removes everything without waiting (the broken flavor's worker).
    func drainWithoutWaiting() -> Int
    /// Grace periods completed so far, where the flavor counts them.
    var gracePeriods: Int { get }
    /// Runs `body` on the flavor's reclamation worker after a grace period.
    func deferred(_ body: @escaping @Sendable () -> Void)
}

struct RCUListTortureList: ListTortureList {
    let list: RCUList<ListElement>
    let pool: LeasePool
    typealias Handle = RCUList<ListElement>.Node

    func append(id: Int) -> Handle { list.append(ListElement(id: id, pool: pool)) }
    func prepend(id: Int) -> Handle { list.prepend(ListElement(id: id, pool: pool)) }
    func insert(id: Int, after anchor: Handle) -> Handle {
        try! list.insert(ListElement(id: id, pool: pool), after: anchor)
    }
    func insert(id: Int, before anchor: Handle) -> Handle {
        try! list.insert(ListElement(id: id, pool: pool), before: anchor)
    }
    func remove(_ handle: Handle) { try! list.remove(handle) }
    func replace(_ handle: Handle, id: Int) -> Handle {
        try! list.replace(handle, with: ListElement(id: id, pool: pool))
    }
    @inline(__always)
    func traverse(_ visit: (Int, Int) -> Bool) {
        list.read { view in
            for element in view where !visit(element.id, element.lease) { break }
        }
    }
    func drain() -> Int {
        list.removeAll()
        list.domain.barrier()
        return 0
    }
    func drainWithoutWaiting() -> Int {
        list.removeAll()
        return 0
    }
    var gracePeriods: Int { Int(list.domain.gracePeriodsCompleted) }
    func deferred(_ body: @escaping @Sendable () -> Void) { list.domain.defer(body) }
}

final class CdsListTortureList: ListTortureList, @unchecked Sendable {
    // @unchecked Sendable: the C list is designed for concurrent use (writers
    // under its mutex, readers in liburcu read sections); the pointer itself
    // is immutable.
    let list: UnsafeMutablePointer<clu_list>
    let pool: LeasePool
    typealias Handle = UnsafeMutablePointer<clu_list_node>

    init(pool: LeasePool) {
        self.pool = pool
        list = clu_list_create(listLeaseFreeHook, Unmanaged.passUnretained(pool).toOpaque())
    }
    deinit { clu_list_destroy(list) }

    func append(id: Int) -> Handle { clu_list_append(list, id, pool.acquire()) }
    func prepend(id: Int) -> Handle { clu_list_prepend(list, id, pool.acquire()) }
    func insert(id: Int, after anchor: Handle) -> Handle { clu_list_insert_after(list, anchor, id, pool.acquire()) }
    func insert(id: Int, before anchor: Handle) -> Handle { clu_list_insert_before(list, anchor, id, pool.acquire()) }
    func remove(_ handle: Handle) { _ = clu_list_remove(list, handle) }
    func replace(_ handle: Handle, id: Int) -> Handle {
        var old = 0
        return clu_list_replace(list, handle, id, pool.acquire(), &old)
    }
    @inline(__always)
    func traverse(_ visit: (Int, Int) -> Bool) {
        clu_read_lock()
        var node = clu_list_first(list)
        while let current = node, visit(current.pointee.value, current.pointee.lease) {
            node = clu_list_next(list, current)
        }
        clu_read_unlock()
    }
    func drain() -> Int {
        // On a registered thread: call_rcu and rcu_barrier as liburcu wants.
        runThreads(1) { [self] _ in
            clu_register_thread()
            _ = clu_list_remove_all(self.list)
            clu_barrier()
            clu_unregister_thread()
        }
        return clu_list_live_nodes(list)
    }
    func drainWithoutWaiting() -> Int { clu_list_remove_all(list) }
    var gracePeriods: Int { 0 }
    func deferred(_ body: @escaping @Sendable () -> Void) { LiburcuImpl().deferred(body) }
}

