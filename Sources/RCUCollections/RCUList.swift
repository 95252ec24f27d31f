import Synchronization

/// The error ``RCUList`` writers throw when given a node handle whose node is
/// no longer in the list.
public enum RCUListError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The node was removed (by ``RCUList/remove(_:)``,
    /// ``RCUList/replace(_:with:)``, ``RCUList/removeFirst(where:)``,
    /// ``RCUList/popFirst()`` or ``RCUList/removeAll()``), possibly by another
    /// thread, or its list was deinitialised.
    case nodeRemoved

    public var description: String {
        switch self {
        case .nodeRemoved: return "RCUList: the node handle refers to a node that was removed from its list"
        }
    }
}

/// A process-unique list number: node handles remember it, so a handle given
/// to the wrong list is caught even if that list reuses a dead list's address.
private let _rcuListIDs = Atomic<UInt64>(1)

/// One list node: 40 bytes plus the element (48 bytes of heap for an `Int`
/// element, as malloc rounds). Readers touch only `_next` and `element`;
/// `_prev` belongs to the owning list's writers.
@usableFromInline
internal final class _RCUListNode<Element>: @unchecked Sendable {
    // @unchecked Sendable: `element` is immutable; `_next` is atomic; `_prev`
    // is read and written only by writers of the owning list while they hold
    // its lock (a handle given to another list is rejected by the list id the
    // handle carries before `_prev` is touched).

    /// The successor, as unretained object bits (0 at the end). Non-owning:
    /// the list holds one +1 per linked node. A removed node keeps its value,
    /// so a reader standing on it continues to the rest of the list (as
    /// list_del_rcu leaves ->next).
    @usableFromInline internal let _next: Atomic<UInt>
    @usableFromInline internal let element: Element
    /// The predecessor's bits (0 when first), or `_removed` once the node left
    /// its list (object bits are 16-byte aligned, so 1 is never a node).
    /// Writers only.
    @exclusivity(unchecked) @usableFromInline internal var _prev: UInt

    @inlinable internal static var _removed: UInt { 1 }

    @inlinable internal init(_ element: Element, next: UInt, prev: UInt) {
        _next = Atomic(next)
        self.element = element
        _prev = prev
    }

    @inlinable internal var _isLinked: Bool { _prev != Self._removed }
    @inlinable internal func _markRemoved() { _prev = Self._removed }
}

/// Holds the +1 references of a chain detached by ``RCUList/removeAll()`` and
/// releases them, in one retire, after a grace period.
internal final class _RCUListDetachedChain<Element> {
    private let first: UInt
    init(first: UInt) { self.first = first }
    deinit { _rcuListReleaseChain(Element.self, from: first) }
}

/// Releases every node of a chain of +1 bits, following `_next` (read before
/// each release, so a node freed by its release is never read again).
internal func _rcuListReleaseChain<Element>(_: Element.Type, from first: UInt) {
    var bits = first
    while let pointer = UnsafeRawPointer(bitPattern: bits) {
        let node = Unmanaged<_RCUListNode<Element>>.fromOpaque(pointer)
        // relaxed: the chain is no longer reachable by readers or writers.
        bits = node._withUnsafeGuaranteedRef { $0._next.load(ordering: .relaxed) }
        node.release()
    }
}

/// An ordered list that readers traverse without locks while writers insert
/// and remove: liburcu's `cds_list_*_rcu` (the kernel's `list_*_rcu`) for
/// Swift.
///
/// Readers walk the list inside a read section of the list's ``domain``;
/// they take no lock, allocate nothing, and touch no reference count of the
/// list's nodes. Writers serialise on the list's own lock, publish new nodes
/// with one release store, and retire removed nodes, so an element is
/// released only after a grace period, when no reader can still see it.
///
/// ```swift
/// let routes = RCUList<Route>()
/// let primary = routes.append(Route(via: "eth0"))
/// try routes.insert(Route(via: "eth1"), after: primary)
///
/// let up = routes.read { view in view.filter(\.isUp).count }  // no lock
/// try routes.remove(primary)                                   // retired
/// ```
///
/// A traversal concurrent with writers follows the rules of the kernel's
/// `list_for_each_entry_rcu` (docs/rculist.md): it visits, in list order,
/// every element that stays in the list for the whole traversal; an element
/// inserted or removed meanwhile may or may not be visited; no element is
/// visited twice, and a visited element is never one already released.
/// The traversal is not a snapshot: it may see a later insert and miss an
/// earlier one.
///
/// Writers name positions with ``Node`` handles, which stay safe after
/// removal: a writer given a removed node throws ``RCUListError/nodeRemoved``.
///
/// - Warning: Elements are released on the domain's reclamation worker, so
///   an element's `deinit` may run on another thread.
public final class RCUList<Element: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `_head` and every node's `_next` are atomics that
    // writers store with release and readers load with acquire; every other
    // mutable field (the writer state, nodes' `_prev`) is accessed only
    // under `_writer`'s lock. Elements are Sendable and immutable once
    // published, and a node is released only after a grace period of
    // `domain` that follows its unlinking.

    /// A stable handle to one node of a list: the way writers name a
    /// position.
    ///
    /// A handle keeps its node's memory, and the element in it, alive; using
    /// it after the node was removed throws ``RCUListError/nodeRemoved``
    /// instead of touching freed memory. Handles compare by node identity.
    public struct Node: Sendable, Hashable {
        @usableFromInline internal let _node: _RCUListNode<Element>
        /// The id of the list the node was created in (kept in the handle,
        /// not in every node).
        @usableFromInline internal let _owner: UInt64

        @inlinable internal init(_node: _RCUListNode<Element>, owner: UInt64) {
            self._node = _node
            _owner = owner
        }

        /// The element in this node. Valid at any time, even after removal:
        /// the handle keeps it alive.
        ///
        /// - Complexity: O(1).
        public var element: Element { _node.element }

        @inlinable internal var _bits: UInt { UInt(bitPattern: Unmanaged.passUnretained(_node).toOpaque()) }

        public static func == (lhs: Node, rhs: Node) -> Bool { lhs._node === rhs._node }
        public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(_node)) }
    }

    /// Writer bookkeeping, under the lock.
    @usableFromInline internal struct _Writer {
        /// The last node's bits (0 when empty).
        @usableFromInline var tail: UInt = 0
        @usableFromInline var count = 0
        @inlinable init() {}
    }

    /// The domain whose read sections protect traversals.
    public let domain: RCUDomain
    /// The first node's bits (0 when empty). Written under the lock with
    /// release, read by traversals with acquire.
    @usableFromInline internal let _head = Atomic<UInt>(0)
    /// The writers' lock and the state it guards (a plain pthread mutex: see
    /// `_RCUMutex` in RCU for why not `Synchronization.Mutex`).
    @usableFromInline internal let _writer = _RCUMutex(_Writer())
    @usableFromInline internal let _id: UInt64

    /// Creates an empty list whose traversals run in read sections of
    /// `domain`.
    ///
    /// - Complexity: O(1).
    public init(domain: RCUDomain = .shared) {
        self.domain = domain
        _id = _rcuListIDs.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Creates a list holding `elements`, in order.
    ///
    /// - Complexity: O(n).
    public convenience init<S: Sequence>(_ elements: S, domain: RCUDomain = .shared) where S.Element == Element {
        self.init(domain: domain)
        for element in elements { append(element) }
    }

    /// Releases every node at once: no reader can be inside a traversal of a
    /// list nobody holds.
    deinit {
        var bits = _head.load(ordering: .relaxed)
        while let pointer = UnsafeRawPointer(bitPattern: bits) {
            let node = Unmanaged<_RCUListNode<Element>>.fromOpaque(pointer)
            bits = node._withUnsafeGuaranteedRef { node in
                node._markRemoved()
                return node._next.load(ordering: .relaxed)
            }
            node.release()
        }
    }

    // MARK: - Readers

    /// A traversal of the list, valid only inside the ``RCUList/read(_:)``
    /// closure that received it.
    ///
    /// Iterating takes no lock, allocates nothing and does not retain the
    /// list's nodes: each step is two loads (the element and the successor,
    /// acquire). Each `makeIterator()` starts from the current first node.
    ///
    /// - Warning: Do not let a view or its iterator escape the closure: after
    ///   the read section ends, the nodes they point to may be freed.
    public struct View: Sequence {
        @usableFromInline internal unowned(unsafe) let _list: RCUList<Element>

        @inlinable internal init(_list: RCUList<Element>) { self._list = _list }

        /// An iterator from the current first node.
        ///
        /// - Complexity: O(1).
        @inlinable
        public func makeIterator() -> Iterator {
            // acquire: pairs with the release stores that publish a node into
            // `_head` (append to an empty list, prepend, insert before the
            // first, replace of the first, removal of the first).
            Iterator(_current: _list._head.load(ordering: .acquiring))
        }

        /// Whether the list has no element now.
        ///
        /// - Complexity: O(1).
        @inlinable
        public var isEmpty: Bool { _list._head.load(ordering: .relaxed) == 0 }  // relaxed: nothing dereferenced
    }

    /// Steps through the nodes of a ``View``.
    public struct Iterator: IteratorProtocol {
        /// The next node to visit, as unretained bits (0 at the end).
        @usableFromInline internal var _current: UInt

        @inlinable internal init(_current: UInt) { self._current = _current }

        /// The next element, or `nil` at the end of the list.
        ///
        /// - Complexity: O(1): two loads, no retain or release of the node.
        @inlinable
        public mutating func next() -> Element? {
            guard let pointer = UnsafeRawPointer(bitPattern: _current) else { return nil }
            // The node is alive: it was reachable inside this read section, so
            // the grace period that precedes its release has not ended.
            return Unmanaged<_RCUListNode<Element>>.fromOpaque(pointer)._withUnsafeGuaranteedRef { node in
                // acquire: pairs with the release store that published the
                // successor into this node's `_next` (insert, append, removal
                // or replace of the successor).
                _current = node._next.load(ordering: .acquiring)
                return node.element
            }
        }
    }

    /// Runs `body` with a traversable view of the list, inside one read
    /// section of ``domain``.
    ///
    /// ```swift
    /// let total = list.read { view in view.reduce(0, +) }
    /// ```
    ///
    /// A traversal inside `body` sees every element that stays in the list
    /// from its start to its end, in order, and never a released element;
    /// elements inserted or removed meanwhile may or may not appear.
    ///
    /// - Complexity: O(1) to enter and leave the section; iterating is O(n)
    ///   with no lock, allocation or reference counting of nodes.
    /// - Warning: Do not let the view, an iterator of it, or the section
    ///   outlive `body`. While `body` runs, no grace period of ``domain``
    ///   can end, so keep it short, and do not call ``RCUDomain/synchronize()``
    ///   or ``RCUDomain/barrier()`` of that domain inside it.
    @inlinable
    public func read<Result, Failure: Error>(_ body: (View) throws(Failure) -> Result) throws(Failure) -> Result {
        try domain.read { () throws(Failure) -> Result in try body(View(_list: self)) }
    }

    /// The elements, in order, copied inside one read section.
    ///
    /// - Complexity: O(n), one array allocation.
    public func snapshot() -> [Element] {
        read { Array($0) }
    }

    /// Whether the list is empty now.
    ///
    /// - Complexity: O(1), one load.
    public var isEmpty: Bool { _head.load(ordering: .relaxed) == 0 }  // relaxed: nothing dereferenced

    /// The number of elements, read under the writers' lock.
    ///
    /// - Complexity: O(1).
    /// - Warning: Another writer may change it right after; a reader that
    ///   needs the size of what it traverses counts while traversing.
    public var count: Int { _writer.withLock { $0.count } }

    // MARK: - Writers

    /// Appends `element` at the end of the list.
    ///
    /// - Returns: a handle to the new node (discardable).
    /// - Complexity: O(1): one allocation, the writers' lock, one release
    ///   store.
    @discardableResult
    @inlinable
    public func append(_ element: Element) -> Node {
        _writer.withLock { writer in _insert(element, afterBits: writer.tail, &writer) }
    }

    /// Inserts `element` at the front of the list.
    ///
    /// - Returns: a handle to the new node (discardable).
    /// - Complexity: O(1).
    @discardableResult
    @inlinable
    public func prepend(_ element: Element) -> Node {
        _writer.withLock { writer in _insert(element, afterBits: 0, &writer) }
    }

    /// Inserts `element` right after `node`.
    ///
    /// - Returns: a handle to the new node (discardable).
    /// - Throws: ``RCUListError/nodeRemoved`` if `node` is no longer in the
    ///   list; nothing is inserted then.
    /// - Complexity: O(1).
    /// - Warning: A handle of another list stops the process with a message.
    @discardableResult
    @inlinable
    public func insert(_ element: Element, after node: Node) throws(RCUListError) -> Node {
        try _writer.withLock { (writer) throws(RCUListError) -> Node in
            try _check(node)
            return _insert(element, afterBits: node._bits, &writer)
        }
    }

    /// Inserts `element` right before `node`.
    ///
    /// - Returns: a handle to the new node (discardable).
    /// - Throws: ``RCUListError/nodeRemoved`` if `node` is no longer in the
    ///   list; nothing is inserted then.
    /// - Complexity: O(1).
    /// - Warning: A handle of another list stops the process with a message.
    @discardableResult
    @inlinable
    public func insert(_ element: Element, before node: Node) throws(RCUListError) -> Node {
        try _writer.withLock { (writer) throws(RCUListError) -> Node in
            try _check(node)
            return _insert(element, afterBits: node._node._prev, &writer)
        }
    }

    /// Removes `node` from the list and retires it: its element is released
    /// after a grace period (or when the last handle to it goes, if later).
    ///
    /// Readers already standing on the node continue past it to the rest of
    /// the list.
    ///
    /// - Returns: the removed element (discardable).
    /// - Throws: ``RCUListError/nodeRemoved`` if `node` was already removed.
    /// - Complexity: O(1): the writers' lock, one release store and one
    ///   ``RCUDomain/retire(_:)``.
    /// - Warning: A handle of another list stops the process with a message.
    @discardableResult
    @inlinable
    public func remove(_ node: Node) throws(RCUListError) -> Element {
        let removed = try _writer.withLock { (writer) throws(RCUListError) -> _RCUListNode<Element> in
            try _check(node)
            return _unlink(node._bits, &writer)
        }
        let element = removed.element
        domain.retire(removed)
        return element
    }

    /// Replaces the node `node` by a new node holding `element`, in one
    /// release store: a concurrent traversal sees either the old element or
    /// the new one, never both and never neither. The old node is retired.
    ///
    /// - Returns: a handle to the new node (discardable).
    /// - Throws: ``RCUListError/nodeRemoved`` if `node` is no longer in the
    ///   list; nothing changes then.
    /// - Complexity: O(1).
    /// - Warning: A handle of another list stops the process with a message.
    @discardableResult
    @inlinable
    public func replace(_ node: Node, with element: Element) throws(RCUListError) -> Node {
        let (fresh, old) = try _writer.withLock { (writer) throws(RCUListError) -> (Node, _RCUListNode<Element>) in
            try _check(node)
            let oldBits = node._bits
            let old = node._node
            let predecessor = old._prev
            // relaxed: writers are ordered by the lock.
            let successor = old._next.load(ordering: .relaxed)
            let replacement = _RCUListNode(element, next: successor, prev: predecessor)
            let bits = UInt(bitPattern: Unmanaged.passRetained(replacement).toOpaque())  // the list's +1
            if successor != 0 { Self._node(successor)._prev = bits } else { writer.tail = bits }
            // release: publishes the replacement's fields; pairs with the
            // acquire loads in View.makeIterator() and Iterator.next().
            _storeNext(of: predecessor, bits)
            old._markRemoved()
            // Takes over the list's +1 on the old node, for the retire.
            let retired = Unmanaged<_RCUListNode<Element>>.fromOpaque(UnsafeRawPointer(bitPattern: oldBits)!)
                .takeRetainedValue()
            return (Node(_node: replacement, owner: _id), retired)
        }
        domain.retire(old)
        return fresh
    }

    /// Removes the first element that satisfies `predicate`, and retires its
    /// node.
    ///
    /// - Returns: the removed element, or `nil` if none matched.
    /// - Complexity: O(n) under the writers' lock.
    /// - Warning: `predicate` runs under the writers' lock: it must not call
    ///   a writer of this list (that would deadlock).
    @discardableResult
    public func removeFirst<Failure: Error>(
        where predicate: (Element) throws(Failure) -> Bool
    ) throws(Failure) -> Element? {
        let removed = try _writer.withLock { (writer) throws(Failure) -> _RCUListNode<Element>? in
            // relaxed: writers are ordered by the lock.
            var bits = _head.load(ordering: .relaxed)
            while bits != 0 {
                let node = Self._node(bits)
                if try predicate(node.element) { return _unlink(bits, &writer) }
                bits = node._next.load(ordering: .relaxed)
            }
            return nil
        }
        guard let removed else { return nil }
        let element = removed.element
        domain.retire(removed)
        return element
    }

    /// Removes the first element, if any, and retires its node.
    ///
    /// - Complexity: O(1).
    @discardableResult
    @inlinable
    public func popFirst() -> Element? {
        let removed = _writer.withLock { writer -> _RCUListNode<Element>? in
            let first = _head.load(ordering: .relaxed)  // relaxed: writers are ordered by the lock
            return first == 0 ? nil : _unlink(first, &writer)
        }
        guard let removed else { return nil }
        let element = removed.element
        domain.retire(removed)
        return element
    }

    /// Removes every element. The detached nodes are retired together: their
    /// elements are released after one grace period, on the domain's worker.
    ///
    /// A traversal already running finishes the old nodes, in order; one that
    /// starts afterwards sees only what is inserted later.
    ///
    /// - Complexity: O(n) under the writers' lock (to mark the handles
    ///   removed), one ``RCUDomain/retire(_:)``.
    public func removeAll() {
        let first = _writer.withLock { writer -> UInt in
            let first = _head.load(ordering: .relaxed)  // relaxed: writers are ordered by the lock
            guard first != 0 else { return 0 }
            // relaxed: storing 0 publishes nothing; a reader that loads it
            // dereferences nothing.
            _head.store(0, ordering: .relaxed)
            var bits = first
            while bits != 0 {
                let node = Self._node(bits)
                node._markRemoved()
                bits = node._next.load(ordering: .relaxed)
            }
            writer = _Writer()
            return first
        }
        if first != 0 { domain.retire(_RCUListDetachedChain<Element>(first: first)) }
    }

    /// The first node whose element satisfies `predicate`: a handle for the
    /// writers that take one.
    ///
    /// - Complexity: O(n) under the writers' lock.
    /// - Warning: `predicate` runs under the writers' lock: it must not call
    ///   a writer of this list.
    public func firstNode<Failure: Error>(
        where predicate: (Element) throws(Failure) -> Bool
    ) throws(Failure) -> Node? {
        try _writer.withLock { (_) throws(Failure) -> Node? in
            var bits = _head.load(ordering: .relaxed)  // relaxed: writers are ordered by the lock
            while bits != 0 {
                let node = Self._node(bits)
                if try predicate(node.element) { return Node(_node: node, owner: _id) }
                bits = node._next.load(ordering: .relaxed)
            }
            return nil
        }
    }

    /// Whether `node` is still in this list.
    ///
    /// - Complexity: O(1), under the writers' lock.
    /// - Warning: A handle of another list stops the process with a message.
    public func contains(_ node: Node) -> Bool {
        _writer.withLock { _ in (try? _check(node)) != nil }
    }

    // MARK: - Writer internals (under the lock)

    /// The node behind bits the list holds (a strong reference for the
    /// writer's use; the list keeps its own).
    @inlinable @inline(__always)
    internal static func _node(_ bits: UInt) -> _RCUListNode<Element> {
        Unmanaged<_RCUListNode<Element>>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).takeUnretainedValue()
    }

    /// Stores `bits` as the successor of `predecessor` (0: the head).
    @inlinable @inline(__always)
    internal func _storeNext(of predecessor: UInt, _ bits: UInt) {
        // release: publishes the fields of the node `bits` names (initialised
        // before this store, or published by an earlier release store that
        // this one must carry on in the C11 model); pairs with the acquire
        // loads in View.makeIterator() and Iterator.next().
        if predecessor == 0 {
            _head.store(bits, ordering: .releasing)
        } else {
            Self._node(predecessor)._next.store(bits, ordering: .releasing)
        }
    }

    /// Rejects a handle that is not in this list.
    @inlinable
    internal func _check(_ node: Node) throws(RCUListError) {
        if _slowPath(node._owner != _id) { _foreignNode() }
        guard node._node._isLinked else { throw .nodeRemoved }
    }

    @usableFromInline
    internal func _foreignNode() -> Never {
        fatalError("swift-rcu: RCUList was given a node handle of another RCUList")
    }

    /// Links a new node holding `element` after `predecessor` (0: at the
    /// front).
    @inlinable
    internal func _insert(_ element: Element, afterBits predecessor: UInt, _ writer: inout _Writer) -> Node {
        // relaxed: writers are ordered by the lock.
        let successor = predecessor == 0
            ? _head.load(ordering: .relaxed)
            : Self._node(predecessor)._next.load(ordering: .relaxed)
        let node = _RCUListNode(element, next: successor, prev: predecessor)
        let bits = UInt(bitPattern: Unmanaged.passRetained(node).toOpaque())  // the list's +1
        if successor != 0 { Self._node(successor)._prev = bits } else { writer.tail = bits }
        _storeNext(of: predecessor, bits)  // release: see _storeNext
        writer.count += 1
        return Node(_node: node, owner: _id)
    }

    /// Unlinks the node `bits` and returns it, holding the list's former +1
    /// (for the caller to retire). Its `_next` is left as it was, so readers
    /// standing on it continue.
    @inlinable
    internal func _unlink(_ bits: UInt, _ writer: inout _Writer) -> _RCUListNode<Element> {
        let node = Unmanaged<_RCUListNode<Element>>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)
            .takeRetainedValue()
        let predecessor = node._prev
        let successor = node._next.load(ordering: .relaxed)  // relaxed: writers are ordered by the lock
        _storeNext(of: predecessor, successor)  // release: see _storeNext
        if successor != 0 { Self._node(successor)._prev = predecessor } else { writer.tail = predecessor }
        node._markRemoved()
        writer.count -= 1
        return node
    }
}

// A view and its iterator point into nodes that stay valid only inside the
// read section that produced them: they must not cross threads.
@available(*, unavailable)
extension RCUList.View: Sendable {}
@available(*, unavailable)
extension RCUList.Iterator: Sendable {}

