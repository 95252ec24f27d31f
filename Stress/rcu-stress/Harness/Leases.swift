// The permanent lease pool of the snapshot, hashmap and list workloads (and
// the list oracle): every value or element holds a lease, poisoned when the
// value is freed, so a reader that still sees a freed value sees poison.
import Glibc
import Synchronization

/// Permanent lease states: a reader can check one after the value that named
/// it was freed.
final class LeasePool: @unchecked Sendable {
    // @unchecked Sendable: `states` is allocated once and accessed through
    // its atomics; the free ring is in a Mutex.
    /// Larger than the reclamation bound (2^20 pending) plus slack, so the
    /// pool never runs dry while the library applies backpressure.
    let capacity = 1 << 21
    let states: UnsafeMutablePointer<Atomic<Int>>
    /// Free indices as a FIFO ring (head, count, storage): reusing the
    /// longest-free lease last keeps a stale reader's poison visible longest.
    private let free: Mutex<(head: Int, count: Int, ring: [Int])>

    init() {
        states = .allocate(capacity: capacity)
        for index in 0..<capacity { (states + index).initialize(to: Atomic(poisonState)) }
        free = Mutex((0, capacity, Array(0..<capacity)))
    }

    deinit {
        states.deinitialize(count: capacity)
        states.deallocate()
    }

    func acquire() -> Int {
        let index: Int? = free.withLock { free in
            guard free.count > 0 else { return nil }
            let index = free.ring[free.head]
            free.head = (free.head + 1) % free.ring.count
            free.count -= 1
            return index
        }
        guard let index else { fatalError("rcu-stress: lease pool exhausted (reclamation is not keeping up)") }
        states[index].store(liveState, ordering: .releasing)
        return index
    }

    func release(_ index: Int) {
        states[index].store(poisonState, ordering: .releasing)
        free.withLock { free in
            free.ring[(free.head + free.count) % free.ring.count] = index
            free.count += 1
        }
    }

    var live: Int { capacity - free.withLock { $0.count } }
}

/// A lease held by a value; poisoned and returned to the pool when the last
/// copy of the value is freed (snapshot, hashmap and list workloads).
final class Lease: Sendable {
    let index: Int
    let pool: LeasePool
    init(_ pool: LeasePool) {
        self.pool = pool
        index = pool.acquire()
    }
    deinit { pool.release(index) }
}

extension LeasePool {
    func isLive(_ index: Int) -> Bool {
        index >= 0 && index < capacity && states[index].load(ordering: .relaxed) == liveState
    }
}
