// `torture --workload list`: readers traverse an RCU list while updaters
// insert, remove and replace around a set of stable elements. Every element
// holds a lease from a permanent LeasePool, released (poisoned) when the
// list really frees the element: on this library's flavors when RCUList's
// retired node is deinitialised, on liburcu-memb in the call_rcu callback
// that frees a cds_list node. Readers check, inside their read section and
// after a dwell, that every element they visit is live, and that the stable
// elements appear, all of them, in order. A flavor that frees early (the
// broken canary) shows up as poison.
//
// The elements are plain structs (the lease's owner is the only reference in
// them), so the reader's loop retains nothing it visits: a reader that a
// broken flavor leaves on a freed node reads stale memory and counts the
// poison instead of touching a freed object's reference count.
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

/// Updater bookkeeping: the handles in list order, and which are stable.
struct ListTortureBook<Handle> {
    var entries: [(handle: Handle, id: Int)] = []
    var nextID: Int
    var random = SystemRandomNumberGenerator()
    /// `--sabotage remove-stable`: the stable id taken out last.
    var removedStable: Int? = nil
    /// `--sabotage duplicate-stable`: the extra element with a stable id.
    var duplicate: Handle? = nil
    /// The stable id the next sabotage step works on.
    var nextSabotaged = 0
}

/// The list torture's detectors (each also counted in `violations`).
final class ListTortureCounters: Sendable {
    /// An element visited after the list freed it (or a lease index that
    /// only freed memory can hold).
    let poisoned = Detector(DetectorName.poisoned)
    /// A stable element skipped, or the last ones missing.
    let missedStable = Detector(DetectorName.missedStable)
    /// A stable element seen after a later one (or twice).
    let outOfOrder = Detector(DetectorName.outOfOrder)
    var all: [Detector] { [poisoned, missedStable, outOfOrder] }
}

/// The book behind a lock, in a class so the workload stays copyable.
final class ListTortureBookBox<Handle>: @unchecked Sendable {
    // @unchecked Sendable: `book` is only read or written under `lock`.
    // (The handles may be C pointers, which are not Sendable, so the book
    // cannot be the Mutex's own value.)
    private let lock = Mutex<Void>(())
    private var book: ListTortureBook<Handle>
    init(_ book: ListTortureBook<Handle>) { self.book = book }
    func withLock<R>(_ body: (inout ListTortureBook<Handle>) -> R) -> R { lock.withLock { _ in body(&book) } }
}

struct ListTortureWorkload<L: ListTortureList>: TortureWorkload {
    let list: L
    let pool: LeasePool
    let counters: TortureCounters
    let listCounters = ListTortureCounters()
    let dwell: Int
    let book: ListTortureBookBox<L.Handle>
    let startGracePeriods: Int
    let sabotage: Sabotage?
    /// Set for the broken flavor: writer ops run on the domain's worker.
    let workerDriver: WorkerDriver?
    /// Stable elements have ids 0..<stableCount and are never removed.
    static var stableCount: Int { 8 }
    static var minVolatile: Int { 8 }
    static var maxVolatile: Int { 56 }

    init(list: L, pool: LeasePool, counters: TortureCounters, dwell: Int, driveOnWorker: Bool = false,
         sabotage: Sabotage? = nil) {
        workerDriver = driveOnWorker ? WorkerDriver() : nil
        self.sabotage = sabotage
        self.list = list
        self.pool = pool
        self.counters = counters
        self.dwell = dwell
        var book = ListTortureBook<L.Handle>(nextID: Self.stableCount)
        for id in 0..<Self.stableCount { book.entries.append((list.append(id: id), id)) }
        self.book = ListTortureBookBox(book)
        startGracePeriods = list.gracePeriods
    }

    /// One traversal; counts each violation it sees in `violations` and in
    /// its detector (at once, so a canary run can stop at the first).
    @inline(__always)
    func readOnce(dwell: Int) {
        var expected = 0
        var stoppedEarly = false
        let states = pool.states
        let capacity = pool.capacity
        list.traverse { id, lease in
            // A lease index out of range can only come from freed memory.
            guard lease >= 0 && lease < capacity else {
                violation(listCounters.poisoned)
                stoppedEarly = true
                return false
            }
            var state = states[lease].load(ordering: .acquiring)
            var spins = 0
            while spins < dwell && state == liveState {
                state = states[lease].load(ordering: .acquiring)
                spins += 1
            }
            if state != liveState {
                // Freed while this read section could still see it; its next
                // pointer is not to be trusted, so stop here.
                violation(listCounters.poisoned)
                stoppedEarly = true
                return false
            }
            if id < Self.stableCount {
                if id > expected {
                    violation(listCounters.missedStable)  // stable elements expected..<id skipped
                } else if id < expected {
                    violation(listCounters.outOfOrder)  // seen after a later stable one
                    return true
                }
                expected = id + 1
            }
            return true
        }
        if !stoppedEarly && expected != Self.stableCount { violation(listCounters.missedStable) }  // the last ones missing
    }

    @inline(never)
    private func violation(_ detector: Detector) {
        detector.add()
        counters.violations.add(1, ordering: .relaxed)
    }

    @inline(never)
    func readerLoop(_ stop: StopFlag) {
        var reads = 0
        while !stop.isSet && !interruptRequested.load(ordering: .relaxed) {
            for _ in 0..<16 { readOnce(dwell: dwell) }
            reads += 16
        }
        counters.reads.add(reads, ordering: .relaxed)
    }

    func readBurst(_ count: Int) {
        for _ in 0..<count { readOnce(dwell: dwell) }
        counters.reads.add(count, ordering: .relaxed)
    }

    func signalRead() {
        readOnce(dwell: 0)
        counters.signalReads.add(1, ordering: .relaxed)
    }

    /// One writer operation, chosen at random, keeping the number of volatile
    /// elements between the bounds.
    func updateOnce() {
        if let driver = workerDriver {
            // The broken flavor: the writer ops run on the domain's worker
            // (see WorkerDriver); this thread only starts them.
            driver.updaterStep { list.deferred { [self] in workerStep(driver) } }
            return
        }
        if let sabotage { sabotageStep(sabotage) }
        writerOp()
        counters.updates.add(1, ordering: .relaxed)
    }

    /// One step of a sabotage: undo the previous one, then break the next
    /// stable element.
    func sabotageStep(_ sabotage: Sabotage) {
        book.withLock { book in
            undoSabotage(&book)
            let id = book.nextSabotaged
            book.nextSabotaged = (id + 1) % Self.stableCount
            switch sabotage {
            case .removeStable:
                guard let index = book.entries.firstIndex(where: { $0.id == id }) else { return }
                list.remove(book.entries[index].handle)
                book.entries.remove(at: index)
                book.removedStable = id
            case .duplicateStable:
                // A second element with a stable id, after every stable one.
                book.duplicate = list.append(id: id)
            }
        }
    }

    /// Puts back the stable element the last step removed (after its stable
    /// predecessor, so the order holds) and removes the duplicate.
    func undoSabotage(_ book: inout ListTortureBook<L.Handle>) {
        if let id = book.removedStable {
            if id == 0 {
                book.entries.insert((list.prepend(id: id), id), at: 0)
            } else if let index = book.entries.firstIndex(where: { $0.id == id - 1 }) {
                book.entries.insert((list.insert(id: id, after: book.entries[index].handle), id), at: index + 1)
            }
            book.removedStable = nil
        }
        if let duplicate = book.duplicate {
            list.remove(duplicate)
            book.duplicate = nil
        }
    }

    func writerOp() {
        book.withLock { book in
            let volatile = book.entries.count - Self.stableCount
            let index = Int.random(in: 0..<book.entries.count, using: &book.random)
            let isStable = book.entries[index].id < Self.stableCount
            var choice = Int.random(in: 0..<100, using: &book.random)
            if volatile < Self.minVolatile { choice = choice % 50 }
            if volatile > Self.maxVolatile { choice = 50 + choice % 30 }
            book.nextID += 1
            let id = book.nextID
            switch choice {
            case 0..<5:
                book.entries.append((list.append(id: id), id))
            case 5..<10:
                book.entries.insert((list.prepend(id: id), id), at: 0)
            case 10..<30:
                book.entries.insert((list.insert(id: id, after: book.entries[index].handle), id), at: index + 1)
            case 30..<50:
                book.entries.insert((list.insert(id: id, before: book.entries[index].handle), id), at: index)
            case 50..<80 where !isStable:
                list.remove(book.entries[index].handle)
                book.entries.remove(at: index)
            case 80..<100 where !isStable:
                book.entries[index] = (list.replace(book.entries[index].handle, id: id), id)
            default:
                break  // a stable element was picked for removal
            }
        }
    }

    /// A batch of writer ops on the reclamation worker, which then queues the
    /// next batch; at the end it empties the list.
    func workerStep(_ driver: WorkerDriver) {
        if driver.stop.load(ordering: .acquiring) {
            dropHandles()
            _ = list.drainWithoutWaiting()
            driver.done.store(true, ordering: .releasing)
            return
        }
        for _ in 0..<16 { writerOp() }
        counters.updates.add(16, ordering: .relaxed)
        list.deferred { [self] in workerStep(driver) }
    }

    func dropHandles() {
        book.withLock { $0.entries = [] }
    }

    func finish() -> Int {
        if let driver = workerDriver {
            driver.stop.store(true, ordering: .releasing)
            if driver.started.load(ordering: .relaxed) {
                _ = waitWithBound(seconds: 30) { driver.done.load(ordering: .acquiring) }
            } else {
                dropHandles()
                _ = list.drainWithoutWaiting()
            }
            // No barrier (it would queue from this thread, see WorkerDriver):
            // wait for the worker to free what the drain retired.
            _ = waitWithBound(seconds: 30) { pool.live == 0 }
            return pool.live
        }
        book.withLock { undoSabotage(&$0) }
        dropHandles()
        let leakedNodes = list.drain()
        counters.gracePeriods.store(list.gracePeriods - startGracePeriods, ordering: .relaxed)
        // Every lease must be back: the list freed every element it had.
        return pool.live + leakedNodes
    }
}

/// Drives the broken flavor's writer ops (list and hashmap) from the
/// domain's own reclamation worker. The broken domain's grace periods do not wait, and the library's
/// reclaimer relies on them internally too: a retire from another thread can
/// race with the worker detaching that retire's half-filled slot, which stops
/// the process ("reclamation slot empty after a grace period"). Retires that
/// the worker queues from its own callbacks cannot race that way, so the
/// canary frees early (what it must show) without tripping the reclaimer.
final class WorkerDriver: Sendable {
    let started = Atomic<Bool>(false)
    let stop = Atomic<Bool>(false)
    let done = Atomic<Bool>(false)

    /// The updater thread's step while the worker runs the writer: the
    /// first call runs `start` (which queues the worker's first step), and
    /// every call idles for a millisecond.
    func updaterStep(start: () -> Void) {
        if !started.exchange(true, ordering: .relaxed) { start() }
        sleepSeconds(0.001)
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func waitWithBound(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = nowNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if nowNanoseconds() > deadline { return false }
        sleepSeconds(0.0002)
    }
    return true
}

extension TortureRun {
    func runList<I: ReadSideImpl>(_ impl: I, counters: TortureCounters) -> TortureResult {
        let pool = LeasePool()
        if let rcu = impl as? RCUImpl {
            let list = RCUListTortureList(list: RCUList(domain: rcu.domain), pool: pool)
            let workload = ListTortureWorkload(list: list, pool: pool, counters: counters, dwell: options.dwell,
                                               driveOnWorker: options.flavor == .broken, sabotage: options.sabotage)
            return withDetectors(run(impl, workload), workload.listCounters.all)
        }
        let list = CdsListTortureList(pool: pool)
        let workload = ListTortureWorkload(list: list, pool: pool, counters: counters, dwell: options.dwell,
                                           sabotage: options.sabotage)
        return withDetectors(run(impl, workload), workload.listCounters.all)
    }

    private func withDetectors(_ result: TortureResult, _ detectors: [Detector]) -> TortureResult {
        var result = result
        result.details += detectors.map { ($0.name, $0.value) }
        result.fired = detectors.filter { $0.value > 0 }.map(\.name)
        return result
    }
}
