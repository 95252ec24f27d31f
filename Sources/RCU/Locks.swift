#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import _RCUShims

/// A default (non-PI) pthread mutex and the state it guards: the lock of
/// grace-period leaders, of statistics, and of RCUCollections' writers.
///
/// Not `Synchronization.Mutex`: on Linux that is a priority-inheritance
/// futex keyed by the owner's thread id, and an uncontended lock+unlock pair
/// measured 9.8 ns here against 4.0 ns for glibc's default mutex (1M pairs,
/// one thread). Both sleep on a futex when contended.
///
/// Public only so RCUCollections' inlinable writers can use it; not part of
/// the library's API.
public final class _RCUMutex<State>: @unchecked Sendable {
    // @unchecked Sendable: `_state` points to memory that is only accessed
    // between lock and unlock.
    @usableFromInline internal let _mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// The guarded state, out of line. As a stored `var` of the class, an
    /// empty `State` (Void) has the object's own address, so under
    /// ThreadSanitizer the instrumented inout access to it collided with
    /// unlocked reads of the object header by other threads: a false race
    /// report. Behind a pointer the access is plain memory, locked.
    @usableFromInline internal let _state: UnsafeMutablePointer<State>

    /// A mutex guarding `state`.
    public init(_ state: State) {
        _state = .allocate(capacity: 1)
        _state.initialize(to: state)
        _mutex = .allocate(capacity: 1)
        _mutex.initialize(to: pthread_mutex_t())
        let status = pthread_mutex_init(_mutex, nil)
        if status != 0 { fatalError("swift-rcu: pthread_mutex_init failed (\(status))") }
    }

    deinit {
        pthread_mutex_destroy(_mutex)
        _mutex.deinitialize(count: 1)
        _mutex.deallocate()
        _state.deinitialize(count: 1)
        _state.deallocate()
    }

    /// Runs `body` with exclusive access to the state.
    ///
    /// - Warning: Not reentrant: calling it again from `body` deadlocks.
    @inlinable
    public func withLock<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(_mutex)
        defer { pthread_mutex_unlock(_mutex) }
        return try body(&_state.pointee)
    }

    /// For the fork handlers: hold the lock across fork() and release it in
    /// both processes (a default mutex may be unlocked by the forking thread
    /// in the child, whose thread id differs).
    internal func _lockForFork() { pthread_mutex_lock(_mutex) }
    internal func _unlockAfterFork() { pthread_mutex_unlock(_mutex) }
    /// For the fork handlers: take the lock, waiting at most `nanoseconds`;
    /// returns whether it was taken.
    internal func _lockForFork(waitingAtMost nanoseconds: UInt64) -> Bool {
        // On CLOCK_MONOTONIC (rcu_shim_mutex_lock_within): a step of the
        // wall clock neither ends the wait early nor stretches it.
        let status = rcu_shim_mutex_lock_within(_mutex, Int64(min(nanoseconds, UInt64(Int64.max))))
        if status == 0 { return true }
        if status == ETIMEDOUT { return false }
        fatalError("swift-rcu: locking a grace-period lock for fork() failed (errno \(status))")
    }
    /// For the fork handlers: take the lock if it is free now.
    internal func _tryLockForFork() -> Bool { pthread_mutex_trylock(_mutex) == 0 }

    /// Runs `body` if the lock is free now; returns nil otherwise.
    @inlinable
    public func withLockIfAvailable<Result, Failure: Error>(_ body: (inout State) throws(Failure) -> Result) throws(Failure) -> Result? {
        guard pthread_mutex_trylock(_mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(_mutex) }
        return try body(&_state.pointee)
    }
}
