#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
@_spi(RCUCollections) import RCU
import Synchronization

/// A concurrent hash map whose lookups never lock, block or allocate:
/// readers run inside an RCU read section, writers lock one bucket, and
/// removed entries are reclaimed through ``RCUDomain/retire(_:)``.
///
/// ```swift
/// let sessions = RCUHashMap<UInt64, Session>()
/// sessions[id] = Session(user: "ada")      // insert or replace
/// if let session = sessions[id] { ... }     // wait-free lookup
/// sessions.removeValue(forKey: id)
/// ```
///
/// **Structure.** A power-of-two array of bucket heads, each the start of a
/// singly linked chain of immutable entries. Replacing a value links a new
/// entry in place of the old one, so a lookup sees the old or the new value
/// and never misses the key.
///
/// **Consistency.** Every operation on one key is linearizable: a lookup
/// returns the value of the last update to that key that completed before
/// it began, or of one running concurrently with it. Operations on different
/// keys are not ordered with each other from a reader's point of view.
/// ``count`` and ``forEach(_:)`` are weakly consistent (see each).
///
/// **Resizing.** The table doubles when it holds more entries than buckets
/// and halves when it holds fewer than an eighth, on the writer that crosses
/// the threshold. A resize copies each bucket's entries into the new table
/// and then marks the old bucket moved; lookups and writers that find a
/// moved bucket continue in the new table. Readers never wait for a resize,
/// a key present throughout a resize is always found, and no traversal sees
/// a key twice. Writers of a bucket being copied wait for that one bucket.
///
/// **Memory.** Per entry: one heap object (16-byte header, next pointer,
/// hash, key and value, rounded up by malloc), plus 8 to 64 bytes of bucket
/// array (8 bytes per bucket, one to eight buckets per entry). During a
/// resize both tables and two copies of every entry exist; the old ones are
/// retired once the new table is published.
///
/// - Warning: A value borrowed by ``withValue(forKey:_:)`` or ``forEach(_:)``
///   is only valid inside the call; copy what you need out.
public final class RCUHashMap<Key: Hashable, Value> {
    @usableFromInline typealias _Node = _RCUHashNode<Key, Value>
    @usableFromInline typealias _Table = _RCUHashTable<Key, Value>

    /// The domain whose read sections protect lookups and whose worker
    /// frees removed entries.
    public let domain: RCUDomain

    /// Bits of the current table, holding one strong reference to it. Read
    /// inside read sections; replaced (under `_resizeLock`) by resizes and
    /// `removeAll`.
    @usableFromInline internal let _root: Atomic<UInt>
    /// Serialises resizes and `removeAll`.
    private let _resizeLock = _RCUMutex<Void>(())
    /// The smallest bucket count the map shrinks to (raised by
    /// `reserveCapacity`).
    private let _minimumBuckets: Atomic<Int>
    /// Per-CPU entry counts (padded); their sum is the count.
    @usableFromInline internal let _counters: _StripedCounter

    /// Creates an empty map.
    ///
    /// - Parameters:
    ///   - minimumCapacity: entries the map holds before its first resize;
    ///     it never shrinks below this.
    ///   - domain: the RCU domain for lookups and reclamation.
    /// - Complexity: O(`minimumCapacity`).
    public init(minimumCapacity: Int = 0, domain: RCUDomain = .shared) {
        if minimumCapacity < 0 { fatalError("RCUHashMap: minimumCapacity must not be negative (got \(minimumCapacity))") }
        self.domain = domain
        let minimumBuckets = Self._bucketCount(for: minimumCapacity, minimum: 16)
        _minimumBuckets = Atomic(minimumBuckets)
        _root = Atomic(Unmanaged.passRetained(_Table(bucketCount: minimumBuckets)).toOpaqueBits())
        _counters = _StripedCounter(stripes: domain._cpuSlotCount)
    }

    deinit {
        // No reader can be inside: readers hold a reference to the map.
        // Retired tables and entries belong to the domain's worker.
        Unmanaged<_Table>.fromOpaqueBits(_root.load(ordering: .acquiring)).release()
    }

    // MARK: - Lookups

    /// The value for `key`, or nil. Setting a value inserts or replaces it;
    /// setting nil removes the key.
    ///
    /// - Complexity: O(1) on average: a read section, one hash, a bucket load
    ///   and a short chain walk. Never locks, blocks or allocates.
    @inlinable
    public subscript(key: Key) -> Value? {
        get { value(forKey: key) }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    /// The value for `key`, or nil.
    ///
    /// Callable inside or outside a read section of ``domain`` (outside, it
    /// enters one itself).
    ///
    /// - Complexity: O(1) on average; wait-free.
    @inlinable
    public func value(forKey key: Key) -> Value? {
        let hash = key.hashValue
        return domain.read { _lookup(key, hash: hash) { $0 } }
    }

    /// Whether the map holds `key`.
    ///
    /// - Complexity: O(1) on average; wait-free.
    @inlinable
    public func contains(_ key: Key) -> Bool {
        let hash = key.hashValue
        return domain.read { _lookup(key, hash: hash) { _ in true } } ?? false
    }

    /// Calls `body` with the value for `key`, borrowed in place: no copy and
    /// no reference counting of the value. Returns nil when the key is absent.
    ///
    /// - Complexity: O(1) on average plus `body`.
    /// - Warning: `body` runs inside a read section: keep it short, and do not
    ///   call ``RCUDomain/synchronize()`` or ``RCUDomain/barrier()`` of
    ///   ``domain`` from it. The value must not escape other than by copying.
    @inlinable
    public func withValue<Result>(forKey key: Key, _ body: (borrowing Value) throws -> Result) rethrows -> Result? {
        let hash = key.hashValue
        return try domain.read { try _lookup(key, hash: hash, body) }
    }

    /// The lookup loop; call inside a read section.
    @inlinable @inline(__always)
    internal func _lookup<Result>(_ key: Key, hash: Int, _ body: (borrowing Value) throws -> Result) rethrows -> Result? {
        // Acquire (L1): pairs with the release stores that publish a table
        // (root in _resize/_removeAll) and make its buckets visible.
        var tableBits = _root.load(ordering: .acquiring)
        while true {
            let table = Unmanaged<_Table>.fromOpaqueBits(tableBits)
            // Acquire (L2): pairs with the release store that linked the
            // first entry (W1/W2), or marked the bucket moved (R2).
            let head = table._withUnsafeGuaranteedRef { $0.buckets[hash & $0.mask].load(ordering: .acquiring) }
            if head & _bucketMoved != 0 {
                // Acquire (L3): pairs with (R1), the release store of `next`
                // made before any bucket was marked moved.
                tableBits = table._withUnsafeGuaranteedRef { $0.next.load(ordering: .acquiring) }
                continue
            }
            var nodeBits = head & _bucketPointerMask
            while nodeBits != 0 {
                let node = Unmanaged<_Node>.fromOpaqueBits(nodeBits)
                let found: Bool = node._withUnsafeGuaranteedRef { $0.hash == hash && $0.key == key }
                if found {
                    return try node._withUnsafeGuaranteedRef { try body($0.value) }
                }
                // Acquire (L4): pairs with the release store that linked the
                // successor (insert after, replace or remove in a writer).
                nodeBits = node._withUnsafeGuaranteedRef { $0.next.load(ordering: .acquiring) }
            }
            return nil
        }
    }

    // MARK: - Updates

    /// Sets the value for `key` and returns the value it replaced, or nil if
    /// the key was absent.
    ///
    /// The replaced entry is retired: readers that found it keep reading it
    /// until their sections end.
    ///
    /// - Complexity: O(1) on average: one allocation, one bucket lock and, on
    ///   replace, one retire. Amortised O(1) with resizes.
    @inlinable @discardableResult
    public func updateValue(_ value: Value, forKey key: Key) -> Value? {
        let node = _Node(hash: key.hashValue, key: key, value: value)
        switch _write(node, .upsert) {
        case .inserted: return nil
        case .replaced(let old): return old
        case .kept, .removed, .absent: fatalError("unreachable")
        }
    }

    /// Inserts `value` for `key` unless the key is present (liburcu's
    /// `cds_lfht_add_unique`).
    ///
    /// - Returns: whether it was inserted, and the value now stored: `value`
    ///   when inserted, the existing one otherwise.
    /// - Complexity: O(1) on average, as ``updateValue(_:forKey:)``.
    @inlinable @discardableResult
    public func insertIfAbsent(_ value: Value, forKey key: Key) -> (inserted: Bool, currentValue: Value) {
        let node = _Node(hash: key.hashValue, key: key, value: value)
        switch _write(node, .insertUnique) {
        case .inserted: return (true, value)
        case .kept(let existing): return (false, existing)
        case .replaced, .removed, .absent: fatalError("unreachable")
        }
    }

    /// Removes `key` and returns its value, or nil if it was absent.
    ///
    /// - Complexity: O(1) on average: one bucket lock and one retire.
    @inlinable @discardableResult
    public func removeValue(forKey key: Key) -> Value? {
        switch _remove(key, hash: key.hashValue) {
        case .removed(let old): return old
        case .absent: return nil
        case .inserted, .kept, .replaced: fatalError("unreachable")
        }
    }

    /// Removes every entry. Lookups concurrent with it find each key or not;
    /// keys inserted concurrently may survive.
    ///
    /// - Complexity: O(entries + buckets); the entries are freed on the
    ///   domain's worker after a grace period. Waits for any resize.
    public func removeAll() {
        let old = _resizeLock.withLock { _ -> UInt in
            let fresh = _Table(bucketCount: _minimumBuckets.load(ordering: .relaxed))
            let (removed, old) = _migrate(to: fresh, copying: false)
            _counters.add(-removed)
            return old
        }
        _retireBits(old)
    }

    /// Makes room for `capacity` entries without further growth; the map
    /// no longer shrinks below that size.
    ///
    /// - Complexity: O(entries + buckets) when it resizes.
    public func reserveCapacity(_ capacity: Int) {
        let old = _resizeLock.withLock { _ -> UInt in
            let buckets = Self._bucketCount(for: capacity, minimum: _minimumBuckets.load(ordering: .relaxed))
            _minimumBuckets.store(buckets, ordering: .relaxed)
            let current = Unmanaged<_Table>.fromOpaqueBits(_root.load(ordering: .acquiring))
            let size = current._withUnsafeGuaranteedRef { $0.mask + 1 }
            return buckets > size ? _migrate(to: _Table(bucketCount: buckets), copying: true).old : 0
        }
        if old != 0 { _retireBits(old) }
    }

    // MARK: - Counting and iteration

    /// The number of entries.
    ///
    /// Exact when no update runs concurrently; otherwise a value between the
    /// counts before and after the concurrent updates (each update is
    /// counted once, right after it takes effect).
    ///
    /// - Complexity: O(CPUs): a sum of per-CPU counters.
    public var count: Int { max(0, _counters.sum()) }

    /// Whether the map is empty (as exact as ``count``).
    ///
    /// - Complexity: O(CPUs).
    public var isEmpty: Bool { count == 0 }

    /// The current number of buckets: the table grows above one entry per
    /// bucket and shrinks below one per eight.
    ///
    /// - Complexity: O(1).
    public var bucketCount: Int {
        domain.read {
            Unmanaged<_Table>.fromOpaqueBits(_root.load(ordering: .acquiring))._withUnsafeGuaranteedRef { $0.mask + 1 }
        }
    }

    /// Calls `body` for every entry, inside one read section, without locks.
    ///
    /// Weakly consistent: every key present for the whole call is visited
    /// exactly once, with a value it held during the call; a key inserted or
    /// removed meanwhile is visited at most once. No key is visited twice,
    /// even across a concurrent resize.
    ///
    /// - Complexity: O(entries + buckets).
    /// - Warning: `body` runs inside a read section that lasts the whole
    ///   iteration, delaying every grace period of ``domain`` until it ends;
    ///   it must not call ``RCUDomain/synchronize()`` of that domain, and it
    ///   must not update this map (a resize it triggered would wait for no
    ///   one, but a long section holds back reclamation).
    public func forEach(_ body: (Key, Value) throws -> Void) rethrows {
        try domain.read {
            let table = Unmanaged<_Table>.fromOpaqueBits(_root.load(ordering: .acquiring))
            let size = table._withUnsafeGuaranteedRef { $0.mask + 1 }
            for bucket in 0..<size {
                try _visit(table, bucket: bucket, filterMask: size - 1, filterIndex: bucket, body)
            }
        }
    }

    /// Visits the entries of `table`'s `bucket` whose hash maps to
    /// `filterIndex` under `filterMask`, following moved buckets into later
    /// tables.
    ///
    /// Every key wanted here follows exactly one path: in each table it lives
    /// in bucket `hash & mask`. Growing fans a bucket out; only the targets
    /// that can hold wanted keys are followed, and the filter is refined to
    /// the target's bucket, so a later shrink that folds those targets back
    /// together cannot bring a key in through two branches.
    private func _visit(_ table: Unmanaged<_Table>, bucket: Int, filterMask: Int, filterIndex: Int,
                        _ body: (Key, Value) throws -> Void) rethrows {
        // Acquire: as (L2) and (L3) in _lookup.
        let (head, nextBits, mask) = table._withUnsafeGuaranteedRef { table in
            let head = table.buckets[bucket].load(ordering: .acquiring)
            return (head, head & _bucketMoved != 0 ? table.next.load(ordering: .acquiring) : 0, table.mask)
        }
        if nextBits != 0 {
            let next = Unmanaged<_Table>.fromOpaqueBits(nextBits)
            let nextMask = next._withUnsafeGuaranteedRef { $0.mask }
            if nextMask > mask {
                // Grown: this bucket's entries went to `bucket` and its
                // partners `bucket + k * (mask + 1)`.
                var target = bucket
                while target <= nextMask {
                    if nextMask >= filterMask {
                        if target & filterMask == filterIndex {
                            try _visit(next, bucket: target, filterMask: nextMask, filterIndex: target, body)
                        }
                    } else if target == filterIndex & nextMask {
                        try _visit(next, bucket: target, filterMask: filterMask, filterIndex: filterIndex, body)
                    }
                    target += mask + 1
                }
            } else {
                try _visit(next, bucket: bucket & nextMask, filterMask: filterMask, filterIndex: filterIndex, body)
            }
            return
        }
        var nodeBits = head & _bucketPointerMask
        while nodeBits != 0 {
            let node = Unmanaged<_Node>.fromOpaqueBits(nodeBits)
            try node._withUnsafeGuaranteedRef { node in
                if node.hash & filterMask == filterIndex { try body(node.key, node.value) }
            }
            // Acquire: as (L4) in _lookup.
            nodeBits = node._withUnsafeGuaranteedRef { $0.next.load(ordering: .acquiring) }
        }
    }

    /// A copy of every entry, gathered by ``forEach(_:)`` (with its weak
    /// consistency).
    ///
    /// - Complexity: O(entries + buckets).
    public func snapshot() -> [Key: Value] {
        var result: [Key: Value] = [:]
        forEach { key, value in result[key] = value }
        return result
    }

    // MARK: - Writers

    @usableFromInline
    internal enum _WriteKind { case upsert, insertUnique }

    @usableFromInline
    internal enum _Outcome {
        case inserted
        case replaced(Value)
        case kept(Value)
        case removed(Value)
        case absent
    }

    /// Inserts or replaces `node` (a fresh, unpublished entry).
    @inlinable
    internal func _write(_ node: _Node, _ kind: _WriteKind) -> _Outcome {
        let newBits = Unmanaged.passRetained(node).toOpaqueBits()  // +1 owned by the table once linked
        var retiredBits: UInt = 0
        var small = false
        let outcome: _Outcome = domain.read {
            let (table, index, head) = _lockBucket(hash: node.hash)
            return table._withUnsafeGuaranteedRef { table -> _Outcome in
                small = table.mask < _smallTable
                let slot = table.buckets + index
                var previous: Unmanaged<_Node>? = nil
                var currentBits = head & _bucketPointerMask
                while currentBits != 0 {
                    let current = Unmanaged<_Node>.fromOpaqueBits(currentBits)
                    let match = current._withUnsafeGuaranteedRef { $0.hash == node.hash && $0.key == node.key }
                    if match {
                        let old = current._withUnsafeGuaranteedRef { $0.value }
                        if kind == .insertUnique {
                            slot.pointee.store(head, ordering: .releasing)  // unlock, unchanged
                            return .kept(old)
                        }
                        // Only writers holding this bucket's lock touch `next`.
                        node.next.store(current._withUnsafeGuaranteedRef { $0.next.load(ordering: .relaxed) }, ordering: .relaxed)
                        // Release (W1): publishes the new entry's fields; pairs
                        // with (L2)/(L4) in _lookup.
                        Self._relink(after: previous, in: slot, head: head, to: newBits)
                        retiredBits = currentBits
                        return .replaced(old)
                    }
                    previous = current
                    currentBits = current._withUnsafeGuaranteedRef { $0.next.load(ordering: .relaxed) }
                }
                node.next.store(head & _bucketPointerMask, ordering: .relaxed)
                // Release (W1): publishes the entry; link and unlock in one store.
                slot.pointee.store(newBits, ordering: .releasing)
                return .inserted
            }
        }
        switch outcome {
        case .inserted:
            if _counters.add(1, hint: _cpuSlot()) || small { _resizeIfNeeded() }
        case .replaced:
            // Outside the read section, so retire may apply backpressure.
            _retireBits(retiredBits)
        default:
            Unmanaged<_Node>.fromOpaqueBits(newBits).release()  // never published
        }
        return outcome
    }

    @inlinable
    internal func _remove(_ key: Key, hash: Int) -> _Outcome {
        var retiredBits: UInt = 0
        var small = false
        let outcome: _Outcome = domain.read {
            let (table, index, head) = _lockBucket(hash: hash)
            return table._withUnsafeGuaranteedRef { table -> _Outcome in
                small = table.mask < _smallTable
                let slot = table.buckets + index
                var previous: Unmanaged<_Node>? = nil
                var currentBits = head & _bucketPointerMask
                while currentBits != 0 {
                    let current = Unmanaged<_Node>.fromOpaqueBits(currentBits)
                    let (match, successor) = current._withUnsafeGuaranteedRef {
                        ($0.hash == hash && $0.key == key, $0.next.load(ordering: .relaxed))
                    }
                    if match {
                        let old = current._withUnsafeGuaranteedRef { $0.value }
                        // Release (W2): readers at the removed entry still
                        // follow its unchanged `next`; pairs with (L4).
                        Self._relink(after: previous, in: slot, head: head, to: successor)
                        retiredBits = currentBits
                        return .removed(old)
                    }
                    previous = current
                    currentBits = successor
                }
                slot.pointee.store(head, ordering: .releasing)  // unlock, unchanged
                return .absent
            }
        }
        if retiredBits != 0 {
            _retireBits(retiredBits)
            if _counters.add(-1, hint: _cpuSlot()) || small { _resizeIfNeeded() }
        }
        return outcome
    }

    /// Points the link to the current entry (`previous`'s `next`, or the
    /// bucket head when `previous` is nil) at `bits`, and unlocks the
    /// bucket: with one release store at the head, or a release store into
    /// `previous` followed by the unlocking store of the unchanged head.
    @inlinable @inline(__always)
    internal static func _relink(after previous: Unmanaged<_Node>?, in slot: UnsafeMutablePointer<Atomic<UInt>>,
                                 head: UInt, to bits: UInt) {
        if let previous {
            previous._withUnsafeGuaranteedRef { $0.next.store(bits, ordering: .releasing) }
            slot.pointee.store(head, ordering: .releasing)  // unlock
        } else {
            slot.pointee.store(bits, ordering: .releasing)  // link and unlock
        }
    }

    /// Locks the bucket of `hash` in the newest table that owns it. Call
    /// inside a read section (older tables may be retired meanwhile).
    ///
    /// - Returns: the table, the bucket index and the head word as locked
    ///   (without the lock bit). Unlock by storing a head word without it.
    @inlinable
    internal func _lockBucket(hash: Int) -> (Unmanaged<_Table>, Int, UInt) {
        var tableBits = _root.load(ordering: .acquiring)  // acquire: as (L1)
        var spins = 0
        while true {
            let table = Unmanaged<_Table>.fromOpaqueBits(tableBits)
            let (index, head, next) = table._withUnsafeGuaranteedRef { table in
                let index = hash & table.mask
                let head = table.buckets[index].load(ordering: .acquiring)  // acquire: as (L2)
                return (index, head, head & _bucketMoved != 0 ? table.next.load(ordering: .acquiring) : 0)
            }
            if next != 0 {
                tableBits = next
                continue
            }
            if head & _bucketLocked == 0 {
                // Acquire (W0): the lock; pairs with the release store that
                // unlocked the bucket, so this writer sees that writer's chain.
                let locked = table._withUnsafeGuaranteedRef {
                    $0.buckets[index].compareExchange(expected: head, desired: head | _bucketLocked, ordering: .acquiring).exchanged
                }
                if locked { return (table, index, head) }
            }
            spins += 1
            _backOff(spins)
        }
    }

    // Out-of-line bridges to RCU's SPI (SPI cannot appear in inlinable code).

    /// Retires an entry or table given as the bits of a +1 reference.
    @usableFromInline
    internal func _retireBits(_ bits: UInt) {
        domain._retireRetainedBits(bits)
    }

    /// The caller's CPU slot, for the striped counters.
    @usableFromInline
    internal func _cpuSlot() -> Int {
        domain._cpuSlotHint
    }

    /// Waits a little for a bucket lock: spin hints first, then yields.
    @usableFromInline
    internal func _backOff(_ spins: Int) {
        if spins < 128 { _rcuSpinHint() } else { sched_yield() }
    }

    // MARK: - Resizing

    /// Grows or shrinks the table when the count has left its load range.
    @usableFromInline
    internal func _resizeIfNeeded() {
        while true {
            let old: UInt? = _resizeLock.withLockIfAvailable { _ -> UInt in
                let current = Unmanaged<_Table>.fromOpaqueBits(_root.load(ordering: .acquiring))
                let size = current._withUnsafeGuaranteedRef { $0.mask + 1 }
                let count = _counters.sum()
                let minimum = _minimumBuckets.load(ordering: .relaxed)
                let target: Int
                if count > size {
                    target = Self._bucketCount(for: count, minimum: minimum)
                } else if count < size / 8 && size > minimum {
                    target = Self._bucketCount(for: count * 2, minimum: minimum)
                } else {
                    return 0
                }
                return _migrate(to: _Table(bucketCount: target), copying: true).old
            }
            // Busy: the resize in progress re-checks when it finishes.
            guard let old, old != 0 else { return }
            // Retired outside the lock: retire may wait on the memory bound,
            // and a thread blocked on the lock may be inside a read section.
            _retireBits(old)
        }
    }

    /// Moves every bucket of the current table into `fresh` (copying its
    /// entries, or dropping them for `removeAll`) and publishes `fresh`.
    /// Call with `_resizeLock` held.
    ///
    /// - Returns: the number of entries in the old table, and the old table's
    ///   bits (its root reference) for the caller to retire once it has
    ///   released the lock; the old table's deinit, after a grace period,
    ///   releases the old entries.
    private func _migrate(to fresh: _Table, copying: Bool) -> (entries: Int, old: UInt) {
        let oldBits = _root.load(ordering: .acquiring)
        let old = Unmanaged<_Table>.fromOpaqueBits(oldBits)
        let freshBits = Unmanaged.passRetained(fresh).toOpaqueBits()  // root's reference, once published
        var entries = 0
        old._withUnsafeGuaranteedRef { old in
            // Release (R1): `fresh` and its empty buckets before any bucket is
            // marked moved; pairs with (L3).
            old.next.store(freshBits, ordering: .releasing)
            let oldSize = old.mask + 1
            let freshSize = fresh.mask + 1
            // When shrinking, each fresh bucket gathers `oldSize / freshSize`
            // old buckets; they are locked, copied and marked together, so no
            // writer reaches the fresh bucket before all its sources moved.
            let group = copying && freshSize < oldSize ? oldSize / freshSize : 1
            let groups = oldSize / group
            var heads = [UInt](repeating: 0, count: group)
            for first in 0..<groups {
                for member in 0..<group {
                    heads[member] = _lockForMigration(old, index: first + member * groups)
                }
                for member in 0..<group {
                    var bits = heads[member] & _bucketPointerMask
                    while bits != 0 {
                        let node = Unmanaged<_Node>.fromOpaqueBits(bits)
                        node._withUnsafeGuaranteedRef { node in
                            entries += 1
                            if copying {
                                let copy = _Node(hash: node.hash, key: node.key, value: node.value)
                                let slot = fresh.buckets + (node.hash & fresh.mask)
                                // Unpublished until the old bucket is marked
                                // moved (release below): relaxed suffices.
                                copy.next.store(slot.pointee.load(ordering: .relaxed), ordering: .relaxed)
                                slot.pointee.store(Unmanaged.passRetained(copy).toOpaqueBits(), ordering: .relaxed)
                            }
                            bits = node.next.load(ordering: .relaxed)
                        }
                    }
                }
                for member in 0..<group {
                    // Release (R2): the copies before the moved mark (and the
                    // unlock); pairs with (L2) and (L3).
                    old.buckets[first + member * groups].store(
                        (heads[member] & _bucketPointerMask) | _bucketMoved, ordering: .releasing)
                }
            }
        }
        // Release (R3): publishes `fresh` as the root; pairs with (L1).
        _root.store(freshBits, ordering: .releasing)
        // The old table still serves readers that loaded it.
        return (entries, oldBits)
    }

    /// Locks an old-table bucket for migration; returns its head word.
    private func _lockForMigration(_ table: _Table, index: Int) -> UInt {
        var spins = 0
        while true {
            let head = table.buckets[index].load(ordering: .relaxed)
            // Never moved: only migration marks buckets, under _resizeLock.
            if head & _bucketLocked == 0,
               table.buckets[index].compareExchange(expected: head, desired: head | _bucketLocked, ordering: .acquiring).exchanged {
                return head  // acquire (W0)
            }
            spins += 1
            _backOff(spins)
        }
    }

    /// The power-of-two bucket count that holds `entries` at a load of at
    /// most one.
    private static func _bucketCount(for entries: Int, minimum: Int) -> Int {
        var buckets = max(minimum, 16)
        while buckets < entries { buckets <<= 1 }
        return buckets
    }
}

extension RCUHashMap: @unchecked Sendable where Key: Sendable, Value: Sendable {}
// @unchecked Sendable: all shared state is reached through atomics (root,
// bucket words, `next` links) and the resize Mutex; entries are immutable
// once published, and their keys and values are Sendable.

// MARK: - Internal storage

/// Low bits of a bucket word. Entries are heap objects, at least 16-byte
/// aligned, so the low four bits of their addresses are free. (Computed, so
/// inlined code sees constants rather than global addressors.)
@inlinable internal var _bucketLocked: UInt { 1 }
@inlinable internal var _bucketMoved: UInt { 2 }
@inlinable internal var _bucketPointerMask: UInt { ~UInt(15) }

/// Below this many buckets a writer checks the load factor on every insert
/// and remove; above it, every 64 changes of its CPU's counter.
@inlinable internal var _smallTable: Int { 1024 }

/// One entry: immutable except for `next`, which only writers holding the
/// bucket's lock change.
@usableFromInline
internal final class _RCUHashNode<Key: Hashable, Value> {
    @usableFromInline let hash: Int
    @usableFromInline let key: Key
    @usableFromInline let value: Value
    /// Bits of the successor (no reference is held: the table owns every
    /// entry linked in it).
    @usableFromInline let next = Atomic<UInt>(0)

    @inlinable
    init(hash: Int, key: Key, value: Value) {
        self.hash = hash
        self.key = key
        self.value = value
    }
}

/// A bucket array. Holds one reference to every entry linked in it and
/// releases them when it is freed (after a grace period, once replaced).
@usableFromInline
internal final class _RCUHashTable<Key: Hashable, Value> {
    @usableFromInline let mask: Int
    @usableFromInline let buckets: UnsafeMutablePointer<Atomic<UInt>>
    /// Bits of the table a resize moves entries to (unowned: the resizer,
    /// then the root, owns it; a reader that reaches it through this link
    /// loaded the root before it was replaced, so its read section keeps it
    /// alive. Nothing follows the link after a grace period.)
    @usableFromInline let next = Atomic<UInt>(0)

    init(bucketCount: Int) {
        mask = bucketCount - 1
        buckets = .allocate(capacity: bucketCount)
        for index in 0..<bucketCount { (buckets + index).initialize(to: Atomic(0)) }
    }

    deinit {
        for index in 0...mask {
            var bits = buckets[index].load(ordering: .relaxed) & _bucketPointerMask
            while bits != 0 {
                let node = Unmanaged<_RCUHashNode<Key, Value>>.fromOpaqueBits(bits)
                bits = node._withUnsafeGuaranteedRef { $0.next.load(ordering: .relaxed) }
                node.release()
            }
        }
        buckets.deinitialize(count: mask + 1)
        buckets.deallocate()
    }
}

/// Per-CPU signed counters on separate cache lines. Each stripe also keeps
/// the value at which its writer last asked for a load-factor check.
@usableFromInline
internal final class _StripedCounter: @unchecked Sendable {
    // @unchecked Sendable: the storage is allocated once and only accessed
    // through atomics.
    @inlinable static var stride: Int { 128 }
    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let stripes: Int

    init(stripes: Int) {
        self.stripes = max(1, stripes)
        base = .allocate(byteCount: self.stripes * Self.stride, alignment: Self.stride)
        for index in 0..<self.stripes {
            let stripe = (base + index * Self.stride).bindMemory(to: Atomic<Int>.self, capacity: 2)
            stripe.initialize(to: Atomic(0))
            (stripe + 1).initialize(to: Atomic(0))
        }
    }

    deinit { base.deallocate() }

    /// The stripe's count; the next word holds its last checked value.
    @inlinable
    func counter(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (base + index * Self.stride).assumingMemoryBound(to: Atomic<Int>.self)
    }

    /// Adds `delta` to the stripe of CPU `hint`; returns whether the caller
    /// should check the load factor: once the stripe has moved 64 away from
    /// where it was last checked (a distance, not a multiple of 64, so a
    /// writer oscillating around one value does not check on every call).
    @inlinable
    func add(_ delta: Int, hint: Int) -> Bool {
        let stripe = counter(hint % stripes)
        let value = stripe.pointee.wrappingAdd(delta, ordering: .relaxed).newValue
        let checked = (stripe + 1).pointee.load(ordering: .relaxed)
        guard abs(value &- checked) >= 64 else { return false }
        (stripe + 1).pointee.store(value, ordering: .relaxed)
        return true
    }

    func add(_ delta: Int) {
        counter(0).pointee.wrappingAdd(delta, ordering: .relaxed)
    }

    func sum() -> Int {
        var total = 0
        for index in 0..<stripes { total &+= counter(index).pointee.load(ordering: .relaxed) }
        return total
    }
}

extension Unmanaged {
    @inlinable @inline(__always)
    internal static func fromOpaqueBits(_ bits: UInt) -> Unmanaged {
        fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped)
    }

    @inlinable @inline(__always)
    internal func toOpaqueBits() -> UInt {
        UInt(bitPattern: toOpaque())
    }
}
