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
import CLiburcu
import Glibc
import RCU
import RCUCollections
import Synchronization

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
    func readerLoop(_ stop: StopFlag, _ published: ReadCount) {
        var reads = 0
        while !stop.isSet && !Interrupt.isRequested {
            for _ in 0..<16 { readOnce(dwell: dwell) }
            reads += 16
            published.publish(reads)
        }
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
        // Kept current for the live line (the hashmap's writer does the same).
        counters.gracePeriods.store(list.gracePeriods - startGracePeriods, ordering: .relaxed)
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
        if driver.stopsHere(drain: drainWithoutWaiting) { return }
        for _ in 0..<16 { writerOp() }
        counters.updates.add(16, ordering: .relaxed)
        list.deferred { [self] in workerStep(driver) }
    }

    func dropHandles() {
        book.withLock { $0.entries = [] }
    }

    /// Empties the list without waiting (the broken flavor's end).
    func drainWithoutWaiting() {
        dropHandles()
        _ = list.drainWithoutWaiting()
    }

    func finish() -> Int {
        if let driver = workerDriver { return driver.finish(drain: drainWithoutWaiting, pool: pool) }
        book.withLock { undoSabotage(&$0) }
        dropHandles()
        let leakedNodes = list.drain()
        counters.gracePeriods.store(list.gracePeriods - startGracePeriods, ordering: .relaxed)
        // Every lease must be back: the list freed every element it had.
        return pool.live + leakedNodes
    }
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
