// RCUList: a model-based test of every writer against an Array, concurrent
// traversals that check what readers see (stable elements in order, nothing
// released), reclamation after a grace period, and handle misuse. Every
// concurrency test counts violations through a permanent liveness table, so
// a premature release is seen as a dead slot rather than as luck; the canary
// test shows that a domain whose grace periods do not wait is caught.
#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) import RCU
import RCUCollections
import RCUTestSupport
import Synchronization
import Testing

// MARK: - Support (threads, flags, modes and waits come from RCUTestSupport)

/// Permanent liveness slots: an item marks its slot dead in deinit, and a
/// reader can check a slot after the item that named it was freed.
fileprivate final class LiveTable: @unchecked Sendable {
    // @unchecked Sendable: `slots` is allocated once, never moves, and is
    // only accessed through its atomics.
    let capacity: Int
    let slots: UnsafeMutablePointer<Atomic<Int>>
    let next = Atomic<Int>(0)
    let deaths = Atomic<Int>(0)

    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        for index in 0..<capacity { (slots + index).initialize(to: Atomic(0)) }
    }
    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    func claim() -> Int {
        let slot = next.wrappingAdd(1, ordering: .relaxed).oldValue
        precondition(slot < capacity, "LiveTable exhausted")
        slots[slot].store(1, ordering: .releasing)
        return slot
    }
    func kill(_ slot: Int) {
        slots[slot].store(-1, ordering: .releasing)
        deaths.add(1, ordering: .relaxed)
    }
    func isLive(_ slot: Int) -> Bool { slots[slot].load(ordering: .acquiring) == 1 }
    var live: Int { next.load(ordering: .relaxed) - deaths.load(ordering: .relaxed) }
}

/// A list element whose release is visible in its table.
fileprivate final class Item: Sendable {
    let id: Int
    let generation: Int
    let slot: Int
    let table: LiveTable
    init(id: Int, generation: Int = 0, table: LiveTable) {
        self.id = id
        self.generation = generation
        self.table = table
        slot = table.claim()
    }
    deinit { table.kill(slot) }
}

/// Spins on a few loads of the item's slot, then reports whether it is live.
@inline(never)
fileprivate func dwellAndCheck(_ item: Item, spins: Int) -> Bool {
    var live = item.table.isLive(item.slot)
    var spin = 0
    while live && spin < spins {
        live = item.table.isLive(item.slot)
        spin += 1
    }
    return live
}

// MARK: - Tests

@Suite("RCUList", .serialized, .timeLimit(.minutes(10)))
struct ListTests {
    @Test("every writer matches an Array model; removed handles throw", arguments: TestMode.allCases)
    fileprivate func modelBased(mode: TestMode) throws {
        let domain = mode.makeDomain()
        let list = RCUList<Int>(domain: domain)
        var model: [Int] = []
        var handles: [RCUList<Int>.Node] = []
        var removed: [RCUList<Int>.Node] = []
        var random = SeededGenerator(seed: 0x5EED + UInt64(mode.rawValue.count))
        var nextValue = 0

        func fresh() -> Int {
            nextValue += 1
            return nextValue
        }

        for step in 0..<6000 {
            let choice = Int.random(in: 0..<100, using: &random)
            let index = model.isEmpty ? 0 : Int.random(in: 0..<model.count, using: &random)
            switch choice {
            case 0..<15:
                let value = fresh()
                handles.append(list.append(value))
                model.append(value)
            case 15..<25:
                let value = fresh()
                handles.insert(list.prepend(value), at: 0)
                model.insert(value, at: 0)
            case 25..<40 where !model.isEmpty:
                let value = fresh()
                handles.insert(try list.insert(value, after: handles[index]), at: index + 1)
                model.insert(value, at: index + 1)
            case 40..<50 where !model.isEmpty:
                let value = fresh()
                handles.insert(try list.insert(value, before: handles[index]), at: index)
                model.insert(value, at: index)
            case 50..<65 where !model.isEmpty:
                #expect(try list.remove(handles[index]) == model[index])
                removed.append(handles.remove(at: index))
                model.remove(at: index)
            case 65..<72:
                let divisor = Int.random(in: 2...7, using: &random)
                let expected = model.firstIndex { $0 % divisor == 0 }
                let got = list.removeFirst { $0 % divisor == 0 }
                #expect(got == expected.map { model[$0] })
                if let expected {
                    removed.append(handles.remove(at: expected))
                    model.remove(at: expected)
                }
            case 72..<82 where !model.isEmpty:
                let value = fresh()
                let old = handles[index]
                handles[index] = try list.replace(old, with: value)
                #expect(old.element == model[index])
                removed.append(old)
                model[index] = value
            case 82..<86:
                #expect(list.popFirst() == model.first)
                if !model.isEmpty {
                    removed.append(handles.removeFirst())
                    model.removeFirst()
                }
            case 86..<88:
                if Int.random(in: 0..<8, using: &random) == 0 {
                    list.removeAll()
                    removed += handles
                    handles = []
                    model = []
                }
            case 88..<100 where !removed.isEmpty:
                // Misuse: a removed handle is rejected, and nothing changes.
                let stale = removed[Int.random(in: 0..<removed.count, using: &random)]
                #expect(!list.contains(stale))
                #expect(throws: RCUListError.nodeRemoved) { try list.remove(stale) }
                #expect(throws: RCUListError.nodeRemoved) { try list.insert(0, after: stale) }
                #expect(throws: RCUListError.nodeRemoved) { try list.insert(0, before: stale) }
                #expect(throws: RCUListError.nodeRemoved) { try list.replace(stale, with: 0) }
            default:
                break
            }
            if removed.count > 64 { removed.removeFirst(32) }
            let seen = list.snapshot()
            if seen != model {
                Issue.record("step \(step): list \(seen) != model \(model)")
                return
            }
            #expect(list.count == model.count)
            #expect(list.isEmpty == model.isEmpty)
        }
        #expect(handles.allSatisfy { list.contains($0) })
        #expect(list.firstNode { $0 == model.last }?.element == model.last)
        domain.barrier()
        #expect(domain.pendingCallbacks == 0)
    }

    // No canary case: with grace periods that wait for nobody, a reader
    // follows a freed node's link and crashes before its detector can run,
    // in every attempt (docs/testing.md, "Canaries"); the detector itself is
    // shown to fire by deinitAfterGracePeriod's canary.
    @Test("readers see every stable element, in order, and nothing released",
          arguments: TestMode.allCases)
    fileprivate func concurrentReaders(mode: TestMode) {
        expectViolations(concurrentReadersViolations(mode: mode), in: mode, "a reader saw a released or misordered element")
    }

    /// The body of `concurrentReaders`; returns the violations it saw.
    fileprivate func concurrentReadersViolations(mode: TestMode) -> Int {
        let domain = mode.makeDomain()
        let table = LiveTable(capacity: 1 << 16)
        let list = RCUList<Item>(domain: domain)
        let stableCount = 8
        var handles: [RCUList<Item>.Node] = []  // stable and volatile, in list order
        for stable in 0..<stableCount {
            handles.append(list.append(Item(id: stable, table: table)))
        }
        let stop = Flag()
        let violations = Atomic<Int>(0)
        let traversals = Atomic<Int>(0)
        let readers = (0..<2).map { _ in
            TestThread {
                var local = 0
                var count = 0
                while !stop.isSet {
                    list.read { view in
                        var expected = 0
                        for item in view {
                            if !dwellAndCheck(item, spins: 8) { local += 1 }
                            if item.id < stableCount {
                                if item.id != expected { local += 1 }
                                expected = item.id + 1
                            }
                        }
                        if expected != stableCount { local += 1 }
                    }
                    count += 1
                }
                violations.add(local, ordering: .relaxed)
                traversals.add(count, ordering: .relaxed)
            }
        }
        var random = SeededGenerator(seed: 42)
        var nextID = 1000
        for _ in 0..<20_000 {
            let index = Int.random(in: 0..<handles.count, using: &random)
            let volatile = handles[index].element.id >= stableCount
            nextID += 1
            switch Int.random(in: 0..<4, using: &random) {
            case 0:
                handles.insert(try! list.insert(Item(id: nextID, table: table), after: handles[index]), at: index + 1)
            case 1:
                handles.insert(try! list.insert(Item(id: nextID, table: table), before: handles[index]), at: index)
            case 2 where volatile:
                handles[index] = try! list.replace(handles[index], with: Item(id: nextID, table: table))
            default:
                if volatile {
                    try! list.remove(handles[index])
                    handles.remove(at: index)
                }
            }
            while handles.count > 64 {
                let victim = handles.firstIndex { $0.element.id >= stableCount }!
                try! list.remove(handles.remove(at: victim))
            }
        }
        stop.set()
        for reader in readers { reader.join() }
        #expect(traversals.load(ordering: .relaxed) > 0)
        handles = []
        list.removeAll()
        domain.barrier()
        #expect(table.live == 0, "leaked items")
        return violations.load(ordering: .relaxed)
    }

    @Test("an element is released after a grace period, never while a reader holds it",
          arguments: TestMode.withCanary)
    fileprivate func deinitAfterGracePeriod(mode: TestMode) {
        let (early, deinits) = releaseWhileReading(domain: mode.makeDomain())
        expectViolations(early, in: mode, "an element was released while a reader held it")
        #expect(deinits == 1)
    }

    // No canary case, for the reason given at concurrentReaders.
    @Test("removeAll under concurrent traversal: readers see one generation, in order, alive",
          arguments: TestMode.allCases)
    fileprivate func removeAllUnderTraversal(mode: TestMode) {
        expectViolations(removeAllUnderTraversalViolations(mode: mode), in: mode, "a reader saw a released element or a mixed generation")
    }

    /// The body of `removeAllUnderTraversal`; returns the violations it saw.
    fileprivate func removeAllUnderTraversalViolations(mode: TestMode) -> Int {
        let domain = mode.makeDomain()
        let table = LiveTable(capacity: 1 << 16)
        let list = RCUList<Item>(domain: domain)
        let stop = Flag()
        let violations = Atomic<Int>(0)
        let readers = (0..<2).map { _ in
            TestThread {
                var local = 0
                while !stop.isSet {
                    list.read { view in
                        var expectedID = 0
                        var generation = -1
                        for item in view {
                            if !dwellAndCheck(item, spins: 4) { local += 1 }
                            if generation < 0 { generation = item.generation }
                            if item.generation != generation || item.id != expectedID { local += 1 }
                            expectedID += 1
                        }
                    }
                }
                violations.add(local, ordering: .relaxed)
            }
        }
        for generation in 0..<400 {
            list.removeAll()
            for id in 0..<64 { list.append(Item(id: id, generation: generation, table: table)) }
        }
        stop.set()
        for reader in readers { reader.join() }
        list.removeAll()
        #expect(list.isEmpty && list.count == 0)
        domain.barrier()
        #expect(table.live == 0, "leaked items")
        return violations.load(ordering: .relaxed)
    }

    @Test("a handle keeps its element after removal; the element goes with the last reference")
    fileprivate func handleKeepsElement() {
        let domain = RCUDomain()
        let table = LiveTable(capacity: 16)
        let list = RCUList<Item>(domain: domain)
        var handle: RCUList<Item>.Node? = list.append(Item(id: 7, table: table))
        #expect(try! list.remove(handle!).id == 7)
        domain.barrier()
        #expect(table.live == 1)
        #expect(handle?.element.id == 7)
        handle = nil
        #expect(table.live == 0)
    }

    @Test("deinitialising the list releases its elements")
    fileprivate func listDeinitReleases() {
        let table = LiveTable(capacity: 1024)
        var list: RCUList<Item>? = RCUList((0..<100).map { Item(id: $0, table: table) })
        #expect(list?.count == 100)
        let kept = list!.firstNode { $0.id == 50 }!
        list = nil
        #expect(table.live == 1)  // the handle's element
        _ = kept
    }

    @Test("a handle of another list stops the process with a message")
    func foreignHandle() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let first = RCUList<Int>()
            let second = RCUList<Int>()
            let node = first.append(1)
            _ = try? second.remove(node)
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("node handle of another RCUList"))
    }
}

/// A reader thread stands on an element inside a read section while the main
/// thread removes it; returns (releases seen while the reader was inside,
/// releases after everything finished). The reader never touches the element
/// after the removal, only its permanent slot, so an early release is counted,
/// not crashed on.
fileprivate func releaseWhileReading(domain: RCUDomain) -> (early: Int, deinits: Int) {
    let table = LiveTable(capacity: 16)
    let list = RCUList<Item>(domain: domain)
    var handle: RCUList<Item>.Node? = list.append(Item(id: 1, table: table))
    let inside = Flag()
    let release = Flag()
    let early = Atomic<Int>(0)
    let reader = TestThread {
        list.read { view in
            var slot = -1
            for item in view { slot = item.slot }  // the reference is dropped here
            inside.set()
            _ = waitUntil(seconds: 30) { release.isSet }
            if !table.isLive(slot) { early.add(1, ordering: .relaxed) }
        }
    }
    _ = waitUntil(seconds: 30) { inside.isSet }
    try! list.remove(handle!)
    handle = nil
    // Give a wrong domain every chance to release early; a right one must not.
    _ = waitUntil(seconds: 0.2) { table.live == 0 }
    release.set()
    reader.join()
    domain.barrier()
    return (early.load(ordering: .relaxed), table.deaths.load(ordering: .relaxed))
}
