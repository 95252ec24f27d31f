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
    /// The canary: grace periods that wait for nobody (`makeBrokenDomain()`).
    /// Not in `allCases`: tests that claim to catch an early free or a missed
    /// reader take `withCanary` and must report a violation for it.
    case canary

    /// Every mode, or in a ThreadSanitizer build, where every configuration
    /// runs `atomic+seqcst`, only `automatic`: the others would repeat it.
    public static var allCases: [TestMode] {
        threadSanitizerBuild ? [.automatic] : [.automatic, .atomic, .fence, .atomicFence, .seqCst]
    }

    /// Every mode, then the canary.
    public static var withCanary: [TestMode] { allCases + [.canary] }

    /// `withCanary` for tests whose canary reads objects that were really
    /// freed: a sanitizer reports that use-after-free (AddressSanitizer) or
    /// the race between the free and the read (ThreadSanitizer) and ends
    /// the child before its detector can, so sanitizer runs leave the canary
    /// out; plain debug runs (`make test`) have it.
    public static var withCanaryReadingFreedMemory: [TestMode] {
        threadSanitizerBuild || addressSanitizerBuild ? allCases : withCanary
    }


    /// Whether this is the broken domain.
    public var isCanary: Bool { self == .canary }

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
        case .canary:
            var configuration = RCUDomain.Configuration()
            configuration._skipsGracePeriods = true
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

/// Checks the violations a concurrency test saw: none in a correct mode, and
/// at least one for the canary, which shows that the check can fail.
public func expectViolations(_ count: Int, in mode: TestMode, _ what: String,
                             sourceLocation: SourceLocation = #_sourceLocation) {
    if mode.isCanary {
        #expect(count > 0, "the canary was not caught (\(what)): this check cannot fail", sourceLocation: sourceLocation)
    } else {
        #expect(count == 0, "\(count) violation(s): \(what)", sourceLocation: sourceLocation)
    }
}

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

/// How much slower than a plain debug build the sanitizers run: bounds of
/// watchdogs and waits are multiplied by it.
public let sanitizerSlowdown: Double = threadSanitizerBuild ? 6 : addressSanitizerBuild ? 3 : 1

/// Runs `body`; if it has not returned within `seconds` (times the
/// sanitizer slowdown), prints what hung and stops the process with exit
/// status 70. A deadlock then fails the run instead of hanging it: Swift
/// Testing's `.timeLimit` cannot end a test blocked in a synchronous wait.
public func withWatchdog<Result>(_ what: String, seconds: Double, _ body: () throws -> Result) rethrows -> Result {
    let done = Flag()
    let limit = seconds * sanitizerSlowdown
    let deadline = monotonicSeconds() + limit
    let watchdog = TestThread {
        while !done.isSet {
            if monotonicSeconds() > deadline {
                let message = "watchdog: \(what) did not finish within \(limit) s: a hang\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
                _exit(70)
            }
            sleepMicroseconds(5_000)
        }
    }
    defer {
        done.set()
        watchdog.join()
    }
    return try body()
}

/// Ends an exit-test child that ran a canary whose early frees are real (a
/// crash there must not take the test run with it): exit 3 with a marker
/// when the test's detector fired, exit 0 when it saw nothing.
public func exitWithCanaryResult(_ violations: Int) -> Never {
    if violations > 0 {
        let message = "canary caught: \(violations) violation(s)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(3)
    }
    _exit(0)
}

/// Attempts a canary child gets: one whose early frees are real may crash
/// before its detector runs (a reader follows a freed node's link).
public let canaryAttempts = 16

/// Whether a canary child's detector fired (exit 3 with the marker).
public func canaryWasCaught(_ result: ExitTest.Result?) -> Bool {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self).contains("canary caught:")
}

/// Runs a canary child (`attempt`, an exit test whose body ends with
/// `exitWithCanaryResult`) until its detector fires, at most
/// `canaryAttempts` times, and records an issue if it never did: a child
/// that crashed first, or exited without a report, does not count.
public func expectCanaryCaughtInChild(_ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                                      _ attempt: () async -> ExitTest.Result?) async {
    var results: [ExitTest.Result?] = []
    for _ in 0..<canaryAttempts {
        results.append(await attempt())
        if canaryWasCaught(results.last!) { break }
    }
    let caught = results.contains(where: canaryWasCaught)
    let crashes = results.filter { if case .signal = $0?.exitStatus { return true } else { return false } }.count
    let lastBytes = results.last??.standardErrorContent ?? []
    let lastOutput = String(decoding: lastBytes.prefix(400).map { $0 >= 32 && $0 < 127 || $0 == 10 ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    #expect(caught, "the canary's detector did not fire (\(what)) in \(results.count) attempts (\(crashes) crashed first): this check cannot fail; the last child's status \(String(describing: results.last??.exitStatus)), stderr began: \(lastOutput)",
            sourceLocation: sourceLocation)
}

/// Called where a canary child's detector fires: ends the child at once with
/// the marker, before the early free it saw can crash it (a reader that goes
/// on walking freed nodes soon does). Does nothing in a correct mode.
@inline(never)
public func stopCanaryAtFirstViolation(_ mode: TestMode) {
    if mode.isCanary { exitWithCanaryResult(1) }
}
