import Synchronization
import _RCUShims

/// An RCU domain: readers enter cheap read sections, updaters wait for a grace
/// period, after which no reader that began before the wait still runs.
///
/// Readers increment a per-CPU lock counter when they enter and a per-CPU
/// unlock counter when they leave, for one of two period indices. On x86_64
/// Linux each increment is one plain add committed inside a restartable
/// sequence (rseq): no atomic instruction, no fence, and no thread registration.
/// ``synchronize()`` uses `membarrier(2)` as the heavy fence and waits, in two
/// phases around a period flip, until the lock and unlock sums of the old index
/// agree. docs/design.md gives the algorithm and its correctness argument.
///
/// Domains are independent, like kernel SRCU domains: a reader of one never
/// delays a grace period of another, so a slow subsystem can have its own.
///
/// ```swift
/// let rcu = RCUDomain.shared
/// let name = rcu.read { table.load()?.name }   // inlined, nests
/// rcu.synchronize()                             // every earlier reader is done
/// ```
///
/// Where rseq or membarrier is missing (valgrind, seccomp, a glibc tunable,
/// another architecture), the domain falls back to atomic counters or
/// reader-side fences; ``mode`` reports what it chose and ``modeReasons`` why.
///
/// - Warning: Calling ``synchronize()`` inside a read section of the same domain
///   on the same thread waits for itself forever. Debug builds stop with a clear
///   message; release builds cannot afford the per-thread bookkeeping and hang.
public final class RCUDomain: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable after init
    // except the Atomic and Mutex ones, which synchronise themselves; the
    // counter block behind `_state` is written only through the atomic
    // helpers and rseq critical sections of _RCUShims, which are designed for
    // concurrent use from every thread (docs/design.md).

    /// The counter block (header line + one slot per possible CPU), in C memory
    /// so the rseq asm gets a stable address.
    @usableFromInline internal let _state: UnsafeMutablePointer<rcu_shim_state>
    /// True in the rseq + membarrier mode: lock and unlock complete in the
    /// inlined sequence (in every other mode it fails at its bound check).
    internal let _inlineFastPath: Bool
    /// The rseq area the inlined fast path arms, as an offset from the
    /// thread pointer: glibc's `__rseq_offset` in the rseq+membarrier mode,
    /// the stand-in area's otherwise (see `rcu_shim_standin_offset`). An
    /// immutable field, so read loops hold it in a register.
    @usableFromInline internal let _fastOffset: Int64
    /// glibc's `__rseq_offset` (0 without rseq), for the slow path's attempts.
    internal let _rseqOffset: Int
    internal let _usesRseq: Bool
    internal let _usesFences: Bool
    /// The `atomic+seqcst` mode: every ordering point is a seq_cst RMW
    /// (ThreadSanitizer builds, RCU_FORCE_SEQCST). Implies `_usesFences`
    /// (no membarrier; the short futex timeout) and no rseq.
    internal let _pairsBySeqCst: Bool
    internal let _membarrierRestartsRseq: Bool
    internal let _skipsGracePeriods: Bool
    /// A process-unique number, for debug bookkeeping and diagnostics.
    @usableFromInline internal let _id: UInt64

    /// Grace-period sequence: odd while a grace period runs, advanced by 2 per
    /// grace period. See `GracePeriod.swift`.
    internal let _gpSequence = Atomic<UInt64>(0)
    internal let _gpLock = _RCUMutex<_GracePeriodCounters>(_GracePeriodCounters())
    /// When the running grace period started (monotonic ns), 0 when none runs.
    internal let _gpStartedAt = Atomic<UInt64>(0)
    /// Blocking waits (synchronize, synchronize(until:), barrier) now running
    /// on threads inside a `read {}` section of some domain; stall reports
    /// name them (Diagnostics.swift).
    internal let _waitsInsideReadSections = Atomic<Int>(0)
    /// Times the inlined rseq fast path failed (an abort: preemption,
    /// migration, a signal or a membarrier IPI inside the sequence), counted
    /// on the slow path only, for tests and diagnostics.
    internal let _fastPathMisses = Atomic<Int>(0)
    /// Statistics counts (Diagnostics.swift), outside `_gpLock`.
    internal let _statistics = _RCUMutex<_DomainStatistics>(_DomainStatistics())
    /// Stall reports: the threshold (0 = off) and the handler.
    internal let _stallTimeoutNanoseconds: UInt64
    internal let _stallHandler = _RCUMutex<@Sendable (RCUStallReport) -> Void>(RCUDomain.defaultStallHandler)
    /// Deferred reclamation: queues, worker, memory bound.
    internal let _reclaimer: _Reclaimer

    /// The mode this domain chose when it was created.
    public let mode: RCUMode
    /// Why the domain chose its mode: one line per fallback taken, empty when
    /// it runs in the fastest mode (`rseq+membarrier`).
    public let modeReasons: [String]

    /// The process-wide default domain.
    ///
    /// Created on first use with ``Configuration/default``. Use an independent
    /// ``init(configuration:)`` domain for a subsystem whose readers may stay
    /// long in their sections, so they cannot delay everyone else's grace periods.
    public static let shared = RCUDomain()

    private static let _nextID = Atomic<UInt64>(1)

    /// Creates an independent domain.
    ///
    /// - Parameter configuration: what the domain may use; the environment
    ///   variables `RCU_FORCE_ATOMIC=1`, `RCU_FORCE_FENCE=1` and
    ///   `RCU_FORCE_SEQCST=1` force the fallbacks on top of it unless
    ///   ``Configuration/honorsEnvironment`` is `false`.
    /// - Complexity: O(possible CPUs) memory, 128 bytes per CPU. The first
    ///   domain in a process also registers `membarrier(2)`, which can take a
    ///   few milliseconds once the process has threads.
    /// - Warning: An environment switch with a value other than
    ///   1/true/yes/on or 0/false/no/off stops the process with a message.
    public init(configuration: Configuration = .default) {
        var reasons: [String] = []

        var wantsRseq = configuration.allowsRseq
        var wantsMembarrier = configuration.allowsMembarrier
        if !wantsRseq { reasons.append("rseq disabled by configuration") }
        if !wantsMembarrier { reasons.append("membarrier disabled by configuration") }
        // ThreadSanitizer models neither rseq commits (asm), membarrier(2)
        // nor fences, so it would report the pairing of the fast modes as
        // races: in its builds, and when forced, every pairing is a seq_cst
        // RMW it understands (docs/design.md §8).
        var seqCst = false
        if rcu_shim_built_with_tsan() != 0 {
            seqCst = true
            reasons.append("ThreadSanitizer build: readers and grace periods pair through seq_cst atomics")
        } else if configuration.forcesSequentiallyConsistent {
            seqCst = true
            reasons.append("seq_cst pairing forced by configuration")
        }
        if configuration.honorsEnvironment {
            // Parsed even when the build already decided, so a bad value
            // still stops the process.
            if _forceSwitch("RCU_FORCE_SEQCST"), !seqCst {
                seqCst = true
                reasons.append("seq_cst pairing forced by RCU_FORCE_SEQCST")
            }
            if _forceSwitch("RCU_FORCE_ATOMIC"), wantsRseq, !seqCst {
                wantsRseq = false
                reasons.append("rseq disabled by RCU_FORCE_ATOMIC")
            }
            if _forceSwitch("RCU_FORCE_FENCE"), wantsMembarrier, !seqCst {
                wantsMembarrier = false
                reasons.append("membarrier disabled by RCU_FORCE_FENCE")
            }
        }

        if seqCst {
            wantsRseq = false
            wantsMembarrier = false
        }
        var usesRseq = false
        if wantsRseq {
            if let problem = _Platform.rseqProblem() {
                reasons.append(problem)
            } else {
                usesRseq = true
            }
        }
        var usesMembarrier = false
        var restartsRseq = false
        if wantsMembarrier {
            let membarrier = _Platform.membarrier
            if let problem = membarrier.problem {
                reasons.append(problem)
            } else {
                usesMembarrier = membarrier.expedited
                restartsRseq = membarrier.expeditedRseq
                if usesRseq && !restartsRseq {
                    reasons.append("membarrier lacks PRIVATE_EXPEDITED_RSEQ: the flip is fenced with PRIVATE_EXPEDITED")
                }
            }
        }

        let slots = UInt32(max(1, _Platform.possibleCPUs))
        guard let state = rcu_shim_state_create(slots) else {
            fatalError("swift-rcu: cannot allocate counters for \(slots) CPUs")
        }
        _state = state
        let inlineFastPath = usesRseq && usesMembarrier
        _rseqOffset = Int(state.pointee.header.rseq_offset)
        _fastOffset = inlineFastPath ? Int64(_rseqOffset) : rcu_shim_standin_offset()
        let rseqBound = configuration._failsEveryRseqAttempt ? 0 : slots
        rcu_shim_set_bounds(state, inlineFastPath ? rseqBound : 0, usesRseq ? rseqBound : 0)
        _usesRseq = usesRseq
        _usesFences = !usesMembarrier
        _pairsBySeqCst = seqCst
        _membarrierRestartsRseq = usesMembarrier && restartsRseq
        _inlineFastPath = inlineFastPath
        _skipsGracePeriods = configuration._skipsGracePeriods
        if let timeout = configuration.stallTimeout, timeout > .zero {
            // Saturating: `.seconds(Int64.max)` means "never", not a trap.
            let (seconds, attoseconds) = timeout.components
            let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
            let (total, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
            _stallTimeoutNanoseconds = overflow || carry ? .max : total
        } else {
            _stallTimeoutNanoseconds = 0
        }
        _reclaimer = _Reclaimer(shardCount: Int(slots), maxPending: max(1, configuration.maxPendingCallbacks))
        _id = Self._nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        mode = RCUMode(counters: usesRseq ? .rseq : .atomic,
                       ordering: seqCst ? .sequentiallyConsistent : usesMembarrier ? .membarrier : .fence)
        modeReasons = reasons
        _ForkSupport.register(self)
    }

    /// - Warning: A domain must not be deinitialised while a read section of
    ///   it is open: that section's unlock would write freed memory. The
    ///   deinitialiser checks the counts and stops with a message instead.
    deinit {
        _ForkSupport.unregister(self)
        let open = _openSections()
        if open != 0 {
            fatalError("swift-rcu: RCUDomain deinitialised with \(open) read section(s) still open")
        }
        rcu_shim_state_destroy(_state)
    }

    /// Number of slots (possible CPUs) in the counter block.
    internal var _slotCount: Int { Int(_state.pointee.header.slot_count) }

    /// Read sections entered and not yet left, summed over both indices.
    /// Exact only when no reader runs concurrently.
    internal func _openSections() -> Int64 {
        var open: UInt64 = 0
        for index in 0..<2 {
            let unlocks = rcu_shim_sum_unlocks(_state, index)
            rcu_shim_full_fence()
            open &+= rcu_shim_sum_locks(_state, index) &- unlocks
        }
        return Int64(bitPattern: open)
    }
}

extension RCUDomain: CustomStringConvertible {
    /// `RCUDomain(#id, mode, N CPUs)`.
    public var description: String {
        "RCUDomain(#\(_id), \(mode), \(_slotCount) CPUs)"
    }
}

// MARK: - Introspection for tests and diagnostics

extension RCUDomain {
    /// The current period (its low bit is the index new readers count under).
    internal var _currentPeriod: UInt64 { rcu_shim_load_period(_state) }

    /// Lock increments counted so far, over both indices, by kind.
    internal func _lockCounts() -> (rseq: UInt64, atomic: UInt64) {
        var rseq: UInt64 = 0
        var atomic: UInt64 = 0
        for slot in 0..<_slotCount {
            let counters = rcu_shim_slot_at(_state, UInt32(slot))!
            rseq &+= counters.pointee.lock.0 &+ counters.pointee.lock.1
            atomic &+= counters.pointee.alock.0 &+ counters.pointee.alock.1
        }
        return (rseq, atomic)
    }
}
