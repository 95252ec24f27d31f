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
//   grace-period lock, statistics lock and reclamation locks, so no grace
//   period or batch is in flight and no lock is held by a thread that will
//   not exist (a running grace period delays the fork until it ends);
// - parent: release them;
// - child: release them (a default pthread mutex can be unlocked by the
//   same thread under its new thread id), count every open section as ended
//   (only other threads' sections can be open: forking inside a read {}
//   section stops with a message), clear the futex words, drop every
//   callback and retired object queued before fork() (see below), drop
//   async waiters (their executors' threads are gone), and let the worker
//   start again on first use.
//
// Callbacks and retired objects pending at fork() run in the parent only.
// In the child they are dropped without running (their objects leak there):
// a deinit or callback may take a lock that a thread the child does not have
// held at fork() (rcu-stress's first fork fault did exactly that).

/// Every live domain, for the fork handlers.
internal enum _ForkSupport {
    static let registry = _RCUMutex<[UInt64: Unmanaged<RCUDomain>]>([:])

    private static let installed: Void = {
        let status = rcu_shim_install_atfork(
            { _ForkSupport.prepare() }, { _ForkSupport.parent() }, { _ForkSupport.child() })
        precondition(status == 0, "swift-rcu: pthread_atfork failed (\(status))")
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

    private static func prepare() {
        if rcu_shim_depth() != 0 {
            fatalError("swift-rcu: fork() called inside an RCU read section: the child could not end it; fork outside read sections")
        }
        registry._lockForFork()
        for domain in held {
            domain._withUnsafeGuaranteedRef { domain in
                domain._gpLock._lockForFork()
                domain._statistics._lockForFork()
                domain._reclaimer.requests._lockForFork()
                domain._reclaimer.freeChunks._lockForFork()
            }
        }
    }

    private static func parent() {
        for domain in held.reversed() {
            domain._withUnsafeGuaranteedRef { domain in
                domain._reclaimer.freeChunks._unlockAfterFork()
                domain._reclaimer.requests._unlockAfterFork()
                domain._statistics._unlockAfterFork()
                domain._gpLock._unlockAfterFork()
            }
        }
        registry._unlockAfterFork()
    }

    private static func child() {
        for domain in held.reversed() {
            domain._withUnsafeGuaranteedRef { domain in
                domain._repairAfterFork()
                domain._reclaimer.freeChunks._unlockAfterFork()
                domain._reclaimer.requests._unlockAfterFork()
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
        _reclaimer._repairAfterFork()
    }
}

extension _Reclaimer {
    /// The child side of fork(); called with the reclaimer's locks held.
    fileprivate func _repairAfterFork() {
        workerState.store(0, ordering: .relaxed)
        workerIdle.store(false, ordering: .relaxed)
        // The batch the worker had detached lives only on its stack.
        processed.wrappingAdd(inFlight.exchange(0, ordering: .relaxed), ordering: .relaxed)
        // Their tasks' executor threads do not exist in the child.
        requests._state.pointee.sequenceWaiters.removeAll()
        for shard in shards {
            var link: _RetiredChunk? = Unmanaged<_RetiredChunk>
                .fromOpaque(UnsafeRawPointer(bitPattern: shard.current.load(ordering: .relaxed))!)
                .takeUnretainedValue()
            while let chunk = link {
                // Every item queued before fork() is the parent's: drop it
                // here (its object leaks in the child) rather than run a
                // deinit or callback that may take a lock some vanished
                // thread held. Slots claimed but never filled go the same way.
                let claimed = min(chunk.claimed.load(ordering: .relaxed), _RetiredChunk.capacity)
                for slot in 0..<claimed {
                    chunk.items[slot].store(Self.holeBits, ordering: .relaxed)
                }
                link = chunk.next
            }
        }
    }
}
