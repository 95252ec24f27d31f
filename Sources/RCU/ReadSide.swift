import _RCUShims

/// Proof that a read section of one ``RCUDomain`` is open. Returned by
/// ``RCUDomain/lock()`` and consumed by ``RCUDomain/unlock(_:)``.
///
/// The token carries the period index the section counted itself under (as
/// the address of that index's counters), so its unlock can run on any
/// thread, on any CPU: hand it to another thread,
/// or keep it across an `await`. It is `~Copyable`, so a section cannot be
/// ended twice.
///
/// - Warning: Dropping a token without unlocking it would leave the section open
///   forever and hang every later grace period; the token's deinitialiser
///   stops the process with a message instead.
@frozen
public struct RCUReadToken: ~Copyable, @unchecked Sendable {
    // @unchecked Sendable: the pointer and the address only name the owning
    // domain's counter block (the pointer is compared in unlock; the address
    // is where the unlock's per-CPU counter is found, written only by the
    // rseq and atomic helpers of _RCUShims), and ending a section on another
    // thread is what the token is for.
    @usableFromInline internal let _state: UnsafeMutablePointer<rcu_shim_state>
    /// Slot 0's lock counter of the section's index (`header.active` as the
    /// lock read it): the unlock commits at this + 128 x cpu + 16.
    @usableFromInline internal let _counters: UInt
    #if DEBUG
    @usableFromInline internal let _debugCell: Unmanaged<_ReadDepthCell>?
    #endif

    #if DEBUG
    @inlinable internal init(_state: UnsafeMutablePointer<rcu_shim_state>, _counters: UInt, _debugCell: Unmanaged<_ReadDepthCell>?) {
        self._state = _state
        self._counters = _counters
        self._debugCell = _debugCell
    }
    #else
    @inlinable internal init(_state: UnsafeMutablePointer<rcu_shim_state>, _counters: UInt) {
        self._state = _state
        self._counters = _counters
    }
    #endif

    /// Ends the token's life without running its deinitialiser.
    @inlinable internal consuming func _retire() {
        discard self
    }

    deinit {
        _reportDroppedToken()
    }
}

/// Stops the process: a token was dropped without unlock. (Not declared
/// `Never` so the deinitialiser keeps a normal exit edge.)
internal func _reportDroppedToken() {
    fatalError("swift-rcu: an RCUReadToken was dropped without unlock(_:): its read section would stay open and every later synchronize() would hang")
}

extension RCUDomain {
    /// Maximum rseq attempts before a read-side operation takes the atomic
    /// path. An attempt fails only when the thread is preempted, migrated,
    /// signalled or IPIed inside a ~10-instruction window, so retrying is
    /// nearly always enough; the bound keeps valgrind, gdb single-stepping and
    /// pathological signal storms making progress.
    internal static let _rseqAttempts = 8

    // MARK: - Closure-scoped sections

    /// Runs `body` inside a read section and returns its result.
    ///
    /// Objects published through this domain that `body` reaches stay valid
    /// until it returns: no grace period that began after the section did can
    /// end before it. Sections nest, to any depth, within and across domains.
    ///
    /// ```swift
    /// let port = rcu.read { config.current.port }
    /// ```
    ///
    /// - Complexity: O(1); in the `rseq+membarrier` mode two plain increments
    ///   and two compiler barriers, with no atomic instruction, fence,
    ///   allocation, lock or reference counting.
    /// - Warning: Do not call ``synchronize()`` (on this domain) inside `body`:
    ///   it would wait for this very section. Debug builds stop with a message.
    @inlinable @inline(__always)
    public func read<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        let token = lock()
        // The thread's read {} depth: retire never waits for memory inside a
        // section (it would wait for itself), fork() refuses to run inside
        // one, and stall reports count waits made inside one. Saved and
        // restored with plain stores, so no read-modify-write chains one
        // section to the next, and both sit between the two asm blocks, so
        // the optimiser drops them when the body cannot read the depth (a
        // restore after unlock's compiler barrier would force the first
        // store). docs/benchmarks.md, "read {}'s depth", measures the cost.
        let depth = rcu_shim_depth()
        rcu_shim_set_depth(depth &+ 1)
        do {
            let result = try body()
            rcu_shim_set_depth(depth)
            unlock(token)
            return result
        } catch {
            rcu_shim_set_depth(depth)
            unlock(token)
            throw error
        }
    }

    /// Runs an asynchronous `body` inside a read section that may span
    /// suspension points.
    ///
    /// The section stays open across every `await` in `body`, including
    /// resumptions on other threads: the unlock counts on whichever CPU the
    /// task finishes on. While it is open, no grace period of this domain can
    /// end, so keep such sections short; use an independent domain for
    /// long-lived ones.
    ///
    /// ```swift
    /// let user = try await rcu.read { try await cache.lookup(id) }
    /// ```
    ///
    /// - Complexity: O(1) plus `body`.
    /// - Warning: Awaiting `synchronize()` of the same domain inside
    ///   `body` never completes. Debug builds cannot attribute an async
    ///   section to a thread, so they do not catch this one.
    @inlinable
    public func read<Result, Failure: Error>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        let token = _lockUntracked()
        do {
            let result = try await body()
            unlock(token)
            return result
        } catch {
            unlock(token)
            throw error
        }
    }

    // MARK: - Token sections

    /// Enters a read section and returns the token that ends it.
    ///
    /// Pair every `lock()` with exactly one ``unlock(_:)`` of this domain; the
    /// unlock may run on another thread. Prefer `read(_:)` where the
    /// section has a lexical scope.
    ///
    /// - Complexity: O(1); one plain increment in a restartable sequence in
    ///   the `rseq+membarrier` mode.
    @inlinable @inline(__always)
    public func lock() -> RCUReadToken {
        let counters = _enter()
        #if DEBUG
        return RCUReadToken(_state: _state, _counters: counters, _debugCell: _debugEnter())
        #else
        return RCUReadToken(_state: _state, _counters: counters)
        #endif
    }

    /// A token whose section is not attributed to the current thread by the
    /// debug bookkeeping (async sections, which may end on another thread).
    @inlinable @inline(__always)
    internal func _lockUntracked() -> RCUReadToken {
        let counters = _enter()
        #if DEBUG
        return RCUReadToken(_state: _state, _counters: counters, _debugCell: nil)
        #else
        return RCUReadToken(_state: _state, _counters: counters)
        #endif
    }

    /// Ends the read section `token` stands for. May run on any thread.
    ///
    /// - Complexity: O(1); one plain increment in a restartable sequence in
    ///   the `rseq+membarrier` mode.
    /// - Warning: A token from another domain stops the process with a message:
    ///   counting it here would corrupt both domains' grace periods.
    @inlinable @inline(__always)
    public func unlock(_ token: consuming RCUReadToken) {
        if _slowPath(token._state != _state) {
            _foreignToken(token._state)
        }
        let counters = token._counters
        #if DEBUG
        if let cell = token._debugCell { _debugExit(cell) }
        #endif
        token._retire()
        _exit(counters)
    }

    // MARK: - Counting

    /// Counts a lock for the current period; returns the counter address
    /// of the index counted (see ``RCUReadToken``).
    ///
    /// One path for every mode: outside rseq+membarrier the header's fast
    /// bound is 0 and the offset names a stand-in rseq area, so the inlined
    /// sequence fails at its bound check and the slow path runs. No mode
    /// flag is tested, and the loop holds only the state and the offset.
    @inlinable @inline(__always)
    internal func _enter() -> UInt {
        let counters = rcu_shim_rseq_lock(_state, _fastOffset)  // its compiler barrier is (B)
        if _fastPath(counters != 0) { return counters }
        return _enterSlow()
    }

    /// Counts an unlock for the section that `counters` came from.
    @inlinable @inline(__always)
    internal func _exit(_ counters: UInt) {
        let state = _state
        if _fastPath(rcu_shim_rseq_unlock(state, _fastOffset, counters) == 0) {
            // (W-reader): the asm's compiler barrier orders this load after the
            // unlock increment; pairs with (W) in _waitUntilDrained. The
            // same barrier before the increment is (D).
            if _slowPath(rcu_shim_waiters(state) != 0) { rcu_shim_wake_updater(state) }
            return
        }
        _exitSlow(counters)
    }

    @usableFromInline @inline(never)
    internal func _enterSlow() -> UInt {
        _countFastPathMiss()
        if _pairsBySeqCst {
            // atomic+seqcst: the atomic path's two-phase argument holds as is
            // (the period is loaded outside any sequence).
            let counters = rcu_shim_load_active(_state)
            rcu_shim_sc_lock(_state, rcu_shim_slot_hint(_state), rcu_shim_index_of(_state, counters))
            // (B-rmw): seq_cst RMW of the pairing word; pairs with the
            // updater's (A-rmw), (C-rmw), (W-rmw) and (P-rmw) on that word.
            rcu_shim_sc_point(_state)
            return counters
        }
        var counters: UInt = 0
        if _usesRseq {
            for _ in 0..<Self._rseqAttempts {
                counters = rcu_shim_rseq_lock_slow(_state, Int64(_rseqOffset))
                if counters != 0 { break }
            }
        }
        if counters == 0 {
            // The atomic path loads the period outside any restartable
            // sequence, so this reader may stall here and count under an index
            // the updater already flipped away from; synchronize()'s first
            // phase waits for exactly such readers (docs/design.md, "Two phases").
            counters = rcu_shim_load_active(_state)
            rcu_shim_atomic_lock(_state, rcu_shim_slot_hint(_state), rcu_shim_index_of(_state, counters))
        }
        if _usesFences {
            // (B-fence) pairs with (A) and (C) in synchronize(): store
            // buffering with fences on both sides.
            rcu_shim_full_fence()
        }
        return counters
    }

    @usableFromInline @inline(never)
    internal func _exitSlow(_ counters: UInt) {
        _countFastPathMiss()
        let index = rcu_shim_index_of(_state, counters)
        if _pairsBySeqCst {
            // (D-rmw): the seq_cst (so release) unlock increment; pairs with
            // the scans' acquire loads. No RMW of the pairing word here, so
            // as in the fence modes a wake-up can be missed and the
            // updater's 1 ms timeout bounds the cost.
            rcu_shim_sc_unlock(_state, rcu_shim_slot_hint(_state), index)
            if rcu_shim_waiters(_state) != 0 { rcu_shim_wake_updater(_state) }
            return
        }
        if _usesFences {
            // (D-fence): the section's accesses complete before the unlock
            // count; pairs with the scan's acquire loads and fence (S).
            rcu_shim_full_fence()
        }
        var counted = false
        if _usesRseq {
            for _ in 0..<Self._rseqAttempts where rcu_shim_rseq_unlock_slow(_state, Int64(_rseqOffset), counters) == 0 {
                counted = true
                break
            }
        }
        if !counted {
            rcu_shim_atomic_unlock(_state, rcu_shim_slot_hint(_state), index)
        }
        if rcu_shim_waiters(_state) != 0 { rcu_shim_wake_updater(_state) }
    }

    /// A racy load and store, not an RMW: a locked add here would be a full
    /// fence on the slow path, hiding orderings a test should see, and a
    /// shared line every slow path contends on. Lost counts are fine: tests
    /// only ask whether aborts happen.
    @inline(__always)
    internal func _countFastPathMiss() {
        guard _inlineFastPath else { return }
        _fastPathMisses.store(_fastPathMisses.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    @usableFromInline @inline(never)
    internal func _foreignToken(_ other: UnsafeMutablePointer<rcu_shim_state>) -> Never {
        fatalError("swift-rcu: unlock(_:) on \(self) received a token locked on another RCUDomain; nothing was counted")
    }
}
