#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import _RCUShims

// MARK: - Public API

extension RCUDomain {
    /// Releases this reference to `object` after a grace period, on the
    /// domain's worker thread (call_rcu for objects).
    ///
    /// Readers that found `object` before it was unpublished may keep using
    /// it until their sections end; its `deinit` (if this was the last
    /// reference) runs on the worker afterwards.
    ///
    /// ```swift
    /// let old = table.exchange(fresh)
    /// rcu.retire(old)
    /// ```
    ///
    /// - Complexity: O(1), lock-free: an internal read section, one atomic
    ///   increment on this CPU's shard, and a store. Every 256 calls per CPU,
    ///   a chunk is installed and the memory bound checked.
    /// - Warning: When nearly ``pendingCallbacksCeiling`` items are pending
    ///   and the calling thread is not inside a `read {}` section, the call
    ///   waits for the worker to catch up. Inside `read {}` it never waits.
    ///   Token and async sections are invisible to that check in release
    ///   builds (debug builds see tokens), so the wait is also bounded: after
    ///   one ``Configuration/stallTimeout`` (10 s when reports are off, at
    ///   most 60 s) in
    ///   which no grace period completed and the worker processed nothing,
    ///   it stops waiting, and no retire waits until a grace period
    ///   completes; a retire inside such a section pauses that long instead
    ///   of waiting for itself forever. Do not retire while holding a lock
    ///   that a reader takes inside its section, or that a callback or deinit
    ///   run by the worker takes: the wait is for a grace period that may wait
    ///   for that reader.
    @inlinable
    public func retire<Object: AnyObject>(_ object: consuming Object) {
        // Inlined, and the parameter's lifetime ended right after the
        // retain, before the call: the optimiser then cancels the pair, and
        // the reference the caller gives up is the queue's, with no atomic.
        let bits = UInt(bitPattern: Unmanaged.passRetained(object).toOpaque())
        _ = consume object
        _enqueueRetained(bits)
    }

    /// Queues an item that carries a +1 reference (or a tagged callback box).
    @usableFromInline
    internal func _enqueueRetained(_ bits: UInt) {
        _reclaimer.enqueue(bits, self)
    }

    /// Runs `body` after a grace period, on the domain's worker thread
    /// (call_rcu for closures).
    ///
    /// - Complexity: O(1) plus one allocation for the closure box.
    /// - Warning: `body` runs on the worker; a slow body delays every other
    ///   callback of this domain. The same waiting rule as ``retire(_:)``
    ///   applies.
    public func `defer`(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(_DeferredCallback(body)).toOpaque()
        _reclaimer.enqueue(UInt(bitPattern: box) | _Reclaimer.callbackTag, self)
    }

    /// Waits until every callback and retired object queued before the call
    /// has been processed, including what those callbacks queue in turn, up
    /// to 16 generations deep.
    ///
    /// - Complexity: at least one grace period.
    /// - Warning: Calling it inside a read section of this domain on the same
    ///   thread, or from a callback, would wait for itself: debug builds stop
    ///   with a message for the former, every build for the latter.
    public func barrier() {
        _assertNotReading("barrier()")
        _noteReadDepth { _reclaimer.barrier(self) }
    }

    /// The asynchronous ``barrier()``: suspends instead of blocking, and is
    /// resumed by the last of its markers.
    ///
    /// - Complexity: at least one grace period.
    /// - Warning: Awaiting it inside an async read section of this domain
    ///   never completes.
    public func barrier() async {
        await _reclaimer.barrierAsync(self)
    }

    /// Stops the worker thread after draining every pending callback. A later
    /// retire, defer, ``pollState()`` or async wait starts it again.
    ///
    /// It waits for the worker that runs when it is called to exit, and no
    /// longer: a retire on another thread during or after the call may start
    /// a new worker, which this call neither waits for nor stops. Items
    /// queued before the call have run when it returns (its ``barrier()``).
    ///
    /// The worker also stops by itself after a second with nothing to do, and
    /// it never keeps the process from exiting.
    ///
    /// - Complexity: a ``barrier()``, then up to one wake-up of the worker.
    /// - Warning: It runs ``barrier()``, so the same calls stop the process:
    ///   from a callback, from a stall handler, or (debug builds) inside a
    ///   read section of this domain.
    public func stopWorker() {
        barrier()
        _reclaimer.stopWorker(self)
    }

    /// Callbacks and retired objects queued and not yet processed (exact when
    /// no retire runs concurrently).
    ///
    /// - Complexity: O(possible CPUs).
    public var pendingCallbacks: Int { _reclaimer.pending(self) }

    /// The most callbacks and retired objects that can be pending at once
    /// while every retiring thread is outside read sections and no grace
    /// period stalls for a ``Configuration/stallTimeout``:
    /// ``Configuration/maxPendingCallbacks``, or 1,024 × the possible CPUs
    /// when that is larger (smaller bounds act as that one).
    ///
    /// Retires from inside `read {}` sections and from callbacks never wait,
    /// and a wait for memory ends after a stall timeout without progress, so
    /// those can go past it (see ``retire(_:)``).
    ///
    /// - Complexity: O(1).
    public var pendingCallbacksCeiling: Int { _reclaimer.ceiling }

    /// The largest ``pendingCallbacks`` seen by the worker or by writers
    /// checking the memory bound (sampled, so it can miss the true peak).
    public var peakPendingCallbacks: Int { _reclaimer.peakPending.load(ordering: .relaxed) }
}

// MARK: - Implementation

/// A closure queued by `defer`.
internal final class _DeferredCallback {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// A chunk of queued items. Writers claim a slot with an atomic increment and
/// store the item's bits into it; the worker detaches whole chunks.
internal final class _RetiredChunk: @unchecked Sendable {
    // @unchecked Sendable: `items` is allocated in init and accessed only
    // through its atomics; `next` is written before the chunk is published
    // (by the CAS that installs it) and read by the worker after a grace
    // period that follows its detachment.
    static let capacity = 256
    let claimed = Atomic<Int>(0)
    /// Set (relaxed) each time the chunk is about to become a shard's
    /// `current`, before the release that publishes it, from a counter that
    /// never repeats: a writer that found the chunk full and then checked the
    /// bound installs a successor only if the current chunk still carries the
    /// stamp it checked for. Recycling cannot reuse a stamp.
    let stamp = Atomic<UInt64>(0)
    let items: UnsafeMutablePointer<Atomic<UInt>>
    var next: _RetiredChunk?

    init() {
        items = .allocate(capacity: Self.capacity)
        for index in 0..<Self.capacity { (items + index).initialize(to: Atomic(0)) }
    }

    deinit {
        items.deinitialize(count: Self.capacity)
        items.deallocate()
    }
}

/// One CPU's queue: the chunk being filled (holding +1 on it, as bits, with
/// earlier full chunks chained behind it), and the items queued in chunks
/// that are no longer current (full ones, counted when replaced, and partial
/// ones the worker detached, counted after their grace period).
internal final class _Shard: @unchecked Sendable {
    // @unchecked Sendable: both fields are atomics.
    let current: Atomic<UInt>
    let accounted = Atomic<Int>(0)
    // Keeps shards of different CPUs out of each other's cache lines.
    private let padding: (Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int, Int) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init() {
        current = Atomic(UInt(bitPattern: Unmanaged.passRetained(_RetiredChunk()).toOpaque()))
    }

    deinit {
        Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: current.load(ordering: .relaxed))!).release()
    }
}

/// Deferred reclamation for one domain: sharded lock-free queues, a worker
/// thread that batches them behind one grace period, the memory bound, and
/// the waiters of async synchronize and barrier.
///
/// Why writers need no lock: each enqueue runs inside a read section of the
/// domain itself. The worker detaches a shard's chunk with an exchange and
/// then waits for a grace period before reading it, so every writer that
/// could still have been filling that chunk has finished; the chunk's slots
/// are complete and it can be reused. That grace period is also the one the
/// detached items wait for: they were all queued before it began.
internal final class _Reclaimer: @unchecked Sendable {
    // @unchecked Sendable: shared state is atomics, Mutex-protected, or the
    // C futex words, which are allocated once.
    static let callbackTag: UInt = 1
    static let maxChainGenerations = 16

    let shards: [_Shard]
    /// The same shards, unretained, so the enqueue path takes no reference
    /// counts (`shards` keeps them alive).
    private let shardRefs: ContiguousArray<Unmanaged<_Shard>>
    let maxPending: Int
    /// Items processed so far.
    let processed = Atomic<Int>(0)
    /// Items queued by callbacks (the worker thread), for barrier's chains.
    let chained = Atomic<Int>(0)
    let peakPending = Atomic<Int>(0)
    /// 1 + the grace periods completed when a retirer last stopped waiting
    /// for memory (see `applyBackpressure`); 0 before any did. While no grace
    /// period completes after that, retirers do not wait at all. (A fork
    /// child may inherit it; its first grace period clears it.)
    let abandonedAt = Atomic<UInt64>(0)
    /// Times a retirer stopped waiting for memory with the bound reached.
    let boundOverruns = Atomic<UInt64>(0)
    /// Threads inside `enqueue`, `totalEnqueued` or `hasWork`, counted only
    /// by the canary domain, whose grace periods do not wait for them.
    let canaryWriters = Atomic<Int>(0)
    /// The source of chunk stamps.
    private let nextStamp = Atomic<UInt64>(1)

    /// Gives `chunk` a stamp no published chunk had before (the initial and
    /// fork-child chunks carry 0, which no check ever records: a writer's
    /// first check is for a chunk it found full, and the child starts with
    /// no writers); called just before it is published as a shard's
    /// `current` (release), so a writer that loads it with acquire reads it.
    private func stampForPublication(_ chunk: _RetiredChunk) {
        chunk.stamp.store(nextStamp.wrappingAdd(1, ordering: .relaxed).oldValue, ordering: .relaxed)
    }

    /// The canary's stand-in for the grace period its internal sections
    /// need: it counts the threads that may hold a chunk (see processBatch).
    /// The fence pairs with the worker's after its exchanges (a
    /// store-buffering pattern: either the worker sees this count, or this
    /// thread's load of `current` sees the exchange).
    @inline(__always)
    private func canaryEnter(_ domain: RCUDomain) {
        guard domain._skipsGracePeriods else { return }
        canaryWriters.add(1, ordering: .sequentiallyConsistent)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }

    @inline(__always)
    private func canaryExit(_ domain: RCUDomain) {
        guard domain._skipsGracePeriods else { return }
        canaryWriters.subtract(1, ordering: .sequentiallyConsistent)
    }
    /// The worker's state in the low two bits (`stateMask`): 0, no worker;
    /// 1, running; 2, asked to stop. The bits above count the workers
    /// started, so `stopWorker` can wait for the worker it stopped without
    /// mistaking its successor (started by a concurrent retire) for it.
    let workerState = Atomic<Int>(0)
    static let stateMask = 3
    static let generationUnit = 4
    /// Set while the worker sleeps with nothing to do (seq_cst, see enqueue).
    let workerIdle = Atomic<Bool>(false)
    /// Futex word the worker sleeps on; incremented to wake it.
    let kickWord: UnsafeMutablePointer<UInt32>
    /// Futex word incremented after each batch; barrier and backpressure wait on it.
    let progressWord: UnsafeMutablePointer<UInt32>
    // pthread mutexes (_RCUMutex), not Synchronization.Mutex: ThreadSanitizer
    // intercepts pthread_mutex_* but cannot see the futex inside the
    // uninstrumented standard library, and reported the chunks handed from
    // the worker's recycle to a writer through `freeChunks` as races.
    internal let freeChunks = _RCUMutex<[_RetiredChunk]>([])
    internal let requests = _RCUMutex<_Requests>(_Requests())

    struct _Requests {
        var gracePeriodTarget: UInt64 = 0
        var sequenceWaiters: [(UInt64, CheckedContinuation<Void, Never>)] = []
    }

    init(shardCount: Int, maxPending: Int) {
        shards = (0..<max(1, shardCount)).map { _ in _Shard() }
        shardRefs = ContiguousArray(shards.map { Unmanaged.passUnretained($0) })
        self.maxPending = maxPending
        guard let kick = rcu_shim_word_create(), let progress = rcu_shim_word_create() else {
            fatalError("swift-rcu: cannot allocate reclamation futex words")
        }
        kickWord = kick
        progressWord = progress
    }

    deinit {
        rcu_shim_word_destroy(kickWord)
        rcu_shim_word_destroy(progressWord)
    }

    /// Items queued so far. Each shard is read as a consistent pair (its
    /// accounted count and its current chunk's claims): the worker's detach
    /// and a writer's chunk install each change both, so a pair read while
    /// either ran is read again. Claims that land in a chunk after it was
    /// detached are counted once its grace period has passed.
    ///
    /// Runs inside a read section of `domain`: the worker recycles chunks
    /// only a grace period after detaching them, so the current chunk read
    /// here cannot be reused or freed under us.
    func totalEnqueued(_ domain: RCUDomain) -> Int {
        canaryEnter(domain)
        defer { canaryExit(domain) }
        let token = domain._lockUntracked()
        var total = 0
        // An index loop, not `reduce`: see _LatencyHistogram.quantile (fork).
        var index = 0
        while index < shards.count {
            let shard = shards[index]
            index += 1
            while true {
                let accounted = shard.accounted.load(ordering: .acquiring)
                let bits = shard.current.load(ordering: .acquiring)
                let inCurrent = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)
                    ._withUnsafeGuaranteedRef { min($0.claimed.load(ordering: .acquiring), _RetiredChunk.capacity) }
                if shard.accounted.load(ordering: .acquiring) == accounted
                    && shard.current.load(ordering: .acquiring) == bits {
                    total += accounted + inCurrent
                    break
                }
            }
        }
        domain.unlock(token)
        return total
    }

    /// Items queued and not yet processed. `processed` is read first: an
    /// item is counted as queued before it can be processed, so the count
    /// never misses an item queued before the call by reading a later
    /// `processed`. It may read up to a chunk per shard low while the worker
    /// detaches, and by the claims that land in a detached chunk until its
    /// grace period has passed (one chunk per shard at most, together: the
    /// memory bound's margin covers it); an install in progress makes it
    /// read high.
    func pending(_ domain: RCUDomain) -> Int {
        let done = processed.load(ordering: .acquiring)
        return max(0, totalEnqueued(domain) - done)
    }

    // MARK: Writers

    func enqueue(_ bits: UInt, _ domain: RCUDomain, shard shardIndex: Int? = nil) {
        let index = shardIndex ?? Int(rcu_shim_slot_hint(domain._state)) % shardRefs.count
        // The stamp of the full chunk this writer last found, once it has
        // checked the bound for it: a fresh chunk is installed only by a
        // writer that checked the bound after finding that very chunk full
        // (see `applyBackpressure`).
        var checkedStamp: UInt64? = nil
        while true {
            canaryEnter(domain)
            let token = domain._lockUntracked()
            let outcome = shardRefs[index]._withUnsafeGuaranteedRef { shard -> _ClaimOutcome in
                // The section's (B) is only a compiler barrier in the
                // membarrier modes, so the caller's unpublish may still be in
                // this CPU's store buffer here: (B) pairs with (P-w) in
                // processBatch, which makes it visible before the grace
                // period of a chunk this load finds (design.md §5.9).
                let chunkBits = shard.current.load(ordering: .acquiring)
                // seq_cst: pairs with the worker's seq_cst store of workerIdle
                // before it looks for work, so either it sees this claim or
                // we see it idle and wake it.
                let claimed = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: chunkBits)!)
                    ._withUnsafeGuaranteedRef { chunk -> Bool in
                        let slot = chunk.claimed.wrappingAdd(1, ordering: .sequentiallyConsistent).oldValue
                        guard slot < _RetiredChunk.capacity else { return false }
                        chunk.items[slot].store(bits, ordering: .releasing)
                        return true
                    }
                if claimed { return .stored }
                // Full. Install its successor only after checking the bound
                // for this very chunk, or where this writer may not wait.
                // The stamp cannot change while this section holds the chunk
                // (the worker recycles a chunk only a grace period after
                // detaching it); the acquire load of `current` ordered the
                // publisher's relaxed stamp store before this load.
                let stamp = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: chunkBits)!)
                    ._withUnsafeGuaranteedRef { $0.stamp.load(ordering: .relaxed) }
                if checkedStamp == stamp || !mayWait(domain) {
                    installFreshChunk(shard, replacing: chunkBits)
                    return .installed
                }
                return .full(stamp: stamp)
            }
            domain.unlock(token)
            canaryExit(domain)
            switch outcome {
            case .stored:
                if rcu_shim_runs_callbacks() != 0 { chained.wrappingAdd(1, ordering: .relaxed) }
                wakeWorkerIfIdle(domain)
                return
            case .installed:
                checkedStamp = nil
            case .full(let stamp):
                // Outside our section: wait while the bound is near, then
                // try again (another writer may have installed meanwhile).
                applyBackpressure(domain)
                checkedStamp = stamp
            }
        }
    }

    private enum _ClaimOutcome {
        case stored, installed
        case full(stamp: UInt64)
    }

    /// Wakes the worker only if it sleeps, and only once: the writer that
    /// clears the idle flag pays the syscall; the rest see it clear.
    private func wakeWorkerIfIdle(_ domain: RCUDomain) {
        if workerIdle.load(ordering: .sequentiallyConsistent) {
            if workerIdle.exchange(false, ordering: .sequentiallyConsistent) { kick(domain) }
        } else if workerState.load(ordering: .relaxed) & Self.stateMask == 0 {
            kick(domain)
        }
    }

    /// Replaces a full chunk with an empty one that chains to it.
    private func installFreshChunk(_ shard: _Shard, replacing fullBits: UInt) {
        let fresh = takeFreeChunk()
        stampForPublication(fresh)
        let full = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: fullBits)!)
        fresh.next = full.takeUnretainedValue()
        let freshBits = UInt(bitPattern: Unmanaged.passRetained(fresh).toOpaque())
        // Counted before the exchange and taken back if it fails, so a
        // concurrent `pending` reads high, never low, while an installer is
        // preempted here (reading low let writers of the shard install past
        // the bound, one chunk per preempted installer).
        shard.accounted.wrappingAdd(_RetiredChunk.capacity, ordering: .releasing)
        if shard.current.compareExchange(expected: fullBits, desired: freshBits,
                                         ordering: .acquiringAndReleasing).exchanged {
            full.release()  // the shard's reference; fresh.next holds its own
        } else {
            shard.accounted.wrappingSubtract(_RetiredChunk.capacity, ordering: .releasing)
            fresh.next = nil
            Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: freshBits)!).release()
        }
    }

    /// Whether the calling thread may wait for the worker: not inside a
    /// `read {}` section, not on the worker (running callbacks), not in this
    /// domain's stall handler (it holds the grace-period lock the worker
    /// needs), and, in debug builds, not inside a token section. Sections
    /// this cannot see are why the wait itself is bounded (applyBackpressure).
    private func mayWait(_ domain: RCUDomain) -> Bool {
        rcu_shim_depth() == 0 && rcu_shim_runs_callbacks() == 0
            && rcu_shim_in_stall_handler() != domain._id && !domain._debugSectionsOpen
    }

    /// The number pending at which writers start to wait: two chunks per
    /// shard below the ceiling.
    ///
    /// A fresh chunk is installed only by a writer that found the previous
    /// one full and then saw fewer than `threshold` pending, with that chunk
    /// still current (its stamp: installs and detaches both publish a new
    /// one). Past the last such check each shard gains at most its current
    /// chunk (256 items), and the check may have read up to one chunk per
    /// shard low (a detach in progress; claims that land in a detached
    /// chunk); installs in progress read high. So at most `ceiling` items
    /// are pending while every writer may wait.
    var threshold: Int { ceiling - 2 * shards.count * _RetiredChunk.capacity }

    /// The most items pending while every writer may wait: `maxPending`, or
    /// 1,024 per shard when that is larger. Smaller bounds act as that one:
    /// with fewer than two chunks per shard to wait for, a writer could wait
    /// on a level that a few items queued by callbacks, or a writer that
    /// never fills its chunk, keep up forever (a bound of 1 made the
    /// threshold 0, and every writer waited for nothing).
    var ceiling: Int {
        max(maxPending, 4 * shards.count * _RetiredChunk.capacity)
    }

    /// Waits for the worker while `threshold` or more items are pending.
    /// Called by a writer that found its chunk full, outside its section.
    private func applyBackpressure(_ domain: RCUDomain) {
        let threshold = self.threshold
        var backlog = pending(domain)
        notePeak(backlog)
        guard backlog >= threshold else { return }
        // Bounded by progress (grace periods completing, the worker
        // processing items). A writer inside a read section of this domain
        // must not wait here at all, or it would wait for itself: `mayWait`
        // keeps `read {}` sections (and, in debug builds, token sections)
        // out, but token and async sections are invisible to release builds.
        // So the wait ends when neither kind of progress has happened for
        // one stall timeout (10 s when reports are off); until a grace
        // period then completes, no writer waits (docs/design.md §9).
        let limit = _Reclaimer.boundedWait(domain)
        var completed = domain._gpSequence.load(ordering: .relaxed) >> 1
        var done = processed.load(ordering: .relaxed)
        var lastProgress = _monotonicNanoseconds()
        while backlog >= threshold {
            // +1 so that the initial 0 never matches.
            if abandonedAt.load(ordering: .relaxed) == completed &+ 1 { return }
            let seen = rcu_shim_word_load(progressWord)
            kick(domain)
            if pending(domain) < threshold { break }
            _ = rcu_shim_futex_wait(progressWord, seen, 10_000_000)
            backlog = pending(domain)
            let now = _monotonicNanoseconds()
            let latest = domain._gpSequence.load(ordering: .relaxed) >> 1
            let latestDone = processed.load(ordering: .relaxed)
            if latest != completed || latestDone != done {
                completed = latest
                done = latestDone
                lastProgress = now
            } else if now &- lastProgress >= limit {
                abandonedAt.store(completed &+ 1, ordering: .relaxed)
                boundOverruns.wrappingAdd(1, ordering: .relaxed)
                return
            }
        }
    }

    /// How long a writer waits for memory with no progress before it stops
    /// waiting: the domain's stall timeout, or 10 s when stall reports are
    /// off, and never more than 60 s (a timeout of a day set to mute reports
    /// must not bring back the wait for one's own section). A grace period
    /// that waits that long for a reader is a stall.
    static func boundedWait(_ domain: RCUDomain) -> UInt64 {
        let timeout = domain._stallTimeoutNanoseconds
        return timeout == 0 ? 10_000_000_000 : min(timeout, 60_000_000_000)
    }

    func notePeak(_ value: Int) {
        var peak = peakPending.load(ordering: .relaxed)
        while value > peak {
            let result = peakPending.compareExchange(expected: peak, desired: value, ordering: .relaxed)
            if result.exchanged { break }
            peak = result.original
        }
    }

    private func takeFreeChunk() -> _RetiredChunk {
        if let chunk = freeChunks.withLock({ $0.popLast() }) { return chunk }
        return _RetiredChunk()
    }

    private func recycle(_ chunk: _RetiredChunk) {
        chunk.claimed.store(0, ordering: .relaxed)
        chunk.next = nil
        freeChunks.withLock { free in
            if free.count < 4 * shards.count { free.append(chunk) }
        }
    }

    // MARK: Requests from pollers, async waiters and barriers

    func requestGracePeriod(_ state: RCUGracePeriodState, _ domain: RCUDomain) {
        let raised = requests.withLock { requests -> Bool in
            guard state._sequence > requests.gracePeriodTarget else { return false }
            requests.gracePeriodTarget = state._sequence
            return true
        }
        if raised { kick(domain) }
    }

    func addWaiter(for sequence: UInt64, _ continuation: CheckedContinuation<Void, Never>, _ domain: RCUDomain) {
        requests.withLock { requests in
            requests.gracePeriodTarget = max(requests.gracePeriodTarget, sequence)
            requests.sequenceWaiters.append((sequence, continuation))
        }
        kick(domain)
    }

    /// Queues one marker callback on every shard and waits until all have
    /// run. Each shard's chunks are processed oldest first, so a shard's
    /// marker runs after everything queued on that shard before it; and
    /// everything queued before the barrier began was queued before its
    /// marker on the same shard. Repeats while callbacks queued more
    /// callbacks (chains), up to `maxChainGenerations` times.
    func barrier(_ domain: RCUDomain) {
        if rcu_shim_runs_callbacks() != 0 {
            fatalError("swift-rcu: barrier() called from an RCU callback of \(domain); it would wait for itself")
        }
        if rcu_shim_in_stall_handler() == domain._id {
            fatalError("swift-rcu: barrier() called from a stall handler of \(domain), which runs inside a grace period; it would wait for itself")
        }
        for _ in 0..<Self.maxChainGenerations {
            let chainedBefore = chained.load(ordering: .relaxed)
            let markers = queueMarkers(domain, continuation: nil)
            while markers.remaining.load(ordering: .acquiring) > 0 {
                let seen = rcu_shim_word_load(progressWord)
                if markers.remaining.load(ordering: .acquiring) == 0 { break }
                kick(domain)
                _ = rcu_shim_futex_wait(progressWord, seen, 10_000_000)
            }
            if chained.load(ordering: .relaxed) == chainedBefore { return }
        }
    }

    func barrierAsync(_ domain: RCUDomain) async {
        for _ in 0..<Self.maxChainGenerations {
            let chainedBefore = chained.load(ordering: .relaxed)
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                _ = queueMarkers(domain, continuation: continuation)
            }
            if chained.load(ordering: .relaxed) == chainedBefore { return }
        }
    }

    private func queueMarkers(_ domain: RCUDomain, continuation: CheckedContinuation<Void, Never>?) -> _BarrierMarkers {
        let markers = _BarrierMarkers(count: shards.count, continuation: continuation)
        for index in shards.indices {
            let box = Unmanaged.passRetained(_DeferredCallback { markers.arrive() }).toOpaque()
            enqueue(UInt(bitPattern: box) | Self.callbackTag, domain, shard: index)
        }
        kick(domain)
        return markers
    }

    // MARK: The worker

    /// Wakes the worker, starting it if none runs.
    func kick(_ domain: RCUDomain) {
        if workerState.load(ordering: .acquiring) & Self.stateMask == 0 { startWorker(domain) }
        rcu_shim_word_increment(kickWord)
        _ = rcu_shim_futex_wake(kickWord, 1)
    }

    private func startWorker(_ domain: RCUDomain) {
        let state = workerState.load(ordering: .acquiring)
        guard state & Self.stateMask == 0 else { return }
        let running = (state & ~Self.stateMask) &+ Self.generationUnit | 1
        guard workerState.compareExchange(expected: state, desired: running, ordering: .acquiringAndReleasing).exchanged else {
            return  // another caller started it
        }
        let context = Unmanaged.passRetained(_WorkerContext(domain, generation: running & ~Self.stateMask)).toOpaque()
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { context in
            let worker = Unmanaged<_WorkerContext>.fromOpaque(context!).takeRetainedValue()
            worker.domain._reclaimer.run(worker.domain, generation: worker.generation)
            return nil
        }, context)
        if status != 0 {
            fatalError("swift-rcu: cannot start the reclamation worker of \(domain) (pthread_create: \(status) \(String(cString: strerror(status)))); retired objects and deferred callbacks cannot run")
        }
        pthread_detach(thread)
    }

    /// Stops the worker that runs now, if any, and waits until it has exited.
    /// A worker started meanwhile by another thread's retire (or by the
    /// kick below) is not this call's to wait for.
    func stopWorker(_ domain: RCUDomain) {
        var state = workerState.load(ordering: .acquiring)
        while true {
            switch state & Self.stateMask {
            case 0:
                // None runs. A writer that queued while a worker was asked to
                // stop did not kick (it saw one running); it must not wait
                // for the next writer.
                if hasWork(domain) { kick(domain) }
                return
            case 1:
                let stopping = state & ~Self.stateMask | 2
                let result = workerState.compareExchange(expected: state, desired: stopping, ordering: .acquiringAndReleasing)
                if result.exchanged { state = stopping } else { state = result.original; continue }
            default:
                break  // asked to stop already, by us or by a concurrent stopWorker
            }
            // Only the worker leaves the stopping state, by exiting.
            while workerState.load(ordering: .acquiring) == state {
                rcu_shim_word_increment(kickWord)
                _ = rcu_shim_futex_wake(kickWord, 1)
                rcu_shim_sleep_ns(100_000)
            }
            if hasWork(domain) { kick(domain) }
            return
        }
    }

    /// The worker loop: detach, one grace period, run, repeat; sleep when idle;
    /// exit after a second idle (releasing the domain) or when stopped.
    /// `generation`: this worker's bits of `workerState`.
    private func run(_ domain: RCUDomain, generation: Int) {
        let running = generation | 1
        var idleSince: UInt64 = 0
        while workerState.load(ordering: .acquiring) == running {
            let seen = rcu_shim_word_load(kickWord)
            if processBatch(domain) {
                idleSince = 0
                pace(domain)
                continue
            }
            let now = _monotonicNanoseconds()
            if idleSince == 0 { idleSince = now }
            if now - idleSince < 1_000_000 {
                // Linger for a millisecond, polling, before going idle: a
                // writer mid-burst then never pays for a wake-up syscall.
                rcu_shim_sleep_ns(200_000)
                continue
            }
            if now - idleSince > 1_000_000_000 {
                // Idle for a second: exit unless something arrived meanwhile.
                workerIdle.store(true, ordering: .sequentiallyConsistent)
                if hasWork(domain) { workerIdle.store(false, ordering: .relaxed); continue }
                if workerState.compareExchange(expected: running, desired: generation, ordering: .acquiringAndReleasing).exchanged {
                    workerIdle.store(false, ordering: .relaxed)
                    if hasWork(domain) { kick(domain) }  // a writer raced with the exit
                    return
                }
                continue
            }
            workerIdle.store(true, ordering: .sequentiallyConsistent)
            if !hasWork(domain) {
                _ = rcu_shim_futex_wait(kickWord, seen, 100_000_000)
            }
            workerIdle.store(false, ordering: .relaxed)
        }
        // Asked to stop (state 2 of this generation): only this thread
        // leaves that state.
        workerState.store(generation, ordering: .releasing)
    }

    /// After a batch, waits up to `pacingNanoseconds` for more callbacks to
    /// accumulate, so one grace period (and its membarrier IPIs to every
    /// CPU running this process) serves many of them; liburcu's call_rcu
    /// thread sleeps 10 ms the same way. Anyone who waits for the worker
    /// (barrier, backpressure, a poll or async request) kicks it awake, and
    /// a large backlog skips the pause.
    private func pace(_ domain: RCUDomain) {
        // The canary domain frees as fast as it can: that is its point.
        if domain._skipsGracePeriods { return }
        let seen = rcu_shim_word_load(kickWord)
        let urgent = requests.withLock { !$0.sequenceWaiters.isEmpty || $0.gracePeriodTarget > domain._completedSequence() }
        if urgent || pending(domain) >= ceiling / 4 { return }
        _ = rcu_shim_futex_wait(kickWord, seen, Self.pacingNanoseconds)
    }

    /// The pause between batches (see `pace`).
    static let pacingNanoseconds: Int64 = 10_000_000

    /// Whether anything is queued or requested (a seq_cst read of the claims).
    ///
    /// The chunks are read inside a read section of the domain: a worker
    /// started meanwhile (by a retire on another thread, while this thread
    /// is a stopping caller or an exited worker) may detach, process and
    /// recycle or free them, but only a grace period after detaching.
    private func hasWork(_ domain: RCUDomain) -> Bool {
        canaryEnter(domain)
        let token = domain._lockUntracked()
        var queued = false
        var index = 0
        while index < shards.count && !queued {
            let bits = shards[index].current.load(ordering: .sequentiallyConsistent)
            queued = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)._withUnsafeGuaranteedRef {
                $0.claimed.load(ordering: .sequentiallyConsistent) > 0 || $0.next != nil
            }
            index += 1
        }
        domain.unlock(token)
        canaryExit(domain)
        if queued { return true }
        return requests.withLock { !$0.sequenceWaiters.isEmpty || $0.gracePeriodTarget > domain._completedSequence() }
    }

    /// One round. Returns whether it did anything.
    private func processBatch(_ domain: RCUDomain) -> Bool {
        // Detach every non-empty shard's chain.
        var detached: [(shard: _Shard, head: _RetiredChunk, counted: Int)] = []
        for shard in shards {
            let bits = shard.current.load(ordering: .acquiring)
            let busy = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!)._withUnsafeGuaranteedRef {
                $0.claimed.load(ordering: .relaxed) > 0 || $0.next != nil
            }
            guard busy else { continue }
            let freshChunk = takeFreeChunk()
            stampForPublication(freshChunk)
            let fresh = UInt(bitPattern: Unmanaged.passRetained(freshChunk).toOpaque())
            let old = shard.current.exchange(fresh, ordering: .acquiringAndReleasing)
            let head = Unmanaged<_RetiredChunk>.fromOpaque(UnsafeRawPointer(bitPattern: old)!).takeRetainedValue()
            // Count the head's items at once, so `pending` does not dip while
            // its grace period runs; writers still finishing a claim are
            // added after it.
            let counted = min(head.claimed.load(ordering: .acquiring), _RetiredChunk.capacity)
            shard.accounted.wrappingAdd(counted, ordering: .releasing)
            detached.append((shard, head, counted))
        }
        if domain._skipsGracePeriods && !detached.isEmpty {
            // The canary frees early on purpose, but its own queues must stay
            // sound: once no thread that may hold a detached chunk is inside
            // enqueue, totalEnqueued or hasWork (the fence pairs with the one
            // in canaryEnter), every claim in those chunks is stored and none
            // can follow, so none is lost or written to a recycled chunk, and
            // nobody reads a chunk that is recycled. Readers of the user's
            // data are still not waited for: that is the canary.
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            var spins = 0
            while canaryWriters.load(ordering: .sequentiallyConsistent) != 0 {
                spins += 1
                if spins % 1024 == 0 { rcu_shim_sleep_ns(10_000) } else { rcu_shim_cpu_relax() }
            }
        }
        let wanted = requests.withLock { $0.gracePeriodTarget }
        let needsGracePeriod = !detached.isEmpty || wanted > domain._completedSequence()
        if needsGracePeriod {
            notePeak(pending(domain))
            // (P-w), the retiring threads' (P): in the membarrier modes a
            // membarrier, which pairs with the compiler barrier (B) after
            // each retiring thread's lock increment, where (P) on this
            // thread alone would not do. A writer whose claim landed in a
            // chunk detached above loaded `current` before the exchange, so
            // the IPI's barrier on its CPU comes after that load, and so
            // after its unpublish, which is visible to every CPU when this
            // returns: a reader that (A) does not find inside a section
            // starts after (A) reached its CPU, after this, and cannot load
            // the unpublished object (docs/design.md §5, "Late claims";
            // docs/model retire.pml). The fence modes need nothing more:
            // the writer's own (B) is a fence between its unpublish and its
            // load of `current`.
            if !detached.isEmpty { domain._orderRetiringThreads() }
            // One grace period for the whole batch, shared with concurrent
            // synchronize() callers and pollers.
            domain._waitForSequence(domain._snapshotState()._sequence)
        }
        resumeSequenceWaiters(domain)

        var count = 0
        // Items run and not yet added to `processed`. A callback may be a
        // barrier's marker, so everything run before it, and the marker
        // itself, is added before it runs: a barrier that returns then sees
        // none of what it waited for as pending. (Adding once per batch let
        // `pendingCallbacks` read non-zero just after `barrier()`, found by
        // the ThreadSanitizer run, whose slowdown widened the window.)
        var uncounted = 0
        rcu_shim_set_runs_callbacks(1)
        for (shard, head, counted) in detached {
            // Claims that landed in the head after it was detached.
            let late = min(head.claimed.load(ordering: .acquiring), _RetiredChunk.capacity) - counted
            if late > 0 { shard.accounted.wrappingAdd(late, ordering: .releasing) }
            // The chain runs newest to oldest; process oldest first, so each
            // shard's items run in the order they were queued.
            var chain: [_RetiredChunk] = []
            var link: _RetiredChunk? = head
            while let chunk = link {
                chain.append(chunk)
                link = chunk.next
            }
            for chunk in chain.reversed() {
                let claimed = min(chunk.claimed.load(ordering: .acquiring), _RetiredChunk.capacity)
                for index in 0..<claimed {
                    // A load and a store, not an exchange: after the grace
                    // period this chunk is the worker's alone (every writer
                    // that claimed a slot stored before leaving the read
                    // section the grace period waited for; no writer can
                    // reach a detached chunk any more).
                    let bits = chunk.items[index].load(ordering: .acquiring)
                    chunk.items[index].store(0, ordering: .relaxed)
                    // The writer stored before leaving its read section, and
                    // the grace period waited for that section (the canary
                    // waited for its writers above).
                    if bits == 0 { fatalError("swift-rcu: reclamation slot empty after a grace period of \(domain)") }
                    if bits & Self.callbackTag != 0 {
                        // Release: pairs with the acquire load in `pending`;
                        // the marker's acq_rel `arrive` follows it.
                        processed.wrappingAdd(uncounted + 1, ordering: .releasing)
                        uncounted = 0
                    } else {
                        uncounted += 1
                    }
                    Self.run(bits)
                }
                count += claimed
                // Per chunk, not per batch: a waiting retirer's bound on its
                // wait counts this as progress (see applyBackpressure).
                if uncounted > 0 {
                    processed.wrappingAdd(uncounted, ordering: .releasing)
                    uncounted = 0
                }
                recycle(chunk)
            }
        }
        rcu_shim_set_runs_callbacks(0)
        if count > 0 {
            if uncounted > 0 { processed.wrappingAdd(uncounted, ordering: .releasing) }
            rcu_shim_word_increment(progressWord)
            _ = rcu_shim_futex_wake(progressWord, Int32.max)
        }
        return needsGracePeriod || count > 0
    }

    private static func run(_ bits: UInt) {
        if bits & callbackTag != 0 {
            let callback = Unmanaged<_DeferredCallback>.fromOpaque(UnsafeRawPointer(bitPattern: bits & ~callbackTag)!)
            callback.takeRetainedValue().body()
        } else {
            Unmanaged<AnyObject>.fromOpaque(UnsafeRawPointer(bitPattern: bits)!).release()
        }
    }

    private func resumeSequenceWaiters(_ domain: RCUDomain) {
        let completed = domain._completedSequence()
        let ready: [CheckedContinuation<Void, Never>] = requests.withLock { requests in
            var ready: [CheckedContinuation<Void, Never>] = []
            requests.sequenceWaiters.removeAll { entry in
                guard entry.0 <= completed else { return false }
                ready.append(entry.1)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

}

/// Counts down the markers of one barrier; the last one resumes or wakes it.
internal final class _BarrierMarkers: @unchecked Sendable {
    // @unchecked Sendable: `remaining` is atomic; `continuation` is written
    // in init and resumed once, by the marker that brings the count to zero.
    let remaining: Atomic<Int>
    private let continuation: CheckedContinuation<Void, Never>?

    init(count: Int, continuation: CheckedContinuation<Void, Never>?) {
        remaining = Atomic(count)
        self.continuation = continuation
    }

    func arrive() {
        if remaining.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
            continuation?.resume()
        }
    }
}

/// What the worker thread holds: a strong reference to its domain.
private final class _WorkerContext {
    let domain: RCUDomain
    let generation: Int
    init(_ domain: RCUDomain, generation: Int) {
        self.domain = domain
        self.generation = generation
    }
}

internal func _monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}
