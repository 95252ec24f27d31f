import Synchronization

/// A read-mostly value cell: readers borrow the current value without
/// blocking and without reference counting; writers copy, modify, publish,
/// and retire the old copy. The config table that requests read while an
/// admin reloads it.
///
/// ```swift
/// let config = RCUSnapshot(Config(limits: defaults))
/// // Request path, on any thread:
/// let limit = config.read { $0.limits[tenant] ?? 100 }
/// // Reload path:
/// config.update { $0.limits[tenant] = 500 }
/// config.replace(try Config(contentsOf: path))
/// ```
///
/// Readers never see a half-updated value: each update publishes a complete
/// new copy with one atomic store.
public final class RCUSnapshot<Value: Sendable>: Sendable {
    @usableFromInline
    internal final class _Box: Sendable {
        @usableFromInline let value: Value
        init(_ value: Value) { self.value = value }
    }

    @usableFromInline internal let _current: RCUReference<_Box>
    private let _writer = _RCUMutex<Void>(())  // pthread: visible to ThreadSanitizer

    /// Creates a cell holding `value`, protected by `domain`'s read sections.
    public init(_ value: Value, domain: RCUDomain = .shared) {
        _current = RCUReference(_Box(value), domain: domain)
    }

    /// The domain whose read sections protect the values.
    public var domain: RCUDomain { _current.domain }

    /// Calls `body` with the current value, borrowed inside a read section.
    ///
    /// - Complexity: O(1): a read section and one load; no lock, no retain.
    @inlinable
    public func read<Result>(_ body: (borrowing Value) throws -> Result) rethrows -> Result {
        try _current.read { box in try body(box.unsafelyUnwrapped.value) }
    }

    /// A copy of the current value.
    ///
    /// - Complexity: O(copy of `Value`) inside one read section.
    public func snapshot() -> Value {
        read { copy $0 }
    }

    /// Copies the current value, lets `body` modify the copy, and publishes
    /// it; the old value is retired. Writers are serialised.
    ///
    /// Calling it inside ``read(_:)`` of the same cell is allowed: that reader
    /// keeps the value it borrowed. The old value is retired after the writer
    /// lock is released, so a writer that waits for the memory bound never
    /// holds up a writer inside a read section (which the grace period it
    /// waits for may be waiting for).
    ///
    /// - Complexity: O(copy of `Value`) plus `body`.
    @discardableResult
    public func update<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        let (result, old) = try _writer.withLock { _ in
            var value = _current.load().unsafelyUnwrapped.value
            let result = try body(&value)
            return (result, _current._exchangeRetiringLater(_Box(value)))
        }
        _current._retire(old)
        return result
    }

    /// Publishes `value`; the old value is retired (after the writer lock is
    /// released, as in ``update(_:)``).
    ///
    /// - Complexity: O(1): the writer lock, one allocation, one exchange and
    ///   one ``RCUDomain/retire(_:)``.
    public func replace(_ value: Value) {
        let old = _writer.withLock { _ in _current._exchangeRetiringLater(_Box(value)) }
        _current._retire(old)
    }
}
