// `torture --workload pointer`: rcutorture's design. A ring of elements, each
// with an age and a state word; updaters publish a fresh element, mark the old
// one retired (age 1), wait for a grace period, and then age every element
// that was retired before the wait began. An element of age >= 2 has outlived
// a full grace period since it was unpublished, so it is poisoned (and later
// recycled). Readers, inside a read section, load the current element, dwell,
// and re-read its age and state: seeing age >= 2 or poison means a grace
// period ended while a reader still held the element. Storage is recycled,
// never freed, so a violation shows as a wrong value, not as a lucky crash.
import Glibc
import RCU
import Synchronization

// MARK: - The element ring

struct TortureElement: ~Copyable {
    let age = Atomic<Int>(0)
    let state = Atomic<Int>(poisonState)
}

/// Updater-side bookkeeping, guarded by the ring's lock.
struct RingBook {
    var free: [Int]
    var retired: [Int] = []
    /// Times each element was published: a snapshot of the retired list
    /// names (element, incarnation), so an element that was recycled and
    /// retired again before an old callback runs is not aged by it.
    var incarnation: [Int]
}

final class ElementRing: @unchecked Sendable {
    // @unchecked Sendable: `elements` is allocated once and only accessed
    // through its atomics; the bookkeeping lives in a Mutex.
    let count: Int
    let elements: UnsafeMutablePointer<TortureElement>
    let current = Atomic<Int>(0)
    let book: Mutex<RingBook>
    /// Age at which a poisoned element returns to the free list: late enough
    /// that a reader a broken grace period let through sees poison, not a
    /// recycled live element.
    let recycleAge = 8

    init(count: Int) {
        self.count = count
        elements = .allocate(capacity: count)
        for index in 0..<count { (elements + index).initialize(to: TortureElement()) }
        elements[0].state.store(liveState, ordering: .relaxed)
        book = Mutex(RingBook(free: Array(1..<count), incarnation: Array(repeating: 0, count: count)))
    }

    deinit {
        elements.deinitialize(count: count)
        elements.deallocate()
    }

    /// Elements accounted for: current + free + retired; the rest leaked.
    var leaked: Int {
        book.withLock { count - 1 - $0.free.count - $0.retired.count }
    }
}


/// An element as retired at one publication.
struct RetiredElement: Hashable, Sendable {
    let index: Int
    let incarnation: Int
}

// MARK: - Reader and updater, generic over the flavor

struct PointerTorture<I: ReadSideImpl>: Sendable {
    let impl: I
    let ring: ElementRing
    let counters: TortureCounters
    let dwell: Int

    /// One read section; returns the age seen (ageBuckets - 1 if poisoned).
    @inline(__always)
    func readOnce(dwell: Int) -> Int {
        impl.section {
            let index = ring.current.load(ordering: .acquiring)
            let element = ring.elements + index
            var state = element.pointee.state.load(ordering: .relaxed)
            var spins = 0
            while spins < dwell && state == liveState {
                state = element.pointee.state.load(ordering: .relaxed)
                spins += 1
            }
            let age = element.pointee.age.load(ordering: .relaxed)
            if state != liveState || age >= 2 {
                counters.violations.add(1, ordering: .relaxed)
            }
            return state == liveState ? min(age, ageBuckets - 1) : ageBuckets - 1
        }
    }

    @inline(never)
    func readerLoop(_ stop: StopFlag, _ published: ReadCount) {
        var histogram = Array(repeating: 0, count: ageBuckets)
        var reads = 0
        while !stop.isSet && !Interrupt.isRequested {
            for _ in 0..<64 {
                histogram[readOnce(dwell: dwell)] += 1
            }
            reads += 64
            published.publish(reads)
        }
        counters.merge(histogram)
    }

    /// A short burst of reads (churned threads).
    func readBurst(_ count: Int) {
        var histogram = Array(repeating: 0, count: ageBuckets)
        for _ in 0..<count { histogram[readOnce(dwell: dwell)] += 1 }
        counters.reads.add(count, ordering: .relaxed)
        counters.merge(histogram)
    }

    /// Publish, retire, wait for a grace period (as `mode` says), then age,
    /// poison and recycle. In the retire mode the aging runs in a callback
    /// after the grace period, and the updater does not wait.
    func updateOnce(_ requested: GracePeriodMode) {
        let mode = requested == .mixed ? GracePeriodMode.concrete.randomElement()! : requested
        let published: [RetiredElement]? = ring.book.withLock { book in
            guard !book.free.isEmpty else { return nil }
            let fresh = book.free.removeFirst()
            book.incarnation[fresh] += 1
            ring.elements[fresh].age.store(0, ordering: .relaxed)
            ring.elements[fresh].state.store(liveState, ordering: .relaxed)
            let old = ring.current.exchange(fresh, ordering: .acquiringAndReleasing)
            ring.elements[old].age.store(1, ordering: .relaxed)
            book.retired.append(old)
            return book.retired.map { RetiredElement(index: $0, incarnation: book.incarnation[$0]) }
        }
        guard let waitingFor = published else {
            // Every element is waiting for callbacks (retire mode): let them run.
            sched_yield()
            return
        }
        switch mode {
        case .sync:
            impl.synchronize()
        case .async:
            let impl = impl
            blockOn { await impl.synchronizeAsync() }
        case .poll:
            let handle = impl.startPoll()
            while !impl.pollCompleted(handle) { sched_yield() }
        case .retire, .mixed:
            impl.deferred { [self] in age(waitingFor) }
            counters.updates.add(1, ordering: .relaxed)
            return
        }
        age(waitingFor)
        counters.updates.add(1, ordering: .relaxed)
    }

    /// After a grace period: every element retired before it began has now
    /// outlived one; age those, poison at 2, recycle once old enough.
    func age(_ waitingFor: [RetiredElement]) {
        counters.gracePeriods.add(1, ordering: .relaxed)
        ring.book.withLock { book in
            let waited = Set(waitingFor)
            var stillRetired: [Int] = []
            for index in book.retired {
                let element = ring.elements + index
                var age = element.pointee.age.load(ordering: .relaxed)
                if waited.contains(RetiredElement(index: index, incarnation: book.incarnation[index])) {
                    age += 1
                    element.pointee.age.store(age, ordering: .relaxed)
                }
                if age >= 2 { element.pointee.state.store(poisonState, ordering: .relaxed) }
                if age >= ring.recycleAge {
                    book.free.append(index)
                } else {
                    stillRetired.append(index)
                }
            }
            book.retired = stillRetired
        }
    }
}

struct PointerWorkload<I: ReadSideImpl>: TortureWorkload {
    let torture: PointerTorture<I>
    let mode: GracePeriodMode
    var counters: TortureCounters { torture.counters }
    func readerLoop(_ stop: StopFlag, _ reads: ReadCount) { torture.readerLoop(stop, reads) }
    func readBurst(_ count: Int) { torture.readBurst(count) }
    func signalRead() {
        _ = torture.readOnce(dwell: 0)
        counters.signalReads.add(1, ordering: .relaxed)
    }
    func updateOnce() { torture.updateOnce(mode) }
    func finish() -> Int {
        torture.impl.barrier()
        return torture.ring.leaked
    }
}

