// RCUHashMap: Dictionary semantics against a model, collisions, value
// lifetimes, and concurrent readers during resizes and removeAll. Readers
// check every value they borrow against a permanent poison table, so a value
// freed too early, a missed stable key or a key seen twice is counted.
import RCU
import RCUCollections
import RCUTestSupport
import Synchronization
import Testing

/// Permanent live/poison states for values: a value's deinit poisons its
/// slot, and the slot outlives it, so a reader that still holds a freed
/// value sees poison rather than reading freed memory.
final class LeaseTable: @unchecked Sendable {
    // @unchecked Sendable: `states` is allocated in init, freed in deinit and
    // only accessed through atomics in between.
    static let live = 0x5AFE
    static let poison = -0xDEAD
    let capacity: Int
    let states: UnsafeMutablePointer<Atomic<Int>>
    private let nextIndex = Atomic<Int>(0)
    let released = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
        states = .allocate(capacity: capacity)
        for index in 0..<capacity { (states + index).initialize(to: Atomic(Self.poison)) }
    }

    deinit {
        states.deinitialize(count: capacity)
        states.deallocate()
    }

    /// A fresh lease, or nil once the table is used up.
    func acquire() -> Int? {
        let index = nextIndex.add(1, ordering: .relaxed).oldValue
        guard index < capacity else { return nil }
        states[index].store(Self.live, ordering: .relaxed)
        return index
    }

    var issued: Int { min(capacity, nextIndex.load(ordering: .relaxed)) }
    var outstanding: Int { issued - released.load(ordering: .relaxed) }

    func isLive(_ index: Int) -> Bool {
        index >= 0 && index < capacity && states[index].load(ordering: .relaxed) == Self.live
    }
}

/// A map value that poisons its lease when freed.
final class LeasedValue: Sendable {
    let key: Int
    let lease: Int
    let table: LeaseTable

    init(key: Int, lease: Int, table: LeaseTable) {
        self.key = key
        self.lease = lease
        self.table = table
    }

    deinit {
        table.states[lease].store(LeaseTable.poison, ordering: .relaxed)
        table.released.add(1, ordering: .relaxed)
    }
}

/// A key whose hash is the same for every instance.
struct CollidingKey: Hashable, Sendable {
    let id: Int
    static func == (a: CollidingKey, b: CollidingKey) -> Bool { a.id == b.id }
    func hash(into hasher: inout Hasher) { hasher.combine(42) }
}

/// A small deterministic generator (splitmix64) so failures replay.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("RCUHashMap", .timeLimit(.minutes(10)))
struct HashMapTests {
    @Test("Dictionary semantics against a model, through growth and shrinking", arguments: [1, 2, 3] as [UInt64])
    func modelSequence(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        let map = RCUHashMap<Int, Int>()
        var model: [Int: Int] = [:]
        var largest = map.bucketCount
        var previous = largest
        var shrank = false
        for step in 0..<60_000 {
            // Alternating fill and drain phases force grows and shrinks.
            let filling = (step / 20_000) % 2 == 0
            let key = Int.random(in: 0..<5_000, using: &random)
            let value = Int.random(in: 0..<1_000_000, using: &random)
            let roll = Int.random(in: 0..<100, using: &random)
            let (updates, uniques) = filling ? (50, 65) : (3, 5)
            if step == 39_999 {
                map.removeAll()
                model.removeAll()
            } else if roll >= 70 {
                #expect(map[key] == model[key], "lookup of \(key) at step \(step)")
            } else if roll < updates {
                #expect(map.updateValue(value, forKey: key) == model.updateValue(value, forKey: key))
            } else if roll < uniques {
                let result = map.insertIfAbsent(value, forKey: key)
                if let existing = model[key] {
                    #expect(!result.inserted && result.currentValue == existing)
                } else {
                    #expect(result.inserted && result.currentValue == value)
                    model[key] = value
                }
            } else {
                #expect(map.removeValue(forKey: key) == model.removeValue(forKey: key))
            }
            if step % 1000 == 0 {
                #expect(map.count == model.count)
                #expect(map.isEmpty == model.isEmpty)
                #expect(map.snapshot() == model)
            }
            let buckets = map.bucketCount
            // A shrink by removals (removeAll resets the table by itself).
            if buckets < previous && step != 39_999 { shrank = true }
            previous = buckets
            largest = max(largest, buckets)
            #expect(buckets >= 16)
        }
        #expect(map.snapshot() == model)
        #expect(largest >= 2048, "the fill phases grow the table")
        #expect(shrank, "the drain phases shrink the table by removals")
    }

    @Test("Subscript, contains, withValue and reserveCapacity")
    func accessors() {
        let map = RCUHashMap<String, [Int]>(minimumCapacity: 100)
        #expect(map.bucketCount >= 100)
        map["a"] = [1, 2]
        map["b"] = [3]
        #expect(map["a"] == [1, 2])
        #expect(map.contains("b") && !map.contains("c"))
        #expect(map.withValue(forKey: "a") { $0.count } == 2)
        #expect(map.withValue(forKey: "zzz") { $0.count } == nil)
        map["a"] = nil
        #expect(map["a"] == nil && map.count == 1)
        map.reserveCapacity(10_000)
        let reserved = map.bucketCount
        #expect(reserved >= 10_000)
        map["x"] = [0]
        map["x"] = nil
        #expect(map.bucketCount == reserved, "a reservation is not undone by the load-factor check")
        for index in 0..<10_000 { map["k\(index)"] = [index] }
        #expect(map.bucketCount == reserved, "reserved capacity needs no growth")
        #expect(map.count == 10_001)
    }

    @Test("Keys whose hashes all collide")
    func collisions() {
        let map = RCUHashMap<CollidingKey, Int>()
        for id in 0..<300 { #expect(map.insertIfAbsent(id, forKey: CollidingKey(id: id)).inserted) }
        for id in 0..<300 { #expect(map[CollidingKey(id: id)] == id) }
        for id in stride(from: 0, to: 300, by: 2) { #expect(map.removeValue(forKey: CollidingKey(id: id)) == id) }
        for id in 0..<300 { #expect(map[CollidingKey(id: id)] == (id % 2 == 1 ? id : nil)) }
        for id in stride(from: 1, to: 300, by: 2) { #expect(map.updateValue(-id, forKey: CollidingKey(id: id)) == id) }
        var seen = Set<Int>()
        map.forEach { key, value in
            #expect(seen.insert(key.id).inserted, "key \(key.id) visited twice")
            #expect(value == -key.id)
        }
        #expect(seen.count == 150 && map.count == 150)
    }

    @Test("A traversal held across a grow and a shrink visits each key once")
    func traversalAcrossGrowAndShrink() {
        // The traversal blocks inside its body on the first key while another
        // thread grows the table 16 -> 4096 and drains it back; keys present
        // throughout must still be visited exactly once.
        let map = RCUHashMap<Int, Int>()
        for key in 0..<8 { map[key] = key }
        let paused = Flag()
        let resized = Flag()
        let largest = Atomic<Int>(0)
        let writer = TestThread {
            _ = paused.wait()
            for key in 100..<3100 { map[key] = key }
            largest.store(map.bucketCount, ordering: .relaxed)
            for key in 100..<3100 { map[key] = nil }
            resized.set()
        }
        var visits: [Int: Int] = [:]
        map.forEach { key, _ in
            if !paused.isSet {
                paused.set()
                #expect(resized.wait(seconds: 120), "the resizing writer did not finish while a traversal was held")
            }
            visits[key, default: 0] += 1
        }
        writer.join()
        #expect(largest.load(ordering: .relaxed) >= 2048, "the writer grew the table")
        #expect(map.bucketCount <= 256, "and shrank it again")
        for key in 0..<8 { #expect(visits[key] == 1, "key \(key) visited \(visits[key] ?? 0) times") }
        #expect(visits.values.allSatisfy { $0 == 1 })
    }

    @Test("Class values are released once, after a grace period, and never leak", arguments: TestMode.allCases)
    func valueLifetimes(mode: TestMode) {
        let domain = mode.makeDomain()
        let leases = LeaseTable(capacity: 4096)
        func value(_ key: Int) -> LeasedValue { LeasedValue(key: key, lease: leases.acquire()!, table: leases) }
        var map: RCUHashMap<Int, LeasedValue>? = RCUHashMap(domain: domain)
        for key in 0..<1000 { map![key] = value(key) }          // grows 16 -> 1024
        for key in 0..<500 { map![key] = value(key) }           // 500 replaced
        for key in 500..<700 { map!.removeValue(forKey: key) }  // 200 removed
        // A reader borrowing a value keeps it alive past a removal.
        let borrowedStillLive: Bool? = domain.read {
            map!.withValue(forKey: 900) { borrowed in
                let lease = borrowed.lease
                _ = map!.removeValue(forKey: 900)
                return leases.isLive(lease)
            }
        }
        #expect(borrowedStillLive == true)
        domain.barrier()
        #expect(leases.released.load(ordering: .relaxed) == 701)
        map!.removeAll()
        domain.barrier()
        #expect(leases.outstanding == 0)
        #expect(map!.count == 0)
        for key in 0..<50 { map![key] = value(key) }
        map = nil
        domain.barrier()
        #expect(leases.outstanding == 0, "the map's deinit releases what it holds")
        #expect(leases.issued == 1550)
    }

    @Test("Readers during grow and shrink never miss a stable key, see poison or a duplicate",
          arguments: TestMode.withCanaryReadingFreedMemory)
    func readersDuringResize(mode: TestMode) async {
        if mode.isCanary {
            // Real early frees: run it where a crash cannot end the test run
            // (a child may die walking a freed node before its detector runs).
            await expectCanaryCaughtInChild("values seen after they were freed") {
                await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
                    exitWithCanaryResult(HashMapTests().readersDuringResizeViolations(mode: .canary))
                }
            }
        } else {
            expectViolations(readersDuringResizeViolations(mode: mode), in: mode, "values seen after they were freed")
        }
    }

    /// The body of `readersDuringResize`; returns the violations it saw.
    func readersDuringResizeViolations(mode: TestMode) -> Int {
        let domain = mode.makeDomain()
        let leases = LeaseTable(capacity: 1 << 20)
        let map = RCUHashMap<Int, LeasedValue>(domain: domain)
        let stable = 0..<256
        for key in stable { map[key] = LeasedValue(key: key, lease: leases.acquire()!, table: leases) }
        let stop = Flag()
        let missed = Count()
        let poisoned = Count()
        let duplicates = Count()
        let lookups = Count()
        let traversals = Count()
        let largest = Atomic<Int>(0)

        var threads: [TestThread] = []
        for reader in 0..<2 {
            threads.append(TestThread {
                var random = SeededGenerator(seed: UInt64(reader + 1))
                var rounds = 0
                while !stop.isSet {
                    rounds += 1
                    if rounds % 64 == 0 {
                        // A traversal sees every stable key exactly once.
                        var seen = Set<Int>()
                        map.forEach { key, value in
                            if !seen.insert(key).inserted { duplicates.add() }
                            if value.key != key || !leases.isLive(value.lease) { poisoned.add(); stopCanaryAtFirstViolation(mode) }
                        }
                        if !stable.allSatisfy(seen.contains) { missed.add() }
                        traversals.add()
                        continue
                    }
                    let key = Int.random(in: stable, using: &random)
                    let ok = map.withValue(forKey: key) { value -> Bool in
                        var live = leases.isLive(value.lease)
                        for _ in 0..<16 where live { live = leases.isLive(value.lease) }
                        if !live { stopCanaryAtFirstViolation(mode) }
                        return live && value.key == key
                    }
                    if ok == nil { missed.add() } else if ok == false { poisoned.add() }
                    lookups.add()
                }
            })
        }
        // Two writers: one churns a large key range (grow to 32k+ buckets and
        // back), one keeps replacing the stable keys' values.
        threads.append(TestThread {
            for round in 0..<3 where !stop.isSet {
                let base = 10_000 + round * 100_000
                for key in base..<(base + 40_000) {
                    guard let lease = leases.acquire() else { break }
                    map[key] = LeasedValue(key: key, lease: lease, table: leases)
                }
                largest.store(max(largest.load(ordering: .relaxed), map.bucketCount), ordering: .relaxed)
                for key in base..<(base + 40_000) { map[key] = nil }
            }
            stop.set()
        })
        threads.append(TestThread {
            var random = SeededGenerator(seed: 99)
            for _ in 0..<200_000 where !stop.isSet {
                let key = Int.random(in: stable, using: &random)
                guard let lease = leases.acquire() else { break }
                map[key] = LeasedValue(key: key, lease: lease, table: leases)
            }
        })
        if mode.isCanary {
            // Its early frees are what this test exists to see: stop at the first.
            _ = waitUntil(seconds: 300) { stop.isSet || poisoned.current > 0 }
        } else {
            #expect(stop.wait(seconds: 300), "the churn writer finished")
        }
        stop.set()
        for thread in threads { thread.join() }

        #expect(lookups.current > 0 && traversals.current > 0)
        guard !mode.isCanary else { return poisoned.current }  // its table is not to be trusted further
        #expect(missed.current == 0, "stable keys missed")
        #expect(duplicates.current == 0, "keys seen twice in one traversal")
        #expect(largest.load(ordering: .relaxed) >= 32_768, "the churn grew the table")
        #expect(map.bucketCount <= largest.load(ordering: .relaxed) / 8, "the drain shrank it again")
        #expect(map.count == stable.count)
        map.removeAll()
        domain.barrier()
        #expect(leases.outstanding == 0, "every value was released: no leak")
        return poisoned.current
    }

    @Test("removeAll under concurrent lookups", arguments: TestMode.withCanaryReadingFreedMemory)
    func removeAllUnderLookups(mode: TestMode) async {
        if mode.isCanary {
            // Real early frees: run it where a crash cannot end the test run
            // (a child may die walking a freed node before its detector runs).
            await expectCanaryCaughtInChild("a lookup saw a value freed by removeAll") {
                await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
                    exitWithCanaryResult(HashMapTests().removeAllUnderLookupsViolations(mode: .canary))
                }
            }
        } else {
            expectViolations(removeAllUnderLookupsViolations(mode: mode), in: mode, "a lookup saw a value freed by removeAll")
        }
    }

    /// The body of `removeAllUnderLookups`; returns the violations it saw.
    func removeAllUnderLookupsViolations(mode: TestMode) -> Int {
        let domain = mode.makeDomain()
        let leases = LeaseTable(capacity: 1 << 18)
        let map = RCUHashMap<Int, LeasedValue>(domain: domain)
        let stop = Flag()
        let violations = Count()
        let hits = Count()
        var threads: [TestThread] = []
        for reader in 0..<2 {
            threads.append(TestThread {
                var random = SeededGenerator(seed: UInt64(reader + 7))
                while !stop.isSet {
                    let key = Int.random(in: 0..<2000, using: &random)
                    let found = map.withValue(forKey: key) { value -> Bool in
                        var live = leases.isLive(value.lease)
                        for _ in 0..<16 where live { live = leases.isLive(value.lease) }
                        if !live || value.key != key { violations.add(); stopCanaryAtFirstViolation(mode) }
                        return true
                    }
                    if found != nil { hits.add() }
                }
            })
        }
        var rounds = 0
        outer: while rounds < 100 {
            for key in 0..<2000 {
                guard let lease = leases.acquire() else { break outer }
                map[key] = LeasedValue(key: key, lease: lease, table: leases)
            }
            map.removeAll()
            #expect(map.count == 0 && map[5] == nil)
            rounds += 1
        }
        stop.set()
        for thread in threads { thread.join() }
        domain.barrier()
        #expect(hits.current > 0, "readers found keys between clears")
        #expect(leases.outstanding == 0)
        return violations.current
    }

    @Test("Concurrent writers: the final contents and count are exact")
    func concurrentWriters() {
        let map = RCUHashMap<Int, Int>()
        let writers = 4
        let perWriter = 20_000
        var threads: [TestThread] = []
        let contested = Count()
        for writer in 0..<writers {
            threads.append(TestThread {
                let base = writer * perWriter
                for key in base..<(base + perWriter) { map[key] = key }
                for key in stride(from: base + 1, to: base + perWriter, by: 2) { map[key] = nil }
                // Every writer races for the same 1000 keys.
                for key in 1_000_000..<1_001_000 where map.insertIfAbsent(writer, forKey: key).inserted {
                    contested.add()
                }
            })
        }
        for thread in threads { thread.join() }
        #expect(contested.current == 1000, "each contested key is inserted exactly once")
        #expect(map.count == writers * perWriter / 2 + 1000)
        for key in 0..<(writers * perWriter) { #expect(map[key] == (key % 2 == 0 ? key : nil)) }
    }
}
