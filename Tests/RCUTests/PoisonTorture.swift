// A short rcutorture-style check used by the tests: readers follow a
// published slot of a recycled pool and re-read it while an updater
// publishes another slot, waits for a grace period, and poisons the old one.
// A reader that sees poison inside its section has caught a grace period
// that ended too early.
import RCUTestSupport
import Synchronization
@_spi(RCUTesting) @testable import RCU

final class PoisonTorture: @unchecked Sendable {
    // @unchecked Sendable: `slots` is allocated in init, freed in deinit, and
    // only accessed through its atomics in between.
    static let live = 0x5AFE
    static let poison = -0xDEAD

    let domain: RCUDomain
    private let slotCount = 8
    private let slots: UnsafeMutablePointer<Atomic<Int>>
    private let current = Atomic<Int>(0)
    let reads = Atomic<Int>(0)
    let updates = Atomic<Int>(0)
    let violations = Atomic<Int>(0)

    init(domain: RCUDomain) {
        self.domain = domain
        slots = .allocate(capacity: slotCount)
        for index in 0..<slotCount {
            (slots + index).initialize(to: Atomic(index == 0 ? Self.live : Self.poison))
        }
    }

    deinit {
        slots.deinitialize(count: slotCount)
        slots.deallocate()
    }

    var counts: (reads: Int, updates: Int, violations: Int) {
        (reads.load(ordering: .relaxed), updates.load(ordering: .relaxed), violations.load(ordering: .relaxed))
    }

    /// One reader pass: load the published slot, dwell, re-check it.
    func readOnce(dwell: Int) {
        domain.read {
            let slot = current.load(ordering: .acquiring)
            var seen = slots[slot].load(ordering: .relaxed)
            for _ in 0..<dwell where seen == Self.live {
                seen = slots[slot].load(ordering: .relaxed)
            }
            if seen != Self.live { violations.add(1, ordering: .relaxed) }
        }
        reads.add(1, ordering: .relaxed)
    }

    /// One update: publish the next slot, wait, poison the old one.
    func updateOnce() {
        let old = current.load(ordering: .relaxed)
        let next = (old + 1) % slotCount
        slots[next].store(Self.live, ordering: .relaxed)
        current.store(next, ordering: .releasing)
        domain.synchronize()
        slots[old].store(Self.poison, ordering: .relaxed)
        updates.add(1, ordering: .relaxed)
    }

    /// Runs `readers` reader threads and one updater for up to `seconds`, or
    /// until the first violation when `stopOnViolation`.
    func run(readers: Int = 2, seconds: Double, stopOnViolation: Bool = false) {
        let stop = Flag()
        var threads: [TestThread] = []
        for _ in 0..<readers {
            threads.append(TestThread { [self] in
                while !stop.isSet { readOnce(dwell: 64) }
            })
        }
        let updater = TestThread { [self] in
            while !stop.isSet { updateOnce() }
        }
        _ = waitUntil(seconds: seconds) {
            stopOnViolation && self.violations.load(ordering: .relaxed) > 0
        }
        stop.set()
        updater.join()
        for thread in threads { thread.join() }
    }
}
