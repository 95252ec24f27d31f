import Synchronization
import _RCUShims

/// A point in a domain's grace-period sequence: the grace periods that must
/// complete before objects unpublished before it was taken are unreachable.
///
/// Obtained from ``RCUDomain/pollState()``; checked with ``RCUDomain/poll(_:)``
/// from any thread, or waited for with ``RCUDomain/synchronize(until:)``.
/// Comparable: a later state is never complete before an earlier one.
public struct RCUGracePeriodState: Sendable, Hashable, Comparable {
    @usableFromInline internal let _sequence: UInt64

    @usableFromInline internal init(_sequence: UInt64) { self._sequence = _sequence }

    /// Whether `lhs` completes no later than `rhs`.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs._sequence < rhs._sequence }
}

extension RCUDomain {
    /// Returns the state a grace period must reach before objects unpublished
    /// so far may be freed, and makes sure one is on its way (the domain's
    /// worker drives it).
    ///
    /// ```swift
    /// let old = current.exchange(fresh, ordering: .acquiringAndReleasing)
    /// let state = rcu.pollState()
    /// // ... later, from any thread:
    /// if rcu.poll(state) { free(old) }
    /// ```
    ///
    /// - Complexity: O(1); wakes the worker when it sleeps.
    public func pollState() -> RCUGracePeriodState {
        let state = _snapshotState()
        _reclaimer.requestGracePeriod(state, self)
        return state
    }

    /// Whether the grace period `state` names has completed. Never blocks.
    ///
    /// A `true` answer orders the caller after the grace period: what it does
    /// next happens after every reader that could see objects unpublished
    /// before `state` was taken.
    ///
    /// - Complexity: O(1): one acquire load.
    @inlinable
    public func poll(_ state: RCUGracePeriodState) -> Bool {
        _completedSequence() >= state._sequence
    }

    /// Waits until `state` has completed; returns at once if it has.
    ///
    /// - Complexity: O(1) when `state` has completed; otherwise as
    ///   ``synchronize()``, for at most the two grace periods `state` needs.
    /// - Warning: Like ``synchronize()``, never call it inside a read section
    ///   of this domain on the same thread.
    public func synchronize(until state: RCUGracePeriodState) {
        if poll(state) { return }
        _assertNotReading("synchronize(until:)")
        _noteReadDepth { _waitForSequence(state._sequence, countsCall: true) }
    }

    /// Waits for a grace period without blocking the calling thread: the task
    /// suspends and the domain's worker resumes it.
    ///
    /// Concurrent callers, blocking or async, share grace periods.
    ///
    /// - Complexity: O(1) to enqueue; the grace period itself as in ``synchronize()``.
    public func synchronize() async {
        if _skipsGracePeriods { return }
        let state = _snapshotState()
        if poll(state) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            _reclaimer.addWaiter(for: state._sequence, continuation, self)
        }
    }

    /// The target a caller needs, after ordering its unpublish before the
    /// read of the sequence ((P), see synchronize()).
    internal func _snapshotState() -> RCUGracePeriodState {
        // (P): a seq_cst fence, or in the seq_cst mode (P-rmw), a seq_cst
        // RMW of the pairing word; pairs with (A) / (A-rmw).
        if _pairsBySeqCst { rcu_shim_sc_point(_state) } else { rcu_shim_full_fence() }
        return RCUGracePeriodState(_sequence: _gracePeriodTarget(_gpSequence.load(ordering: .acquiring)))
    }

    /// Acquire load of the sequence; pairs with (E).
    @usableFromInline
    internal func _completedSequence() -> UInt64 {
        _gpSequence.load(ordering: .acquiring)
    }
}
