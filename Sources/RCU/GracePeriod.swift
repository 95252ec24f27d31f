import Synchronization
import _RCUShims

/// Counters kept under the grace-period lock.
internal struct _GracePeriodCounters {
    /// Grace periods that found every count balanced after (A) and returned.
    var fastPaths: UInt64 = 0
    /// Grace periods that flipped the period and waited in two phases.
    var flips: UInt64 = 0
    /// Spinning scans that found an index still in use.
    var busyScans: UInt64 = 0
    /// Times a grace period slept waiting for readers.
    var sleeps: UInt64 = 0
    /// Per-slot balances of each index when it was last found drained: a
    /// stall report names the slots that moved since (sections that ended
    /// on another CPU leave permanent per-slot differences).
    var baseline: [[Int64]] = [[], []]
    /// The reading `_recordBaseline` checks before it replaces a baseline.
    var scratch: [Int64] = []
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
    /// The wait spins for a few microseconds, then sleeps until an unlock
    /// wakes it, so a long reader costs the updater no CPU (see
    /// docs/design.md, "Waiting").
    ///
    /// - Complexity: O(possible CPUs) per scan. With no reader in a section
    ///   it costs one `membarrier(2)` and one scan; otherwise up to eight
    ///   scans, then at least one per phase, and two `membarrier(2)` calls
    ///   (plus one per sleep) besides the wait for the readers.
    /// - Warning: Never call it inside a read section of the same domain on
    ///   the same thread: it would wait for itself. Debug builds stop with a
    ///   message; release builds hang, and the stall report names the wait
    ///   (``RCUStallReport/waitsInsideReadSections``).
    public func synchronize() {
        _assertNotReading("synchronize()")
        _noteReadDepth { _waitForSequence(_snapshotState()._sequence, countsCall: true) }
    }

    /// Runs grace periods until the sequence reaches `target`, or returns when
    /// another caller's grace periods already did. (P) was issued by the
    /// caller's snapshot. `countsCall`: a user's synchronize, for statistics.
    internal func _waitForSequence(_ target: UInt64, countsCall: Bool = false) {
        if rcu_shim_in_stall_handler() == _id {
            fatalError("swift-rcu: a grace-period wait of \(self) called from a stall handler, which runs inside a grace period; it would wait for itself")
        }
        if _ForkSupport.pending.load(ordering: .relaxed) != 0 { _ForkSupport.yieldToPendingFork() }
        let ranOwn = _gpLock.withLock { counters -> Bool in
            // The sequence only advances under this lock, so a follower that
            // waited here while a leader ran finds its target already reached.
            var ranOwn = false
            while _gpSequence.load(ordering: .relaxed) < target {
                _runGracePeriod(&counters)
                ranOwn = true
            }
            return ranOwn
        }
        if countsCall {
            _statistics.withLock { stats in
                stats.synchronizeCalls &+= 1
                if !ranOwn { stats.sharedCalls &+= 1 }
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
        if _skipsGracePeriods {
            // The canary: a "grace period" that waits for nobody.
            _gpSequence.store(sequence &+ 2, ordering: .releasing)
            return
        }
        _gpSequence.store(sequence &+ 1, ordering: .relaxed)  // started; (A) orders it
        let started = _monotonicNanoseconds()
        _gpStartedAt.store(started, ordering: .relaxed)
        var stall = _StallClock(started: started, timeout: _stallTimeoutNanoseconds)
        defer {
            let finished = _monotonicNanoseconds()
            _gpStartedAt.store(0, ordering: .relaxed)
            _statistics.withLock { $0.latency.record(finished &- started) }
        }

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
            _recordBaseline(0, &counters)
            _recordBaseline(1, &counters)
        } else {
            counters.flips &+= 1
            let current = rcu_shim_load_period(_state)
            let active = Int(current & 1)
            // Phase 1: readers that loaded the period before the previous flip
            // but counted themselves afterwards (the atomic path may stall
            // between the two) still hold the inactive index.
            _waitUntilDrained(1 - active, &counters, &stall)
            // (F) flip: new readers count under the other index. Release,
            // paired with the readers' load of `active` (the period).
            rcu_shim_flip(_state)
            // (C) pairs with (B) like (A), and in rseq mode also restarts
            // every rseq lock in flight, so none commits to the old index
            // after this returns.
            _heavyFence()
            // Phase 2: wait for the readers of the old index.
            _waitUntilDrained(active, &counters, &stall)
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
            _scanFence()  // (S) unlock sums before lock sums
            let balanced0 = _balanced(0, locks: rcu_shim_sum_locks(_state, 0), unlocks: unlocks0)
            let balanced1 = _balanced(1, locks: rcu_shim_sum_locks(_state, 1), unlocks: unlocks1)
            if balanced0 && balanced1 {
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
    ///
    /// Waiting: a few spinning scans catch readers in short sections; then
    /// the updater sleeps on the domain's futex word, and the next unlock
    /// that sees the word set wakes it. Sleeping frees the CPU, which matters
    /// most when readers outnumber CPUs and the reader we wait for is
    /// preempted inside its section.
    private func _waitUntilDrained(_ index: Int, _ counters: inout _GracePeriodCounters, _ stall: inout _StallClock) {
        defer { _recordBaseline(index, &counters) }
        for _ in 0..<Self._spinningScans {
            if _isDrained(index) { return }
            counters.busyScans &+= 1
            for _ in 0..<16 { rcu_shim_cpu_relax() }
        }
        while true {
            rcu_shim_arm_waiter(_state)
            // (W) pairs with each unlock's compiler barrier between its
            // increment and its waiter-word load (W-reader): after (W),
            // an unlock either is counted by the scan below or sees the word
            // set and wakes us. Fence modes have no reader barrier there, so
            // a wake-up can be missed; the timeout bounds the cost.
            _heavyFence()
            if _isDrained(index) {
                rcu_shim_disarm_waiter(_state)
                return
            }
            counters.sleeps &+= 1
            rcu_shim_wait_for_readers(_state, _usesFences ? 1_000_000 : 50_000_000)
            _checkStall(index: index, baseline: counters.baseline[index], &stall)
        }
    }

    /// Remembers each slot's balance of a drained `index`, for stall
    /// reports (only when they are enabled).
    ///
    /// New readers may enter the active index while it is read (after the
    /// fast path's scan). A reading whose balances do not sum to zero
    /// includes such a section, which would hide it from a later report,
    /// so it is discarded and the previous baseline kept.
    private func _recordBaseline(_ index: Int, _ counters: inout _GracePeriodCounters) {
        guard _stallTimeoutNanoseconds > 0 else { return }
        if counters.scratch.count != _slotCount {
            counters.scratch = Array(repeating: 0, count: _slotCount)
        }
        var sum: Int64 = 0
        for slot in 0..<_slotCount {
            let balance = rcu_shim_slot_balance(_state, UInt32(slot), index)
            counters.scratch[slot] = balance
            sum &+= balance
        }
        if sum == 0 { swap(&counters.baseline[index], &counters.scratch) }
    }

    /// Scans before sleeping.
    internal static let _spinningScans = 32

    private func _isDrained(_ index: Int) -> Bool {
        let unlocks = rcu_shim_sum_unlocks(_state, index)
        _scanFence()  // (S)
        return _balanced(index, locks: rcu_shim_sum_locks(_state, index), unlocks: unlocks)
    }

    /// Whether `index`'s sums, read unlocks first, then (S), then locks,
    /// balance. Every unlock in the sum has its lock in the later lock sum,
    /// so more unlocks than locks means a section was ended twice: a fork
    /// child ending the section its forking thread had open (counted as
    /// ended at fork), or a token forged around the API. Counting on would
    /// let a new reader's lock balance the sums while it reads.
    @inline(__always)
    private func _balanced(_ index: Int, locks: UInt64, unlocks: UInt64) -> Bool {
        if _slowPath(Int64(bitPattern: locks &- unlocks) < 0) { _reportOverEndedSections(index, locks, unlocks) }
        return locks == unlocks
    }

    @inline(never)
    private func _reportOverEndedSections(_ index: Int, _ locks: UInt64, _ unlocks: UInt64) -> Never {
        fatalError("swift-rcu: \(self) counted \(unlocks &- locks) more read-section ends than starts for index \(index): most likely fork() was called inside a read section (release builds cannot detect it; the child counted that section as ended, then ended it); fork outside read sections")
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
    internal func _heavyFence() {
        if _pairsBySeqCst {
            // (A-rmw) / (C-rmw) / (W-rmw): pairs with each reader's (B-rmw),
            // a seq_cst RMW of the same word.
            rcu_shim_sc_point(_state)
            return
        }
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
    /// (P-w): the worker's membarrier between detaching chunks and the grace
    /// period that frees them (see processBatch). Nothing in the fence and
    /// seq_cst modes, where each retiring thread's (B) is a fence or a
    /// seq_cst RMW between its unpublish and its load of the chunk.
    internal func _orderRetiringThreads() {
        if _usesFences { return }
        _heavyFence()
    }

    /// (S) between the unlock sums and the lock sums: a seq_cst fence, or in
    /// the seq_cst mode a seq_cst RMW of the pairing word (the acquire loads
    /// of the unlocks are what the argument needs; this keeps the mode free
    /// of standalone fences).
    @inline(__always)
    internal func _scanFence() {
        if _pairsBySeqCst { rcu_shim_sc_point(_state) } else { rcu_shim_full_fence() }
    }
}

extension RCUDomain {
    /// Internal grace-period counters, for rcu-stress and tests.
    @_spi(RCUTesting)
    public var _gracePeriodCounters: (fastPaths: UInt64, flips: UInt64, busyScans: UInt64, sleeps: UInt64) {
        _gpLock.withLock { ($0.fastPaths, $0.flips, $0.busyScans, $0.sleeps) }
    }
}
