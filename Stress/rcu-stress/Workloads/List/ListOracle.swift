// `oracle --workload list`: one seeded sequence of list operations applied to
// RCUList and to liburcu's cds_list_*_rcu (writers under a pthread mutex),
// with an Array as the model that picks positions. Every operation's result
// must agree, and every 64 operations (and at each traversal op) the whole
// contents; reader threads traverse both lists meanwhile and check that every
// element they visit is live (its lease not poisoned).
import CLiburcu
import Glibc
import RCU
import RCUCollections
import Synchronization

/// The two lists and the model, driven in lockstep.
final class ListOracle: @unchecked Sendable {
    // @unchecked Sendable: readers only use `swiftList`, `cList` and `pool`,
    // which are built for concurrent use; the model and handle arrays are
    // touched only by the driving thread.
    let pool = LeasePool()
    let swiftList = RCUList<ListElement>()
    let cList: UnsafeMutablePointer<clu_list>
    var model: [Int] = []
    var swiftNodes: [RCUList<ListElement>.Node] = []
    var cNodes: [UnsafeMutablePointer<clu_list_node>] = []
    var nextValue = 0
    var buffer = [Int](repeating: 0, count: 4096)

    init() {
        cList = clu_list_create(listLeaseFreeHook, nil)
        // The hook's context is the pool, which `self` can name only now.
        cList.pointee.hook_context = Unmanaged.passUnretained(pool).toOpaque()
    }
    deinit { clu_list_destroy(cList) }

    func fresh() -> Int {
        nextValue += 1
        return nextValue
    }

    /// Both lists' full traversals and the model, or a description of the
    /// difference.
    func compareContents() -> String? {
        let swiftValues = swiftList.read { view in view.map(\.id) }
        let count = buffer.withUnsafeMutableBufferPointer { clu_list_collect(cList, $0.baseAddress, $0.count) }
        let cValues = Array(buffer.prefix(min(count, buffer.count)))
        if swiftValues == model && cValues == model && count == model.count { return nil }
        return "RCUList \(abbreviate(swiftValues)), cds_list_rcu \(abbreviate(cValues)) (\(count)), model \(abbreviate(model))"
    }

    func abbreviate(_ values: [Int]) -> String {
        values.count <= 12 ? "\(values)" : "\(Array(values.prefix(12)))... (\(values.count))"
    }

    /// One reader pass over both lists; returns violations (dead leases).
    func readerPass() -> Int {
        var bad = 0
        let states = pool.states
        swiftList.read { view in
            for element in view where states[element.lease].load(ordering: .acquiring) != liveState { bad += 1 }
        }
        clu_read_lock()
        var node = clu_list_first(cList)
        while let current = node {
            let lease = current.pointee.lease
            if lease < 0 || lease >= pool.capacity || states[lease].load(ordering: .acquiring) != liveState { bad += 1 }
            node = clu_list_next(cList, current)
        }
        clu_read_unlock()
        return bad
    }

    /// Applies one random operation to both lists and the model; returns a
    /// description of the operation and, on disagreement, of the results.
    func step(_ random: inout StressRandom) -> (op: String, mismatch: String?) {
        let size = model.count
        var choice = random.below(1000)
        if size < 8 && choice >= 400 && choice < 700 { choice -= 300 }  // grow while small
        if size > 240 && choice < 400 { choice += 300 }  // shrink while large
        let index = size == 0 ? 0 : random.below(size)
        func same(_ a: Int?, _ b: Int?, _ c: Int?) -> String? {
            a == b && b == c ? nil : "RCUList \(a.map(String.init) ?? "nil"), cds_list_rcu \(b.map(String.init) ?? "nil"), model \(c.map(String.init) ?? "nil")"
        }
        switch choice {
        case 0..<100:
            let value = fresh()
            swiftNodes.append(swiftList.append(ListElement(id: value, pool: pool)))
            cNodes.append(clu_list_append(cList, value, pool.acquire()))
            model.append(value)
            return ("append(\(value))", nil)
        case 100..<170:
            let value = fresh()
            swiftNodes.insert(swiftList.prepend(ListElement(id: value, pool: pool)), at: 0)
            cNodes.insert(clu_list_prepend(cList, value, pool.acquire()), at: 0)
            model.insert(value, at: 0)
            return ("prepend(\(value))", nil)
        case 170..<290 where size > 0:
            let value = fresh()
            let op = "insert(\(value), after: \(model[index]))"
            do {
                swiftNodes.insert(try swiftList.insert(ListElement(id: value, pool: pool), after: swiftNodes[index]), at: index + 1)
            } catch { return (op, "RCUList threw \(error)") }
            cNodes.insert(clu_list_insert_after(cList, cNodes[index], value, pool.acquire()), at: index + 1)
            model.insert(value, at: index + 1)
            return (op, nil)
        case 290..<400 where size > 0:
            let value = fresh()
            let op = "insert(\(value), before: \(model[index]))"
            do {
                swiftNodes.insert(try swiftList.insert(ListElement(id: value, pool: pool), before: swiftNodes[index]), at: index)
            } catch { return (op, "RCUList threw \(error)") }
            cNodes.insert(clu_list_insert_before(cList, cNodes[index], value, pool.acquire()), at: index)
            model.insert(value, at: index)
            return (op, nil)
        case 400..<560 where size > 0:
            let op = "remove(\(model[index]))"
            let swiftValue: Int
            do { swiftValue = try swiftList.remove(swiftNodes[index]).id } catch { return (op, "RCUList threw \(error)") }
            let cValue = clu_list_remove(cList, cNodes[index])
            let modelValue = model.remove(at: index)
            swiftNodes.remove(at: index)
            cNodes.remove(at: index)
            return (op, same(swiftValue, cValue, modelValue))
        case 560..<630:
            let divisor = 2 + random.below(6)
            let op = "removeFirst(where: multiple of \(divisor))"
            let swiftValue = swiftList.removeFirst { $0.id % divisor == 0 }?.id
            var removed = 0
            let cValue: Int? = clu_list_remove_first_multiple(cList, divisor, &removed) != 0 ? removed : nil
            let found = model.firstIndex { $0 % divisor == 0 }
            let modelValue = found.map { model[$0] }
            if let found {
                model.remove(at: found)
                swiftNodes.remove(at: found)
                cNodes.remove(at: found)
            }
            return (op, same(swiftValue, cValue, modelValue))
        case 630..<730 where size > 0:
            let value = fresh()
            let op = "replace(\(model[index]), with: \(value))"
            let old = swiftNodes[index].element.id
            do {
                swiftNodes[index] = try swiftList.replace(swiftNodes[index], with: ListElement(id: value, pool: pool))
            } catch { return (op, "RCUList threw \(error)") }
            var cOld = 0
            cNodes[index] = clu_list_replace(cList, cNodes[index], value, pool.acquire(), &cOld)
            let modelOld = model[index]
            model[index] = value
            return (op, same(old, cOld, modelOld))
        case 730..<760:
            let swiftValue = swiftList.popFirst()?.id
            var removed = 0
            let cValue: Int? = clu_list_pop_first(cList, &removed) != 0 ? removed : nil
            let modelValue = model.first
            if !model.isEmpty {
                model.removeFirst()
                swiftNodes.removeFirst()
                cNodes.removeFirst()
            }
            return ("popFirst()", same(swiftValue, cValue, modelValue))
        case 760..<762 where random.below(10) == 0:  // 1 op in 5,000: the list regrows to its bound between
            swiftList.removeAll()
            let cCount = clu_list_remove_all(cList)
            let modelCount = model.count
            model = []
            swiftNodes = []
            cNodes = []
            let swiftCount = swiftList.count
            return ("removeAll()", swiftCount == 0 && cCount == modelCount
                ? nil : "RCUList count after \(swiftCount), cds_list_rcu removed \(cCount), model had \(modelCount)")
        case 762..<800:
            return ("remove(last), then insert after its removed handle",
                    removedHandleCheck() ? nil : "RCUList accepted a removed handle")
        default:
            // A traversal: the whole contents.
            return ("traverse", compareContents())
        }
    }

    /// Removes and re-checks a node: a removed handle must be rejected.
    func removedHandleCheck() -> Bool {
        guard let node = swiftNodes.last else { return true }
        let value = node.element.id
        // Remove through the two lists and the model, then misuse the handle.
        guard (try? swiftList.remove(node)) != nil else { return false }
        _ = clu_list_remove(cList, cNodes.removeLast())
        swiftNodes.removeLast()
        model.removeLast()
        do {
            try swiftList.insert(ListElement(id: value, pool: pool), after: node)
            return false
        } catch {
            return error == .nodeRemoved && !swiftList.contains(node)
        }
    }
}

func runListOracle(_ options: OracleOptions) -> Int32 {
    clu_register_thread()
    defer { clu_unregister_thread() }
    let oracle = ListOracle()
    var random = StressRandom(seed: options.seed)
    let stop = StopFlag()
    let readerViolations = Atomic<Int>(0)
    let readerPasses = Atomic<Int>(0)
    var readers: [StressThreadBox] = []
    for _ in 0..<max(0, options.readers) {
        readers.append(StressThreadBox(StressThread {
            clu_register_thread()
            var bad = 0
            var passes = 0
            while !stop.isSet {
                bad += oracle.readerPass()
                passes += 1
            }
            readerViolations.add(bad, ordering: .relaxed)
            readerPasses.add(passes, ordering: .relaxed)
            clu_unregister_thread()
        }))
    }

    let start = nowNanoseconds()
    var mismatches = 0
    var failure: String? = nil
    var completed = 0
    var progress = ProgressLine()
    for index in 0..<options.operations {
        if Interrupt.isRequested { break }
        if index == oracleDivergeAt {  // test hook: RCUList only
            oracle.swiftList.append(ListElement(id: -1, pool: oracle.pool))
        }
        var (op, mismatch) = oracle.step(&random)
        if mismatch == nil && index % 64 == 63, let difference = oracle.compareContents() {
            op += " (then a full comparison)"
            mismatch = difference
        }
        completed = index + 1
        if let mismatch {
            mismatches += 1
            failure = "oracle list: mismatch at op #\(index) \(op): \(mismatch)"
            break
        }
        if index & 1023 == 0 {
            progress.show("oracle list: \(index) of \(options.operations) operations, 0 mismatches, \(oracle.model.count) elements")
        }
    }
    progress.clear()
    if failure == nil, let difference = oracle.compareContents() {
        mismatches += 1
        failure = "oracle list: final contents differ: \(difference)"
    }
    stop.set()
    for reader in readers { reader.join() }

    // Leak accounting: empty both lists, wait for reclamation, and every
    // lease and C node must be back.
    oracle.swiftNodes = []
    oracle.cNodes = []
    oracle.swiftList.removeAll()
    _ = clu_list_remove_all(oracle.cList)
    oracle.swiftList.domain.barrier()
    clu_barrier()
    let leaked = oracle.pool.live + clu_list_live_nodes(oracle.cList)
    let seconds = Double(nowNanoseconds() - start) / 1e9
    let violations = readerViolations.load(ordering: .relaxed)

    if let failure { printError(failure) }
    if options.json {
        emit(JSON.object([
            ("tool", .string("rcu-stress")),
            ("workload", .string("list")),
            ("seed", .integer(Int64(bitPattern: options.seed))),
            ("ops", .integer(Int64(completed))),
            ("mismatches", .integer(Int64(mismatches))),
            ("reader_violations", .integer(Int64(violations))),
            ("reader_passes", .integer(Int64(readerPasses.load(ordering: .relaxed)))),
            ("leaked", .integer(Int64(leaked))),
            ("seconds", .number((seconds * 1000).rounded() / 1000)),
            ("interrupted", .bool(Interrupt.isRequested)),
        ]).render())
    } else {
        emit("oracle list: seed \(options.seed), \(completed) ops, \(mismatches) mismatches, "
            + "\(readerPasses.load(ordering: .relaxed)) reader passes with \(violations) violations, "
            + "\(leaked) leaked, \(fixed(seconds, 2)) s")
        if Interrupt.isRequested { emit("interrupted: partial results") }
    }
    return mismatches == 0 && violations == 0 && leaked == 0 ? 0 : 1
}
