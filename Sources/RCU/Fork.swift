import Synchronization
import _RCUShims

// fork() support. A child process starts with one thread, the one that
// called fork(), and a copy of every domain as it was at that instant:
// read sections other threads had open will never end there, a grace period
// or a reclamation batch may have been half done, locks may have been held
// by threads that do not exist, and the worker thread is gone.
//
// The handlers (pthread_atfork) make fork() happen at a quiet point for
// every domain and repair the child:
// - prepare: take, in the parent's forking thread, every domain's
//   grace-period lock, then its statistics, stall-handler and reclamation
//   locks, so no grace period or batch is in flight and no lock is held by a
//   thread that will not exist (a running grace period delays the fork
//   until it ends; the worker may still be mid-batch, which the child
//   handles by resetting the counts). A grace period may wait for a reader that needs one of
//   these locks (a reader of domain B reading A's statistics or retiring
//   into A), so the forking thread never waits for a grace-period lock while
//   it holds another library lock: it try-locks them all, and when one is
//   busy it lets go of everything, waits for that one alone, and tries again;
// - parent: release them;
// - child: release them (a default pthread mutex can be unlocked by the
//   same thread under its new thread id), count every open section as ended
//   (only other threads' sections can be open: forking inside a read {}
//   section stops with a message), clear the futex words, drop every
//   callback and retired object queued before fork() (see below), drop
//   async waiters (their executors' threads are gone), and let the worker
//   start again on first use.
//
// A thread that forks inside a token section while another thread runs a
// grace period of that domain would wait forever: the grace period waits for
// the forking thread's section. Debug builds see the token and stop at once
// with a message; release builds cannot tell, so prepare waits for a busy
// grace-period lock 10 s, or one stall timeout when that is longer, and then
// stops with a message naming that likely cause.
//
// Callbacks and retired objects pending at fork() run in the parent only.
// In the child they are dropped without running (their objects leak there):
// a deinit or callback may take a lock that a thread the child does not have
// held at fork() (rcu-stress's first fork fault did exactly that).

/// Every live domain, for the fork handlers.
internal enum _ForkSupport {
    static let registry = _RCUMutex<[UInt64: Unmanaged<RCUDomain>]>([:])

    /// Non-zero while a fork's prepare handler is taking the grace-period
    /// locks. Grace-period callers then hold back for a moment before taking
    /// the lock, so a thread in a tight `synchronize()` loop, which re-takes
    /// the lock before the woken forking thread can run, does not starve the
    /// fork (it did: ~0.4 s per fork in the fork test).
    static let pending = Atomic<Int>(0)

    /// Called by a grace-period caller before it takes the lock: while a fork
    /// is pending, waits for it, at most ~5 ms (bounded: the caller may be
    /// inside a read section a grace period the fork waits for needs ended).
    static func yieldToPendingFork() {
        for _ in 0..<50 where pending.load(ordering: .relaxed) != 0 {
            rcu_shim_sleep_ns(100_000)
        }
    }

    private static let installed: Void = {
        let status = rcu_shim_install_atfork(
            { _ForkSupport.prepare() }, { _ForkSupport.parent() }, { _ForkSupport.child() })
        if status != 0 { fatalError("swift-rcu: pthread_atfork failed (\(status))") }
    }()

    static func register(_ domain: RCUDomain) {
        _ = installed
        registry.withLock { $0[domain._id] = Unmanaged.passUnretained(domain) }
    }

    static func unregister(_ domain: RCUDomain) {
        _ = registry.withLock { $0.removeValue(forKey: domain._id) }
    }

    /// The domains, read while `registry` is held by `prepare`.
    private static var held: [Unmanaged<RCUDomain>] {
        registry._state.pointee.sorted { $0.key < $1.key }.map(\.value)
    }

    /// The domains prepare locked, in lock order, for parent and child to
    /// walk with an index loop: the child must not run unspecialised generic
    /// code such as `held`'s sort and key-path map, which takes Swift runtime
    /// locks a vanished thread may have held at fork() (a child hung there).
    /// Guarded by `registry`, which is held from prepare to parent/child.
    nonisolated(unsafe) private static var locked: [Unmanaged<RCUDomain>] = []

    private static func prepare() {
        if rcu_shim_in_stall_handler() != 0 {
            fatalError("swift-rcu: fork() called from a stall handler, which runs inside a grace period and holds its domain's grace-period lock; the fork would wait for itself")
        }
        if rcu_shim_depth() != 0 {
            fatalError("swift-rcu: fork() called inside an RCU read section: the child could not end it; fork outside read sections")
        }
        pending.add(1, ordering: .relaxed)
        lockGracePeriods()
        // Every grace-period lock is held: no grace period can start.
        pending.subtract(1, ordering: .relaxed)
        locked = held
        // Held briefly by their users, who never wait for a grace period
        // while holding them, and no grace period runs now.
        for domain in held {
            domain._withUnsafeGuaranteedRef { domain in
                domain._statistics._lockForFork()
                domain._stallHandler._lockForFork()
                domain._reclaimer.requests._lockForFork()
                domain._reclaimer.freeChunks._lockForFork()
            }
        }
    }

    /// Takes `registry` and every domain's grace-period lock without ever
    /// waiting for one of them while holding another library lock.
    private static func lockGracePeriods() {
        // A grace-period lock taken by waiting, while nothing else was held
        // (strong: its domain may go away while the registry is unlocked).
        var waited: _RCUMutex<_GracePeriodCounters>?
        while true {
            registry._lockForFork()  // its users hold nothing else and never wait
            let domains = held
            #if DEBUG
            for domain in domains where domain._withUnsafeGuaranteedRef({ $0._debugSectionsOpen }) {
                fatalError("swift-rcu: fork() called inside a read section of \(domain.takeUnretainedValue()): a grace period in progress would wait for it forever, and the child could not end it; fork outside read sections")
            }
            #endif
            var taken: [_RCUMutex<_GracePeriodCounters>] = []
            var busy: (lock: _RCUMutex<_GracePeriodCounters>, name: String, timeout: UInt64)?
            for domain in domains {
                let lock = domain._withUnsafeGuaranteedRef { $0._gpLock }
                if lock === waited || lock._tryLockForFork() {
                    taken.append(lock)
                } else {
                    busy = domain._withUnsafeGuaranteedRef { domain in
                        (lock, domain.description, domain._stallTimeoutNanoseconds)
                    }
                    break
                }
            }
            if let waited, !taken.contains(where: { $0 === waited }) {
                waited._unlockAfterFork()  // its domain was deinitialised meanwhile
            }
            guard let busy else { return }
            for lock in taken { lock._unlockAfterFork() }
            registry._unlockAfterFork()
            // Waits for that grace period alone, but not forever: a grace
            // period that waits for a read section of this very thread (a
            // token, lease or async section, invisible to release builds)
            // never ends, and a silent hang in fork() is the worst outcome.
            let limit = max(busy.timeout, forkWaitFloor)
            if !busy.lock._lockForFork(waitingAtMost: limit) {
                fatalError("swift-rcu: fork() waited \(_formatSeconds(limit)) for a grace period of \(busy.name) to end, and it has not: most likely the forking thread is inside a read section of that domain (a lock() token, a lease or an async read section) that the grace period waits for, which can never end while fork() waits; fork outside read sections. (Otherwise a reader of another thread has stalled for that long.)")
            }
            waited = busy.lock
        }
    }

    /// How long fork() waits at least for a running grace period: 10 s, or
    /// the domain's stall timeout when that is longer (a short timeout set
    /// for diagnostics must not make every fork during a grace period fatal).
    static let forkWaitFloor: UInt64 = 10_000_000_000

    private static func _formatSeconds(_ nanoseconds: UInt64) -> String {
        let tenths = nanoseconds / 100_000_000
        return "\(tenths / 10).\(tenths % 10) s"
    }

    private static func parent() { unlockAll(repairing: false) }

    private static func child() { unlockAll(repairing: true) }

    /// Releases what prepare took, in reverse; the child first repairs each
    /// domain, while its locks are still held.
    private static func unlockAll(repairing: Bool) {
        var index = locked.count
        while index > 0 {
            index -= 1
            locked[index]._withUnsafeGuaranteedRef { domain in
                if repairing { domain._repairAfterFork() }
                domain._reclaimer.freeChunks._unlockAfterFork()
                domain._reclaimer.requests._unlockAfterFork()
                domain._stallHandler._unlockAfterFork()
                domain._statistics._unlockAfterFork()
                domain._gpLock._unlockAfterFork()
            }
        }
        registry._unlockAfterFork()
    }
}

extension RCUDomain {
    /// The child side of fork(); called with this domain's locks held.
    fileprivate func _repairAfterFork() {
        for index in 0..<2 {
            let unlocks = rcu_shim_sum_unlocks(_state, index)
            let locks = rcu_shim_sum_locks(_state, index)
            if locks != unlocks { rcu_shim_forgive_sections(_state, index, locks &- unlocks) }
        }
        rcu_shim_reset_waiters(_state)
        _gpStartedAt.store(0, ordering: .relaxed)
        // The threads counted here are gone (this one is not waiting).
        _waitsInsideReadSections.store(0, ordering: .relaxed)
        _reclaimer._repairAfterFork()
    }
}

extension _Reclaimer {
    /// The child side of fork(); called with the reclaimer's locks held.
    fileprivate func _repairAfterFork() {
        workerState.store(workerState.load(ordering: .relaxed) & ~_Reclaimer.stateMask, ordering: .relaxed)
        // A parent thread counted inside enqueue by the canary never leaves
        // it here; the child's worker would wait for it forever.
        canaryWriters.store(0, ordering: .relaxed)
        workerIdle.store(false, ordering: .relaxed)
        // Their tasks' executor threads do not exist in the child.
        requests._state.pointee.sequenceWaiters = []
        // Every item queued before fork() is the parent's: the child drops it
        // (its object leaks there) rather than run a deinit or callback that
        // may take a lock some vanished thread held. Each shard gets an empty
        // chunk; the old chain is released (the chunks hold bits, not
        // references), or leaked if the parent's worker had detached part of
        // it. The child is single-threaded here, so the counts are set, not
        // patched: the shards' accounted items count as processed, and the
        // replaced current chunks' items drop out of both counts, whatever
        // the worker or a writer was in the middle of.
        var queued = 0
        for shard in shards {
            let fresh = UInt(bitPattern: Unmanaged.passRetained(_RetiredChunk()).toOpaque())
            let old = shard.current.exchange(fresh, ordering: .relaxed)
            Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: old)!).release()
            queued &+= shard.accounted.load(ordering: .relaxed)
        }
        processed.store(queued, ordering: .relaxed)
    }
}
