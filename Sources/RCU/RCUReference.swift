import Synchronization
import _RCUShims

/// An atomic strong reference whose readers take no reference count: the
/// atomic reference the standard library leaves out (SE-0410 defers "the
/// problem of memory reclamation"; RCU is that solution).
///
/// Readers borrow the current object inside a read section with ``read(_:)``:
/// one load, no retain, no release. ``load()`` returns a strong reference that
/// may escape. Writers ``store(_:)``, ``exchange(_:)`` or
/// ``compareExchange(expected:desired:)``; the reference they replace is
/// retired, so it is released only after every reader that could borrow it
/// has left its section.
///
/// ```swift
/// let current = RCUReference(Route(table: initial))
/// let hop = current.read { $0?.table.nextHop(for: address) }   // no ARC traffic
/// current.store(Route(table: rebuilt))                           // old one retired
/// ```
public final class RCUReference<Object: AnyObject>: @unchecked Sendable {
    // @unchecked Sendable: the only mutable state is the atomic word, which
    // holds a +1 reference (or 0). Readers dereference it only inside a read
    // section of `domain`, and replaced references are released only after a
    // grace period of that domain. `Object` itself must be safe to share if
    // it is used from several threads; that is the caller's contract, as with
    // any reference handed between threads.

    /// The domain whose read sections protect the borrowed objects.
    public let domain: RCUDomain
    @usableFromInline internal let _bits: Atomic<UInt>

    /// Creates a reference holding `object`.
    public init(_ object: Object?, domain: RCUDomain = .shared) {
        self.domain = domain
        _bits = Atomic(Self._retainedBits(object))
    }

    deinit {
        // Nobody can be reading: a reader holds a reference to `self`.
        if let object = Self._unmanaged(_bits.load(ordering: .acquiring)) { object.release() }
    }

    /// Calls `body` with the current object, borrowed inside a read section:
    /// no retain or release on the way.
    ///
    /// - Complexity: O(1): a read section and one acquire load.
    /// - Warning: Do not let the borrowed object escape `body` other than by
    ///   storing a strong reference to it (which ARC then keeps alive).
    @inlinable
    public func read<Result>(_ body: (Object?) throws -> Result) rethrows -> Result {
        try domain.read {
            guard let object = Self._unmanaged(_bits.load(ordering: .acquiring)) else { return try body(nil) }
            return try object._withUnsafeGuaranteedRef { try body($0) }
        }
    }

    /// A strong reference to the current object; it stays valid after the
    /// call, whatever writers do next.
    ///
    /// - Complexity: O(1): a read section, a load and one retain.
    public func load() -> Object? {
        domain.read { Self._unmanaged(_bits.load(ordering: .acquiring))?.takeUnretainedValue() }
    }

    /// Publishes `object`; the replaced reference is retired.
    ///
    /// - Complexity: O(1): one atomic exchange and one ``RCUDomain/retire(_:)``.
    public func store(_ object: Object?) {
        let old = _bits.exchange(Self._retainedBits(object), ordering: .acquiringAndReleasing)
        _retire(old)
    }

    /// Publishes `object` and returns the reference it replaced (as a new
    /// strong reference; the published one is retired, so readers that still
    /// borrow it stay safe).
    ///
    /// - Complexity: O(1): one atomic exchange, one retain and one
    ///   ``RCUDomain/retire(_:)``.
    public func exchange(_ object: Object?) -> Object? {
        let old = _bits.exchange(Self._retainedBits(object), ordering: .acquiringAndReleasing)
        let previous = Self._unmanaged(old)?.takeUnretainedValue()
        _retire(old)
        return previous
    }

    /// Publishes `desired` if the current object is `expected` (by identity).
    ///
    /// - Returns: whether it was exchanged, and the object found (a strong
    ///   reference; the expected one when exchanged).
    /// - Complexity: O(1): a read section, one compare-and-exchange, and a
    ///   ``RCUDomain/retire(_:)`` when exchanged.
    public func compareExchange(expected: Object?, desired: Object?) -> (exchanged: Bool, original: Object?) {
        let expectedBits = expected.map { UInt(bitPattern: Unmanaged.passUnretained($0).toOpaque()) } ?? 0
        let desiredBits = Self._retainedBits(desired)
        // Inside a read section, so the object found on failure cannot be
        // freed before it is retained. The retire comes after the section:
        // inside it the retire would skip the memory bound's wait (a retire
        // never waits inside read {}), so these exchanges escaped the bound.
        let (exchanged, original, found) = domain.read { () -> (Bool, UInt, Object?) in
            let (exchanged, original) = _bits.compareExchange(
                expected: expectedBits, desired: desiredBits, ordering: .acquiringAndReleasing)
            return (exchanged, original, Self._unmanaged(original)?.takeUnretainedValue())
        }
        if exchanged {
            _retire(original)
        } else if let unused = Self._unmanaged(desiredBits) {
            unused.release()
        }
        return (exchanged, found)
    }

    /// Publishes `object` and returns the replaced word (+1), for a caller
    /// that retires it later with `_retire`, outside its own locks.
    internal func _exchangeRetiringLater(_ object: Object?) -> UInt {
        _bits.exchange(Self._retainedBits(object), ordering: .acquiringAndReleasing)
    }

    internal func _retire(_ bits: UInt) {
        guard bits != 0 else { return }
        domain._enqueueRetained(bits)  // hands over the +1 the word held
    }

    @usableFromInline
    internal static func _unmanaged(_ bits: UInt) -> Unmanaged<Object>? {
        guard let pointer = UnsafeRawPointer(bitPattern: bits) else { return nil }
        return Unmanaged<Object>.fromOpaque(pointer)
    }

    private static func _retainedBits(_ object: Object?) -> UInt {
        guard let object else { return 0 }
        return UInt(bitPattern: Unmanaged.passRetained(object).toOpaque())
    }
}
