// The read-side implementations rcu-stress compares. Every workload is
// generic over `ReadSideImpl`, so each implementation gets its own
// specialised loop with its read lock and unlock inlined: no closure call, no
// existential, no retain between the loop and the primitive.
import CLiburcu
import Glibc
@_spi(RCUTesting) import RCU
import Synchronization

protocol ReadSideImpl: Sendable {
    /// The contract's `impl` / `flavor` name.
    var name: String { get }
    /// Called once on each thread before it uses the impl (liburcu registers).
    func threadBegin()
    /// Called once on each thread after its last use.
    func threadEnd()
    /// Runs `body` in a read section.
    func section<R>(_ body: () -> R) -> R
    /// Waits for pre-existing readers (for locks: takes the write side once).
    func synchronize()
    /// rcu_dereference of the published payload; call inside `section`.
    func dereference(_ published: Published) -> Int
    /// Runs `body` after a grace period, on the flavor's callback thread
    /// (call_rcu / defer).
    func deferred(_ body: @escaping @Sendable () -> Void)
    /// Waits for a grace period without blocking a thread.
    func synchronizeAsync() async
    /// Starts a polled grace period.
    func startPoll() -> PollHandle
    /// Whether the polled grace period has completed.
    func pollCompleted(_ handle: PollHandle) -> Bool
    /// Waits until every deferred callback queued so far has run.
    func barrier()
    /// Allocates a small object and hands it to the flavor's deferred
    /// reclamation (the retire benchmark's unit of work).
    func retireNewObject()

    /// retire-only's objects, made before the clock starts.
    associatedtype RetirePool = Void
    /// Makes `count` objects for retire-only (not timed).
    func makeRetirePool(count: Int) -> RetirePool
    /// Readies the pool for a cycle of retires (not timed): the library's
    /// retire consumes a reference, so each cycle hands it a fresh one.
    func refillRetirePool(_ pool: RetirePool, count: Int)
    /// Retires the pool's object `index` (the retire-only unit of work).
    func retirePooled(_ pool: RetirePool, _ index: Int)
    /// Frees the pool after the last cycle's barrier.
    func releaseRetirePool(_ pool: RetirePool, count: Int)
}

/// What the retire benchmark allocates and retires.
final class RetiredObject {
    var payload: (Int, Int, Int, Int) = (0, 0, 0, 0)
}

/// retire-only's objects for the library: `objects` keeps each alive, so the
/// worker's release after a grace period frees nothing, as liburcu's no-op
/// callback frees nothing; `handed` holds the +1 reference each retire
/// consumes, taken before the clock starts.
final class RCURetirePool {
    let objects: [RetiredObject]
    let handed: UnsafeMutablePointer<Unmanaged<RetiredObject>>
    init(count: Int) {
        objects = (0..<count).map { _ in RetiredObject() }
        handed = .allocate(capacity: count)
    }
    deinit { handed.deallocate() }
}

/// A polled grace period: this library's state, or a flag a callback sets.
enum PollHandle {
    case state(RCUGracePeriodState)
    case flag(OneShot)
}

/// A completion a callback signals and a thread (or task) waits for.
final class OneShot: @unchecked Sendable {
    // @unchecked Sendable: `word` is allocated once and only used through
    // atomics and futex calls.
    private let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
    init() { word.initialize(to: 0) }
    deinit { word.deallocate() }
    var isSet: Bool { UnsafeAtomicWord(word).load() != 0 }
    func set() {
        UnsafeAtomicWord(word).store(1)
        _ = stress_futex_wake(word)
    }
    func wait() {
        while UnsafeAtomicWord(word).load() == 0 { _ = stress_futex_wait(word, 0, 10_000_000) }
    }
}

/// Atomic access to a C word (a sequentially consistent load and store are
/// all OneShot needs; the futex syscalls order the rest).
struct UnsafeAtomicWord {
    let pointer: UnsafeMutablePointer<UInt32>
    init(_ pointer: UnsafeMutablePointer<UInt32>) { self.pointer = pointer }
    func load() -> UInt32 { stress_atomic_load(pointer) }
    func store(_ value: UInt32) { stress_atomic_store(pointer, value) }
}

/// Runs an async operation to completion from a plain thread.
func blockOn(_ operation: @escaping @Sendable () async -> Void) {
    let done = OneShot()
    Task.detached {
        await operation()
        done.set()
    }
    done.wait()
}

extension ReadSideImpl {
    func threadBegin() {}
    func threadEnd() {}
    func deferred(_ body: @escaping @Sendable () -> Void) {
        synchronize()
        body()
    }
    func synchronizeAsync() async { synchronize() }
    func startPoll() -> PollHandle {
        let flag = OneShot()
        deferred { flag.set() }
        return .flag(flag)
    }
    func pollCompleted(_ handle: PollHandle) -> Bool {
        if case .flag(let flag) = handle { return flag.isSet }
        return false
    }
    func barrier() {}
    /// Locks have no deferred reclamation: take the write side, then free.
    func retireNewObject() {
        let object = RetiredObject()
        synchronize()
        _ = object
    }
    @inline(__always)
    func dereference(_ published: Published) -> Int {
        published.load()
    }
}

extension ReadSideImpl where RetirePool == Void {
    func makeRetirePool(count: Int) {}
    func refillRetirePool(_ pool: Void, count: Int) {}
    /// Locks have no deferred reclamation: each retire takes the write side.
    func retirePooled(_ pool: Void, _ index: Int) { synchronize() }
    func releaseRetirePool(_ pool: Void, count: Int) {}
}

/// A published payload, reachable both from Swift (an atomic word) and from
/// liburcu (a C pointer slot), so every impl dereferences the same memory.
final class Published: @unchecked Sendable {
    // @unchecked Sendable: `slot` and `payload` are written once in init and
    // only read afterwards; `word` is atomic.
    let payload: UnsafeMutablePointer<Int>
    let slot: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let word: Atomic<UInt>

    init(value: Int) {
        payload = .allocate(capacity: 1)
        payload.initialize(to: value)
        slot = .allocate(capacity: 1)
        slot.initialize(to: UnsafeMutableRawPointer(payload))
        word = Atomic(UInt(bitPattern: payload))
    }

    /// Acquire load of the published pointer, then one field read.
    @inline(__always)
    func load() -> Int {
        UnsafePointer<Int>(bitPattern: word.load(ordering: .acquiring))!.pointee
    }

    deinit {
        payload.deallocate()
        slot.deallocate()
    }
}

struct RCUImpl: ReadSideImpl {
    let name: String
    let domain: RCUDomain

    @inline(__always)
    func section<R>(_ body: () -> R) -> R { domain.read(body) }
    func synchronize() { domain.synchronize() }
    func deferred(_ body: @escaping @Sendable () -> Void) { domain.defer(body) }
    func synchronizeAsync() async { await domain.synchronize() }
    func startPoll() -> PollHandle { .state(domain.pollState()) }
    func pollCompleted(_ handle: PollHandle) -> Bool {
        if case .state(let state) = handle { return domain.poll(state) }
        return false
    }
    func barrier() { domain.barrier() }
    @inline(__always)
    func retireNewObject() { domain.retire(RetiredObject()) }

    func makeRetirePool(count: Int) -> RCURetirePool { RCURetirePool(count: count) }
    func refillRetirePool(_ pool: RCURetirePool, count: Int) {
        for index in 0..<count { pool.handed[index] = Unmanaged.passRetained(pool.objects[index]) }
    }
    @inline(__always)
    func retirePooled(_ pool: RCURetirePool, _ index: Int) {
        domain.retire(pool.handed[index].takeRetainedValue())
    }
    func releaseRetirePool(_ pool: RCURetirePool, count: Int) {}
}

struct LiburcuImpl: ReadSideImpl {
    var name: String { "liburcu-memb" }
    func threadBegin() { clu_register_thread() }
    func threadEnd() { clu_unregister_thread() }

    @inline(__always)
    func section<R>(_ body: () -> R) -> R {
        clu_read_lock()
        let result = body()
        clu_read_unlock()
        return result
    }

    func synchronize() { clu_synchronize() }

    /// call_rcu. liburcu's callback thread runs `body`.
    func deferred(_ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(CallbackBox(body)).toOpaque()
        clu_call_rcu(context, { context in
            Unmanaged<CallbackBox>.fromOpaque(context!).takeRetainedValue().body()
        })
    }

    /// Resumed by a call_rcu callback.
    func synchronizeAsync() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            deferred { continuation.resume() }
        }
    }

    // Polling: the Debian package is liburcu 0.13, which predates
    // start_poll_synchronize_rcu (0.14); the default startPoll() does what
    // 0.14's does internally, a call_rcu callback that marks completion.

    func barrier() { clu_barrier() }

    /// malloc an object with an embedded rcu_head and call_rcu(free) it, as a
    /// C user of liburcu writes it.
    @inline(__always)
    func retireNewObject() { clu_retire_new_object(0) }

    /// retire-only: preallocated objects with embedded rcu_heads, handed to
    /// call_rcu with a callback that frees nothing.
    func makeRetirePool(count: Int) -> UnsafeMutablePointer<clu_object> {
        let pool = UnsafeMutablePointer<clu_object>.allocate(capacity: count)
        pool.initialize(repeating: clu_object(), count: count)
        return pool
    }
    func refillRetirePool(_ pool: UnsafeMutablePointer<clu_object>, count: Int) {}
    @inline(__always)
    func retirePooled(_ pool: UnsafeMutablePointer<clu_object>, _ index: Int) {
        clu_retire_preallocated(pool + index)
    }
    func releaseRetirePool(_ pool: UnsafeMutablePointer<clu_object>, count: Int) { pool.deallocate() }

    @inline(__always)
    func dereference(_ published: Published) -> Int {
        clu_dereference(published.slot)!.assumingMemoryBound(to: Int.self).pointee
    }
}

/// glibc's rwlock, writer-preferring so a busy reader cannot starve the writer.
final class RWLockImpl: ReadSideImpl, @unchecked Sendable {
    // @unchecked Sendable: the rwlock is the synchronisation; its storage is
    // allocated once and never moves.
    let name = "pthread-rwlock"
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(lock, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    @inline(__always)
    func section<R>(_ body: () -> R) -> R {
        pthread_rwlock_rdlock(lock)
        let result = body()
        pthread_rwlock_unlock(lock)
        return result
    }

    func synchronize() {
        pthread_rwlock_wrlock(lock)
        pthread_rwlock_unlock(lock)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }
}

/// Synchronization.Mutex: readers and writers alike take the one lock.
final class MutexImpl: ReadSideImpl {
    let name = "mutex"
    private let mutex = Mutex<Void>(())

    @inline(__always)
    func section<R>(_ body: () -> R) -> R {
        mutex.withLock { _ in body() }
    }

    func synchronize() {
        mutex.withLock { _ in }
    }
}

/// The flavors rcu-stress knows, by contract name. The five `rcu*` flavors
/// ask for the library's five modes (rcu-fence and rcu-atomic-fence differ
/// only where rseq is available; on a machine without it every flavor but
/// rcu-seqcst falls back to atomic counters).
enum FlavorName: String, CaseIterable {
    case rcu
    case rcuAtomic = "rcu-atomic"
    case rcuFence = "rcu-fence"
    case rcuAtomicFence = "rcu-atomic-fence"
    case rcuSeqCst = "rcu-seqcst"
    case liburcu = "liburcu-memb"
    case broken

    /// Every flavor that must pass: all but the canary.
    static let correct: [FlavorName] = allCases.filter { $0 != .broken }

    /// The mode this flavor asks the library for (nil: not the library's).
    var requestedMode: String? {
        switch self {
        case .rcu, .broken: return "rseq+membarrier"
        case .rcuAtomic: return "atomic+membarrier"
        case .rcuFence: return "rseq+fence"
        case .rcuAtomicFence: return "atomic+fence"
        case .rcuSeqCst: return "atomic+seqcst"
        case .liburcu: return nil
        }
    }
}

/// This library's domains for the rcu flavors. Created on first use.
enum Domains {
    static let atomic = RCUDomain(configuration: .init(allowsRseq: false))
    static let fence = RCUDomain(configuration: .init(allowsMembarrier: false))
    static let atomicFence = RCUDomain(configuration: .init(allowsRseq: false, allowsMembarrier: false))
    static let seqCst: RCUDomain = {
        var configuration = RCUDomain.Configuration()
        configuration.forcesSequentiallyConsistent = true
        return RCUDomain(configuration: configuration)
    }()
    static let broken: RCUDomain = {
        var configuration = RCUDomain.Configuration()
        configuration._skipsGracePeriods = true
        return RCUDomain(configuration: configuration)
    }()

    static func impl(for flavor: FlavorName) -> RCUImpl? {
        switch flavor {
        case .rcu: return RCUImpl(name: flavor.rawValue, domain: .shared)
        case .rcuAtomic: return RCUImpl(name: flavor.rawValue, domain: atomic)
        case .rcuFence: return RCUImpl(name: flavor.rawValue, domain: fence)
        case .rcuAtomicFence: return RCUImpl(name: flavor.rawValue, domain: atomicFence)
        case .rcuSeqCst: return RCUImpl(name: flavor.rawValue, domain: seqCst)
        case .broken: return RCUImpl(name: flavor.rawValue, domain: broken)
        case .liburcu: return nil
        }
    }
}

/// A closure boxed for a C callback context.
final class CallbackBox {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
