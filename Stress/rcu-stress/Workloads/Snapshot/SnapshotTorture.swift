// `torture --workload snapshot`: a read-mostly config value. Writers copy,
// modify and publish a whole new value; readers check it is consistent
// (every field carries the same generation) and that its lease is live.
// Leases live in a permanent pool and are poisoned when the value that holds
// them is released, so a value freed while a reader still borrows it shows
// up as poison. This library's flavors run RCUSnapshot itself; liburcu runs
// the same cell built from its primitives.
import CLiburcu
import Glibc
import RCU
import Synchronization

struct SnapshotValue: Sendable {
    var generation: Int
    var mirror: Int
    var payload: [Int]
    var lease: Lease

    init(generation: Int, pool: LeasePool) {
        self.generation = generation
        mirror = generation
        payload = Array(repeating: generation, count: 16)
        lease = Lease(pool)
    }

    /// Whether every field agrees and the lease is live.
    func isConsistent() -> Bool {
        guard generation == mirror, payload.count == 16 else { return false }
        for field in payload where field != generation { return false }
        return lease.pool.states[lease.index].load(ordering: .acquiring) == liveState
    }
}

protocol SnapshotCell: Sendable {
    func read<R>(_ body: (borrowing SnapshotValue) -> R) -> R
    func update(_ body: (inout SnapshotValue) -> Void)
    func barrier()
}

struct LibrarySnapshotCell: SnapshotCell {
    let cell: RCUSnapshot<SnapshotValue>
    @inline(__always)
    func read<R>(_ body: (borrowing SnapshotValue) -> R) -> R { cell.read(body) }
    func update(_ body: (inout SnapshotValue) -> Void) { cell.update(body) }
    func barrier() { cell.domain.barrier() }
}

/// The same cell from liburcu's primitives: rcu_read_lock, an atomic pointer
/// to an immutable box, a writer lock, and the grace-period mode's way of
/// releasing the old box (synchronize_rcu or call_rcu).
final class LiburcuSnapshotCell: SnapshotCell, @unchecked Sendable {
    // @unchecked Sendable: `current` holds a +1 box reference, read inside
    // liburcu read sections and released only after a grace period.
    final class Box {
        let value: SnapshotValue
        init(_ value: SnapshotValue) { self.value = value }
    }

    private let current: Atomic<UInt>
    private let writer = Mutex<Void>(())
    private let impl = LiburcuImpl()
    private let mode: GracePeriodMode

    init(_ value: SnapshotValue, mode: GracePeriodMode) {
        current = Atomic(UInt(bitPattern: Unmanaged.passRetained(Box(value)).toOpaque()))
        self.mode = mode
    }

    deinit {
        Unmanaged<Box>.fromOpaque(UnsafeRawPointer(bitPattern: current.load(ordering: .relaxed))!).release()
    }

    @inline(__always)
    func read<R>(_ body: (borrowing SnapshotValue) -> R) -> R {
        impl.section {
            let box = Unmanaged<Box>.fromOpaque(UnsafeRawPointer(bitPattern: current.load(ordering: .acquiring))!)
            return box._withUnsafeGuaranteedRef { body($0.value) }
        }
    }

    func update(_ body: (inout SnapshotValue) -> Void) {
        writer.withLock { _ in
            let bits = current.load(ordering: .relaxed)
            var value = Unmanaged<Box>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue().value
            body(&value)
            let fresh = UInt(bitPattern: Unmanaged.passRetained(Box(value)).toOpaque())
            let old = current.exchange(fresh, ordering: .acquiringAndReleasing)
            let release: @Sendable () -> Void = {
                Unmanaged<Box>.fromOpaque(UnsafeRawPointer(bitPattern: old)!).release()
            }
            let chosen = mode == .mixed ? GracePeriodMode.concrete.randomElement()! : mode
            switch chosen {
            case .sync:
                impl.synchronize()
                release()
            case .async:
                let impl = impl
                blockOn { await impl.synchronizeAsync() }
                release()
            case .poll:
                let handle = impl.startPoll()
                while !impl.pollCompleted(handle) { sched_yield() }
                release()
            case .retire, .mixed:
                impl.deferred(release)
            }
        }
    }

    func barrier() { impl.barrier() }
}

struct SnapshotTorture<Cell: SnapshotCell>: Sendable {
    let cell: Cell
    let counters: TortureCounters

    @inline(never)
    func readerLoop(_ stop: StopFlag, _ published: ReadCount) {
        var reads = 0
        while !stop.isSet && !Interrupt.isRequested {
            var bad = 0
            for _ in 0..<64 where !cell.read({ $0.isConsistent() }) { bad += 1 }
            if bad > 0 { counters.violations.add(bad, ordering: .relaxed) }
            reads += 64
            published.publish(reads)
        }
    }

    func readBurst(_ count: Int) {
        var bad = 0
        for _ in 0..<count where !cell.read({ $0.isConsistent() }) { bad += 1 }
        counters.reads.add(count, ordering: .relaxed)
        counters.violations.add(bad, ordering: .relaxed)
    }

    func updateOnce(_ pool: LeasePool) {
        cell.update { value in
            value = SnapshotValue(generation: value.generation + 1, pool: pool)
        }
        counters.updates.add(1, ordering: .relaxed)
        counters.gracePeriods.add(1, ordering: .relaxed)
    }
}

struct SnapshotWorkloadRun<Cell: SnapshotCell>: TortureWorkload {
    let torture: SnapshotTorture<Cell>
    let pool: LeasePool
    var counters: TortureCounters { torture.counters }
    func readerLoop(_ stop: StopFlag, _ reads: ReadCount) { torture.readerLoop(stop, reads) }
    func readBurst(_ count: Int) { torture.readBurst(count) }
    func signalRead() {
        torture.readBurst(1)
        counters.signalReads.add(1, ordering: .relaxed)
    }
    func updateOnce() { torture.updateOnce(pool) }
    func finish() -> Int {
        torture.cell.barrier()
        return pool.live - 1  // the published value holds one lease
    }
}

