// A short rcutorture-style check used by the tests: readers follow a
// published slot of a recycled pool and re-read it while an updater
// publishes another slot, waits for a grace period, and poisons the old one.
// A reader that sees poison inside its section has caught a grace period
// that ended too early.
import RCUTestSupport
import Testing
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

/// The same check for deferred reclamation: each updater publishes slots of
/// its own chain and retires a lease on the old slot, whose deinit poisons
/// it. Readers dwell on what they found, so a lease freed before their
/// section ended is seen as poison. A slot is reused only once its lease has
/// been freed, so poison always means an early free.
final class RetireTorture: @unchecked Sendable {
    // @unchecked Sendable: `slots` and `current` are allocated in init,
    // freed in deinit, and only accessed through their atomics in between.
    static let live = 0x5AFE
    static let poison = -0xDEAD

    final class Lease {
        // unowned(unsafe): the torture outlives every lease (its run ends
        // with a barrier).
        unowned(unsafe) let torture: RetireTorture
        let slot: Int
        init(_ torture: RetireTorture, _ slot: Int) {
            self.torture = torture
            self.slot = slot
        }
        deinit {
            torture.slots[slot].store(RetireTorture.poison, ordering: .relaxed)
            torture.freed.add(1, ordering: .releasing)
        }
    }

    let domain: RCUDomain
    let chains: Int
    let slotsPerChain = 4096
    fileprivate let slots: UnsafeMutablePointer<Atomic<Int>>
    private let current: UnsafeMutablePointer<Atomic<Int>>
    let reads = Atomic<Int>(0)
    let retired = Atomic<Int>(0)
    let freed = Atomic<Int>(0)
    let violations = Atomic<Int>(0)

    init(domain: RCUDomain, chains: Int) {
        self.domain = domain
        self.chains = chains
        slots = .allocate(capacity: chains * slotsPerChain)
        for index in 0..<chains * slotsPerChain {
            (slots + index).initialize(to: Atomic(index % slotsPerChain == 0 ? Self.live : Self.poison))
        }
        current = .allocate(capacity: chains)
        for chain in 0..<chains { (current + chain).initialize(to: Atomic(chain * slotsPerChain)) }
    }

    deinit {
        slots.deinitialize(count: chains * slotsPerChain)
        slots.deallocate()
        current.deinitialize(count: chains)
        current.deallocate()
    }

    /// One reader pass over every chain; `dwell` loads per slot.
    func readOnce(dwell: Int) {
        domain.read {
            for chain in 0..<chains {
                let slot = current[chain].load(ordering: .acquiring)
                var seen = slots[slot].load(ordering: .relaxed)
                for _ in 0..<dwell where seen == Self.live {
                    seen = slots[slot].load(ordering: .relaxed)
                }
                if seen != Self.live { violations.add(1, ordering: .relaxed) }
            }
        }
        reads.add(1, ordering: .relaxed)
    }

    /// Runs one updater per chain, each retiring `perChain` leases, while
    /// `readers` threads read; stops early at the first violation when
    /// `stopOnViolation`. Ends with a barrier: every lease is then freed.
    func run(readers: Int = 2, perChain: Int, stopOnViolation: Bool = false) {
        let stop = Flag()
        let readerThreads = (0..<readers).map { index in
            TestThread { [self] in
                var pass = 0
                while !stop.isSet {
                    // Mostly short sections, with a long one now and then,
                    // so an early free has a reader to hit.
                    readOnce(dwell: pass % 8 == 0 ? 20_000 : 64)
                    pass += 1 + index
                }
            }
        }
        let finalLeases = _RCUMutex<[Lease]>([])
        let updaters = (0..<chains).map { chain in
            TestThread { [self] in
                let base = chain * slotsPerChain
                var lease = Lease(self, base)
                for step in 1...perChain {
                    if stopOnViolation && violations.load(ordering: .relaxed) > 0 { break }
                    let next = base + step % slotsPerChain
                    // Reuse only a freed slot (bounded: a hang fails).
                    if slots[next].load(ordering: .relaxed) != Self.poison {
                        #expect(waitUntil(seconds: 60 * sanitizerSlowdown) { slots[next].load(ordering: .relaxed) == Self.poison })
                    }
                    slots[next].store(Self.live, ordering: .relaxed)
                    current[chain].store(next, ordering: .releasing)
                    let old = lease
                    lease = Lease(self, next)
                    retired.add(1, ordering: .relaxed)
                    domain.retire(old)
                }
                finalLeases.withLock { $0.append(lease) }
            }
        }
        for updater in updaters { updater.join() }
        stop.set()
        for reader in readerThreads { reader.join() }
        // No reader is left: the published leases go too.
        for lease in finalLeases.withLock({ leases in defer { leases = [] }; return leases }) {
            retired.add(1, ordering: .relaxed)
            domain.retire(lease)
        }
        domain.barrier()
    }
}
