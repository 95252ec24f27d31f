/// How a domain's readers count and how its grace periods order memory.
///
/// A domain picks its mode once, when it is created, from what the kernel,
/// glibc and the architecture offer, from its ``RCUDomain/Configuration``,
/// and from the `RCU_FORCE_ATOMIC` and `RCU_FORCE_FENCE` environment
/// variables. Every mode is correct; they differ in read-side cost.
/// ThreadSanitizer builds always run `atomic+seqcst`, the only mode whose
/// ordering ThreadSanitizer can see; `RCU_FORCE_SEQCST=1` forces it elsewhere.
///
/// | counters | ordering | read lock + unlock |
/// |---|---|---|
/// | `.rseq` | `.membarrier` | two plain increments in restartable sequences, compiler barriers only |
/// | `.atomic` | `.membarrier` | two atomic increments (lock-prefixed on x86) |
/// | `.rseq` | `.fence` | rseq increments plus a seq_cst fence in lock and in unlock |
/// | `.atomic` | `.fence` | atomic increments plus the two fences |
/// | `.atomic` | `.sequentiallyConsistent` | seq_cst atomic increments plus one seq_cst RMW of a per-domain word in lock (ThreadSanitizer builds) |
public struct RCUMode: Sendable, Hashable, CustomStringConvertible {
    /// How read lock and unlock increment the per-CPU counters.
    public enum Counters: String, Sendable, Hashable {
        /// Plain increments committed inside an rseq critical section
        /// (x86_64 Linux with glibc's rseq registration).
        case rseq
        /// Atomic read-modify-write increments, on any architecture.
        case atomic
    }

    /// What orders a reader's accesses against a grace period.
    public enum Ordering: String, Sendable, Hashable {
        /// Readers use compiler barriers only; `synchronize()` issues
        /// `membarrier(2)` (PRIVATE_EXPEDITED_RSEQ when rseq is registered,
        /// PRIVATE_EXPEDITED otherwise) to fence every running thread.
        case membarrier
        /// Readers issue a seq_cst fence in lock and in unlock;
        /// `synchronize()` uses ordinary fences.
        case fence
        /// Every ordering point is a seq_cst read-modify-write that
        /// ThreadSanitizer models: seq_cst counter increments, and in place
        /// of each fence a seq_cst RMW of one per-domain word, shared by
        /// readers and grace periods. Chosen in ThreadSanitizer builds (which
        /// see neither rseq, membarrier nor fences) or by `RCU_FORCE_SEQCST`;
        /// always with `.atomic` counters. Slower than `.fence` (readers of a
        /// domain contend on the word); meant for checking, not production.
        case sequentiallyConsistent = "seqcst"
    }

    /// How readers count.
    public var counters: Counters
    /// How reader and updater order memory.
    public var ordering: Ordering

    /// Creates a mode description.
    public init(counters: Counters, ordering: Ordering) {
        self.counters = counters
        self.ordering = ordering
    }

    /// `"rseq+membarrier"`, `"atomic+membarrier"`, `"rseq+fence"`, `"atomic+fence"`
    /// or `"atomic+seqcst"`.
    public var description: String { "\(counters.rawValue)+\(ordering.rawValue)" }
}

extension RCUDomain {
    /// Choices a domain makes when it is created.
    ///
    /// The defaults give the fastest mode the machine supports. Turning a
    /// feature off forces the fallback even where the feature exists: tests use
    /// it to run every mode in one process, and debuggers and valgrind need it
    /// (single-stepping aborts every restartable sequence).
    public struct Configuration: Sendable {
        /// Use rseq counters when the kernel and glibc provide them. Default `true`.
        public var allowsRseq: Bool
        /// Use `membarrier(2)` when the kernel provides it. Default `true`.
        public var allowsMembarrier: Bool
        /// Apply `RCU_FORCE_ATOMIC`, `RCU_FORCE_FENCE` and `RCU_FORCE_SEQCST`
        /// from the environment on top of this configuration. Default `true`.
        public var honorsEnvironment: Bool
        /// Run the `atomic+seqcst` mode (``RCUMode/Ordering/sequentiallyConsistent``)
        /// even outside a ThreadSanitizer build. Default `false`; ThreadSanitizer
        /// builds use that mode whatever this says.
        public var forcesSequentiallyConsistent: Bool = false
        /// The memory bound of deferred reclamation: past this many pending
        /// callbacks and retired objects, ``RCUDomain/retire(_:)`` and
        /// ``RCUDomain/defer(_:)`` called outside a read section wait for the
        /// worker. Default 1,048,576.
        ///
        /// A writer checks the bound when it finds its CPU's 256-item chunk
        /// full, before a fresh chunk is installed, and waits from two
        /// chunks per CPU below the ceiling on. So the ceiling holds for any
        /// number of retiring threads outside read sections. A bound below
        /// 1,024 × the number of possible CPUs (any value works, down to 1
        /// and below) acts as that one, which
        /// ``RCUDomain/pendingCallbacksCeiling`` reports: with less than two
        /// chunks per CPU to wait for, writers could wait on a level that a
        /// few items queued by callbacks keep up forever.
        public var maxPendingCallbacks: Int = 1 << 20

        /// How long a grace period may wait for readers before it reports a
        /// stall to ``RCUDomain/stallHandler`` (and again after each further
        /// `stallTimeout`). Default 10 seconds; `nil` turns reports off.
        public var stallTimeout: Duration? = .seconds(10)

        /// A test-only canary: `synchronize()` returns without waiting for
        /// readers. It exists to prove that torture tests can fail.
        ///
        /// - Warning: Never set this outside a test harness: every reader may
        ///   then see freed memory.
        @_spi(RCUTesting) public var _skipsGracePeriods: Bool = false
        /// Test-only: every rseq attempt fails its CPU bounds check, so the
        /// read side must take its bounded-retry and atomic fallback path.
        @_spi(RCUTesting) public var _failsEveryRseqAttempt: Bool = false

        /// Creates a configuration.
        public init(allowsRseq: Bool = true, allowsMembarrier: Bool = true, honorsEnvironment: Bool = true) {
            self.allowsRseq = allowsRseq
            self.allowsMembarrier = allowsMembarrier
            self.honorsEnvironment = honorsEnvironment
        }

        /// The fastest mode available, subject to the environment.
        public static var `default`: Configuration { Configuration() }
    }
}

/// Parses the value of an `RCU_FORCE_*` variable: unset or empty is `false`;
/// `1`, `true`, `yes`, `on` are `true`; `0`, `false`, `no`, `off` are `false`;
/// anything else is `nil` (a misconfiguration the caller reports).
internal func _parseForceSwitch(_ value: String?) -> Bool? {
    guard let value else { return false }
    switch value.lowercased() {
    case "", "0", "false", "no", "off": return false
    case "1", "true", "yes", "on": return true
    default: return nil
    }
}

/// Reads an `RCU_FORCE_*` switch, stopping with a clear message on a bad value:
/// silently ignoring `RCU_FORCE_ATOMIC=yse` would run a debugging session in
/// the mode the user meant to turn off.
internal func _forceSwitch(_ name: String) -> Bool {
    let raw = _environmentValue(name)
    guard let parsed = _parseForceSwitch(raw) else {
        fatalError("swift-rcu: \(name)=\(raw ?? "") is not a valid switch; use 1/true/yes/on or 0/false/no/off")
    }
    return parsed
}
