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
}

extension ReadSideImpl {
    func threadBegin() {}
    func threadEnd() {}
    @inline(__always)
    func dereference(_ published: Published) -> Int {
        published.load()
    }
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

/// The flavors rcu-stress knows, by contract name.
enum FlavorName: String, CaseIterable {
    case rcu
    case rcuAtomic = "rcu-atomic"
    case rcuFence = "rcu-fence"
    case liburcu = "liburcu-memb"
    case broken
}

/// This library's domains for the rcu flavors. Created on first use.
enum Domains {
    static let atomic = RCUDomain(configuration: .init(allowsRseq: false))
    static let fence = RCUDomain(configuration: .init(allowsMembarrier: false))
    static var broken: RCUDomain {
        var configuration = RCUDomain.Configuration()
        configuration._skipsGracePeriods = true
        return RCUDomain(configuration: configuration)
    }

    static func impl(for flavor: FlavorName) -> RCUImpl? {
        switch flavor {
        case .rcu: return RCUImpl(name: flavor.rawValue, domain: .shared)
        case .rcuAtomic: return RCUImpl(name: flavor.rawValue, domain: atomic)
        case .rcuFence: return RCUImpl(name: flavor.rawValue, domain: fence)
        case .broken: return RCUImpl(name: flavor.rawValue, domain: broken)
        case .liburcu: return nil
        }
    }
}
