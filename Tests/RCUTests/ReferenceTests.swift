#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) @testable import RCU
import Synchronization
import RCUTestSupport
import Testing

/// An object that poisons itself in deinit. A reader that still borrows it
/// when a premature release runs the deinit sees the poison. (After the
/// memory is freed, nothing is guaranteed: rcu-stress's recycled-storage
/// torture is the rigorous check; this one catches the common case.)
final class Node: Sendable {
    let value: Int
    let alive = Atomic<Int>(0x5AFE)
    let counter: LiveCount
    init(_ value: Int, _ counter: LiveCount) {
        self.value = value
        self.counter = counter
    }
    deinit {
        alive.store(-1, ordering: .relaxed)
        counter.deinits.add(1, ordering: .releasing)
    }
}

@Suite("RCUReference and RCUSnapshot", .serialized, .timeLimit(.minutes(10)))
struct ReferenceTests {
    @Test("load, store, exchange and compareExchange")
    func referenceOperations() {
        let domain = RCUDomain()
        let counter = LiveCount()
        let first = Node(1, counter)
        let reference = RCUReference<Node>(first, domain: domain)
        #expect(reference.load() === first)
        #expect(reference.read { $0?.value } == 1)
        let second = Node(2, counter)
        #expect(reference.exchange(second) === first)
        let third = Node(3, counter)
        let failed = reference.compareExchange(expected: first, desired: third)
        #expect(!failed.exchanged && failed.original === second)
        let succeeded = reference.compareExchange(expected: second, desired: nil)
        #expect(succeeded.exchanged && succeeded.original === second)
        #expect(reference.load() == nil)
        reference.store(third)
        #expect(reference.read { $0?.value } == 3)
    }

    @Test("replaced objects are released exactly once, after a grace period; escaped ones live on")
    func referenceReclamation() {
        let domain = RCUDomain()
        let counter = LiveCount()
        do {
            let reference = RCUReference<Node>(Node(0, counter), domain: domain)
            let escaped = reference.load()
            for value in 1...1000 { reference.store(Node(value, counter)) }
            domain.barrier()
            #expect(counter.counts.deinits == 999, "all replaced nodes but the escaped one")
            #expect(escaped?.alive.load(ordering: .relaxed) == 0x5AFE)
            _ = escaped
        }
        domain.barrier()
        #expect(counter.counts.deinits == 1001)
    }

    @Test("readers never borrow a freed object while writers replace it", arguments: TestMode.withCanaryReadingFreedMemory)
    func referenceTorture(mode: TestMode) async {
        if mode.isCanary {
            // Real early frees: run it where a crash cannot end the test run
            // (a child may die walking a freed node before its detector runs).
            await expectCanaryCaughtInChild("a reader borrowed a node that was released") {
                await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
                    exitWithCanaryResult(ReferenceTests().referenceTortureViolations(mode: .canary))
                }
            }
        } else {
            expectViolations(referenceTortureViolations(mode: mode), in: mode, "a reader borrowed a node that was released")
        }
    }

    /// The body of `referenceTorture`; returns the violations it saw.
    func referenceTortureViolations(mode: TestMode) -> Int {
        let domain = mode.makeDomain()
        let counter = LiveCount()
        let reference = RCUReference<Node>(Node(0, counter), domain: domain)
        let stop = Flag()
        let violations = Count()
        let readers = (0..<2).map { _ in
            TestThread {
                while !stop.isSet {
                    reference.read { node in
                        for _ in 0..<32 where node?.alive.load(ordering: .relaxed) != 0x5AFE {
                            violations.add()
                            stopCanaryAtFirstViolation(mode)
                            break
                        }
                    }
                }
            }
        }
        let stores = Count()
        let writer = TestThread {
            var value = 1
            while !stop.isSet {
                reference.store(Node(value, counter))
                value += 1
            }
            stores.add(value - 1)
        }
        _ = waitUntil(seconds: 1) { mode.isCanary && violations.current > 0 }
        stop.set()
        writer.join()
        for reader in readers { reader.join() }
        domain.barrier()
        // Every replaced node, the initial one included; the current one lives.
        #expect(counter.counts.deinits == stores.current)
        #expect(stores.current > 0)
        return violations.current
    }

    struct Pair: Sendable, Equatable {
        var first = 0
        var second = 0
    }

    @Test("snapshot readers never see a half-updated value", arguments: TestMode.allCases)
    func snapshotConsistency(mode: TestMode) {
        let cell = RCUSnapshot(Pair(), domain: mode.makeDomain())
        let stop = Flag()
        let torn = Count()
        let readers = (0..<2).map { _ in
            TestThread {
                while !stop.isSet {
                    if cell.read({ $0.first != $0.second }) { torn.add() }
                }
            }
        }
        let writer = TestThread {
            while !stop.isSet {
                cell.update { pair in
                    pair.first += 1
                    pair.second += 1
                }
            }
        }
        sleepMicroseconds(500_000)
        stop.set()
        writer.join()
        for reader in readers { reader.join() }
        let final = cell.snapshot()
        #expect(torn.current == 0)
        #expect(final.first == final.second && final.first > 0)
    }

    @Test("snapshot update, replace and copy; old values are released")
    func snapshotOperations() {
        let domain = RCUDomain()
        let counter = LiveCount()
        struct Config: Sendable { var port: Int; var owner: Node }
        let cell = RCUSnapshot(Config(port: 80, owner: Node(0, counter)), domain: domain)
        #expect(cell.read { $0.port } == 80)
        let previous = cell.update { config -> Int in
            defer { config.port = 8080 }
            return config.port
        }
        #expect(previous == 80 && cell.snapshot().port == 8080)
        cell.replace(Config(port: 443, owner: Node(1, counter)))
        #expect(cell.read { $0.port } == 443)
        domain.barrier()
        #expect(counter.counts.deinits == 1, "the first owner, after both its boxes were retired")
    }
}
