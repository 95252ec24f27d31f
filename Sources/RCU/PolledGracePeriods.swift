import Synchronization
import _RCUShims

/// A point in a domain's grace-period sequence: the grace periods that must
/// complete before objects unpublished before it was taken are unreachable.
///
/// Obtained from ``RCUDomain/pollState()``; checked with ``RCUDomain/poll(_:)``
/// from any thread, or waited for with ``RCUDomain/synchronize(until:)``.
///
/// A state belongs to the domain that made it: another domain's sequence
/// says nothing about this one's readers, so passing it to another domain's
/// `poll` or `synchronize(until:)` stops the process with a message naming
/// both domains, as a foreign read token does.
///
/// Comparable: within one domain a later state is never complete before an
/// earlier one. States of different domains are ordered by domain first
/// (an arbitrary but consistent order, so they can be sorted together); that
/// order says nothing about completion.
public struct RCUGracePeriodState: Sendable, Hashable, Comparable {
    @usableFromInline internal let _sequence: UInt64
    /// The `_id` of the domain that made the state.
    @usableFromInline internal let _domainID: UInt64

    @usableFromInline internal init(_sequence: UInt64, domainID: UInt64) {
        self._sequence = _sequence
        self._domainID = domainID
    }

    /// Whether `lhs` completes no later than `rhs` (same domain), or belongs
    /// to a domain created earlier.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs._domainID, lhs._sequence) < (rhs._domainID, rhs._sequence)
    }
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
    /// - Warning: `state` must come from this domain's ``pollState()``;
    ///   another domain's state stops the process with a message.
    @inlinable
    public func poll(_ state: RCUGracePeriodState) -> Bool {
        if state._domainID != _id { _foreignState(state, "poll(_:)") }
        return _completedSequence() >= state._sequence
    }

    /// Stops the process: `state` was made by another domain.
    @usableFromInline
    internal func _foreignState(_ state: RCUGracePeriodState, _ call: String) -> Never {
        fatalError("swift-rcu: \(call) of \(self) was given a grace-period state of another domain (#\(state._domainID)); a state is only meaningful to the domain whose pollState() made it")
    }

    /// Waits until `state` has completed; returns at once if it has.
    ///
    /// - Complexity: O(1) when `state` has completed; otherwise as
    ///   ``synchronize()``, for at most the two grace periods `state` needs.
    /// - Warning: Like ``synchronize()``, never call it inside a read section
    ///   of this domain on the same thread.
    ///   `state` must come from this domain's ``pollState()``; another
    ///   domain's state stops the process with a message.
    public func synchronize(until state: RCUGracePeriodState) {
        if state._domainID != _id { _foreignState(state, "synchronize(until:)") }
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
        return RCUGracePeriodState(_sequence: _gracePeriodTarget(_gpSequence.load(ordering: .acquiring)), domainID: _id)
    }

    /// Acquire load of the sequence; pairs with (E).
    @usableFromInline
    internal func _completedSequence() -> UInt64 {
        _gpSequence.load(ordering: .acquiring)
    }
}
