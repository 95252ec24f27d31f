// Helpers shared by the RCU and RCUCollections tests: the modes every
// behavioural test runs in, real threads, and bounded waits (a bound that
// expires is a failure, never a measured duration).
#if canImport(Glibc)
import Glibc
#endif
@_spi(RCUTesting) import RCU
import Synchronization
import Testing

/// The domain configurations behavioural tests run under.
public enum TestMode: String, CaseIterable, CustomTestStringConvertible, Sendable {
    /// The library's default choice (honours RCU_FORCE_* like any user's).
    case automatic
    /// rseq forced off: atomic counters.
    case atomic
    /// membarrier forced off: reader-side fences.
    case fence
    /// Both fallbacks.
    case atomicFence
    /// The ThreadSanitizer mode (`atomic+seqcst`), forced by configuration.
    case seqCst

    /// Every mode, or in a ThreadSanitizer build, where every configuration
    /// runs `atomic+seqcst`, only `automatic`: the others would repeat it.
    public static var allCases: [TestMode] {
        threadSanitizerBuild ? [.automatic] : [.automatic, .atomic, .fence, .atomicFence, .seqCst]
    }

    public var testDescription: String { rawValue }

    /// The configuration of this mode.
    public var configuration: RCUDomain.Configuration {
        switch self {
        case .automatic: return RCUDomain.Configuration()
        case .atomic: return .init(allowsRseq: false, honorsEnvironment: false)
        case .fence: return .init(allowsMembarrier: false, honorsEnvironment: false)
        case .atomicFence: return .init(allowsRseq: false, allowsMembarrier: false, honorsEnvironment: false)
        case .seqCst:
            var configuration = RCUDomain.Configuration(honorsEnvironment: false)
            configuration.forcesSequentiallyConsistent = true
            return configuration
        }
    }

    public func makeDomain() -> RCUDomain {
        RCUDomain(configuration: configuration)
    }
}

/// Whether the ThreadSanitizer runtime is in the process (its entry point is
/// exported), found independently of the library's own compile-time check.
public let threadSanitizerBuild: Bool = dlsym(nil, "__tsan_init") != nil

/// Whether the AddressSanitizer runtime is in the process.
public let addressSanitizerBuild: Bool = dlsym(nil, "__asan_init") != nil

/// The canary: a domain whose synchronize() does not wait.
public func makeBrokenDomain() -> RCUDomain {
    var configuration = RCUDomain.Configuration()
    configuration._skipsGracePeriods = true
    return RCUDomain(configuration: configuration)
}

/// A joinable pthread.
public final class TestThread: @unchecked Sendable {
    // @unchecked Sendable: `handle` is written once before the thread is
    // shared and read only by join().
    private var handle = pthread_t()
    private final class Body { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }

    public init(_ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let status = pthread_create(&handle, nil, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        precondition(status == 0)
    }

    public func join() { pthread_join(handle, nil) }
}

/// A flag threads set and wait for.
public final class Flag: Sendable {
    public init() {}
    private let value = Atomic<Bool>(false)
    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }

    /// Waits until set; false if `seconds` pass first.
    @discardableResult
    public func wait(seconds: Double = 30) -> Bool {
        waitUntil(seconds: seconds) { self.isSet }
    }
}

/// Polls `condition` until it holds; false if `seconds` pass first.
public func waitUntil(seconds: Double = 30, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicSeconds() + seconds
    while !condition() {
        if monotonicSeconds() > deadline { return false }
        sleepMicroseconds(100)
    }
    return true
}

public func monotonicSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
}

public func sleepMicroseconds(_ microseconds: Int) {
    var request = timespec(tv_sec: microseconds / 1_000_000, tv_nsec: (microseconds % 1_000_000) * 1000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// A shareable counter.
public final class Count: Sendable {
    public init() {}
    private let value = Atomic<Int>(0)
    public func add(_ amount: Int = 1) { value.add(amount, ordering: .relaxed) }
    public var current: Int { value.load(ordering: .relaxed) }
}
