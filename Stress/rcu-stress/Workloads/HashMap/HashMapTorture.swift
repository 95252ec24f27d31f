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
    }

    func readerLoop(_ stop: StopFlag, _ published: ReadCount) {
        var random = StressRandom()
        var rounds = 0
        while !stop.isSet && !Interrupt.isRequested {
            reads(256, &random)
            rounds += 1
            published.publish(rounds * 256)
            if rounds % 64 == 0 {
                let bad = traverse()
                if bad > 0 { counters.violations.add(bad, ordering: .relaxed) }
            }
        }
    }

    func readBurst(_ count: Int) {
        var random = StressRandom()
        reads(count, &random)
        counters.reads.add(count, ordering: .relaxed)
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
        if driver.stopsHere(drain: { map.drainWithoutWaiting() }) { return }
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
            return driver.finish(drain: { map.drainWithoutWaiting() }, pool: map.pool)
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
