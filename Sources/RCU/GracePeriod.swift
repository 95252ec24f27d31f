import Synchronization
import _RCUShims

/// Counters kept under the grace-period lock.
internal struct _GracePeriodCounters {
    /// Grace periods that found every count balanced after (A) and returned.
    var fastPaths: UInt64 = 0
    /// Grace periods that flipped the period and waited in two phases.
    var flips: UInt64 = 0
    /// Scans that found an index still in use.
    var busyScans: UInt64 = 0
}

extension RCUDomain {
    /// Waits until every read section of this domain that was open when the
    /// call began has ended.
    ///
    /// Afterwards, objects that were unpublished before the call are
    /// unreachable by every reader, so they may be freed or reused. Concurrent
    /// callers share grace periods: however many threads call at once, the
    /// waits are covered by at most two grace periods after the first.
    ///
    /// The wait spins for a few microseconds, then yields, then sleeps with
    /// exponential backoff capped at 1 ms, so a long reader costs the
    /// updater little CPU and readers pay nothing (see docs/design.md,
    /// "Waiting").
    ///
    /// - Complexity: O(possible CPUs) per scan. With no reader in a section
    ///   it costs one `membarrier(2)` and one scan; otherwise three scans and
    ///   two `membarrier(2)` calls plus the wait for the readers.
    /// - Warning: Never call it inside a read section of the same domain on
    ///   the same thread: it would wait for itself. Debug builds stop with a
    ///   message; release builds hang.
    public func synchronize() {
        _assertNotReading("synchronize()")
        if _skipsGracePeriods { return }
        // (P) orders the caller's earlier stores (the unpublish) before the
        // sequence read below; pairs with (A), issued after the leader
        // marks a grace period started. Without it a caller could adopt a
        // grace period whose (A) ran before its unpublish was visible.
        rcu_shim_full_fence()
        let target = _gracePeriodTarget(_gpSequence.load(ordering: .acquiring))
        _gpLock.withLock { counters in
            // The sequence only advances under this lock, so a follower that
            // waited here while a leader ran finds its target already reached.
            while _gpSequence.load(ordering: .relaxed) < target {
                _runGracePeriod(&counters)
            }
        }
    }

    /// Number of grace periods this domain has completed.
    public var gracePeriodsCompleted: UInt64 {
        _gpSequence.load(ordering: .relaxed) / 2
    }

    /// The sequence value at which a grace period that starts after a read
    /// of `sequence` has ended: the next one if none runs (even), otherwise
    /// the one after the running one (odd).
    internal func _gracePeriodTarget(_ sequence: UInt64) -> UInt64 {
        (sequence &+ 3) & ~1
    }

    /// One grace period. Called with `_gpLock` held.
    private func _runGracePeriod(_ counters: inout _GracePeriodCounters) {
        let sequence = _gpSequence.load(ordering: .relaxed)
        _gpSequence.store(sequence &+ 1, ordering: .relaxed)  // started; (A) orders it

        // (A) pairs with every reader's compiler barrier (B) after its lock
        // increment: once it returns, each reader either has its lock count
        // visible to the scans below, or will see the caller's unpublish.
        _heavyFence()

        // Fast path: both indices balanced means no reader that was counted
        // before (A) is still inside. Any scan after (A) proves it, so a few
        // are tried, a short spin apart, before paying for a flip: a reader
        // in back-to-back short sections is usually found between two.
        if _bothIndicesBalanced(attempts: Self._fastPathScans) {
            counters.fastPaths &+= 1
        } else {
            counters.flips &+= 1
            let current = rcu_shim_load_period(_state)
            let active = Int(current & 1)
            // Phase 1: readers that loaded the period before the previous flip
            // but counted themselves afterwards (the atomic path may stall
            // between the two) still hold the inactive index.
            _waitUntilDrained(1 - active, &counters)
            // (F) flip: new readers count under the other index. Release,
            // paired with the readers' period load.
            rcu_shim_store_period(_state, current &+ 1)
            // (C) pairs with (B) like (A), and in rseq mode also restarts
            // every rseq lock in flight, so none commits to the old index
            // after this returns.
            _heavyFence()
            // Phase 2: wait for the readers of the old index.
            _waitUntilDrained(active, &counters)
        }
        // (E) ends the grace period. Release: a poller that reads it with
        // acquire is ordered after the scans, which acquired each reader's
        // unlock (readers' accesses happen before their release unlock).
        _gpSequence.store(sequence &+ 2, ordering: .releasing)
    }

    /// Scans the fast path checks before flipping.
    internal static let _fastPathScans = 8

    /// Whether, in one of `attempts` scans, both indices balance.
    private func _bothIndicesBalanced(attempts: Int) -> Bool {
        for attempt in 0..<attempts {
            let unlocks0 = rcu_shim_sum_unlocks(_state, 0)
            let unlocks1 = rcu_shim_sum_unlocks(_state, 1)
            rcu_shim_full_fence()  // (S) unlock sums before lock sums
            if rcu_shim_sum_locks(_state, 0) == unlocks0 && rcu_shim_sum_locks(_state, 1) == unlocks1 {
                return true
            }
            if attempt + 1 < attempts {
                for _ in 0..<8 { rcu_shim_cpu_relax() }
            }
        }
        return false
    }

    /// Blocks until the lock and unlock sums of `index` agree.
    ///
    /// Unlocks are summed first, then (S), then locks: every unlock counted
    /// has its lock counted too (its lock happened before it), so equal sums
    /// mean every reader counted in the lock sum had left by the unlock sum.
    private func _waitUntilDrained(_ index: Int, _ counters: inout _GracePeriodCounters) {
        var attempt = 0
        while true {
            let unlocks = rcu_shim_sum_unlocks(_state, index)
            rcu_shim_full_fence()  // (S)
            if rcu_shim_sum_locks(_state, index) == unlocks { return }
            counters.busyScans &+= 1
            _backOff(&attempt)
        }
    }

    /// Spin (~100 scans), then yield (16 times), then sleep 1 us, 2 us, ... up
    /// to 1 ms between scans.
    private func _backOff(_ attempt: inout Int) {
        let spins = 100
        let yields = 16
        if attempt < spins {
            for _ in 0..<32 { rcu_shim_cpu_relax() }
        } else if attempt < spins + yields {
            rcu_shim_yield()
        } else {
            let shift = min(attempt - spins - yields, 10)
            rcu_shim_sleep_ns(1_000 << shift)
        }
        attempt += 1
    }

    /// membarrier(2) in the membarrier modes, a seq_cst fence in the fence
    /// modes.
    ///
    /// Both (A) and (C) use PRIVATE_EXPEDITED_RSEQ where it is registered,
    /// even in the atomic-counter mode: it is a superset of PRIVATE_EXPEDITED
    /// (restarting an rseq section that has not committed is harmless at
    /// (A)), and on the kernels measured here it is far cheaper when another
    /// thread of the process is running: ~1 us against ~27 us for plain
    /// PRIVATE_EXPEDITED (docs/benchmarks.md).
    private func _heavyFence() {
        if _usesFences {
            rcu_shim_full_fence()
            return
        }
        let result = rcu_shim_membarrier(_membarrierRestartsRseq ? 1 : 0)
        if result != 0 {
            // Registration succeeded when the domain was created, and it
            // survives fork; a failure now means the kernel changed its mind.
            fatalError("swift-rcu: membarrier(2) failed with errno \(-result) after a successful registration")
        }
    }
}

extension RCUDomain {
    /// Internal grace-period counters, for rcu-stress and tests.
    @_spi(RCUTesting)
    public var _gracePeriodCounters: (fastPaths: UInt64, flips: UInt64, busyScans: UInt64) {
        _gpLock.withLock { ($0.fastPaths, $0.flips, $0.busyScans) }
    }
}
