// Threads, clocks and CPU facts for rcu-stress. Plain pthreads: the workloads
// need real threads that block, spin and get pinned, not tasks.
import CLiburcu
import Glibc
import Synchronization

/// Monotonic nanoseconds.
func nowNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}

/// A joinable pthread running a closure.
struct StressThread: ~Copyable {
    private let handle: pthread_t

    private final class Payload {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts `body` on a new thread.
    init(_ body: @escaping @Sendable () -> Void) {
        let payload = Unmanaged.passRetained(Payload(body)).toOpaque()
        var handle = pthread_t()
        let status = pthread_create(&handle, nil, { context in
            let payload = Unmanaged<Payload>.fromOpaque(context!).takeRetainedValue()
            payload.body()
            return nil
        }, payload)
        // fatalError, not precondition: release builds keep its message.
        if status != 0 { fatalError("rcu-stress: pthread_create failed (\(status) \(String(cString: strerror(status))))") }
        self.handle = handle
    }

    /// Waits for the thread to finish.
    consuming func join() {
        pthread_join(handle, nil)
    }
}

/// Runs `count` threads, each calling `body(index)`, and joins them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    var threads: [StressThreadBox] = []
    for index in 0..<count {
        threads.append(StressThreadBox(StressThread { body(index) }))
    }
    for box in threads { box.join() }
}

/// A class box so noncopyable threads can live in an array.
final class StressThreadBox {
    private var thread: StressThread?
    init(_ thread: consuming StressThread) { self.thread = consume thread }
    func join() {
        if let thread = thread.take() { thread.join() }
    }
}

/// Online CPUs.
func onlineCPUs() -> Int {
    max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
}

/// Pins the calling thread to `cpu % onlineCPUs()`. Best effort.
func pinCurrentThread(to cpu: Int) {
    _ = stress_pin_to_cpu(Int32(cpu % onlineCPUs()))
}

/// Releases waiting threads together, so a measured interval starts when all
/// threads run.
final class StartGate: Sendable {
    private let arrived = Atomic<Int>(0)
    private let open = Atomic<Bool>(false)
    private let parties: Int

    init(parties: Int) { self.parties = parties }

    /// Called by each worker: announce arrival, then spin until opened.
    func arriveAndWait() {
        arrived.add(1, ordering: .acquiringAndReleasing)
        while !open.load(ordering: .acquiring) { sched_yield() }
    }

    /// Called by the coordinator: wait for every worker, then open.
    func openWhenAllArrived() {
        while arrived.load(ordering: .acquiring) < parties { sched_yield() }
        open.store(true, ordering: .releasing)
    }
}

/// A stop flag that workers poll between batches.
final class StopFlag: Sendable {
    private let stopped = Atomic<Bool>(false)
    var isSet: Bool { stopped.load(ordering: .relaxed) }
    func set() { stopped.store(true, ordering: .relaxed) }
}

/// Sleeps the calling thread for `seconds`.
func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// Keeps a value alive and observable so loops that compute it are not elided.
final class Sink: Sendable {
    let value = Atomic<Int>(0)
    func consume(_ x: Int) { value.add(x, ordering: .relaxed) }
}
let sink = Sink()

/// A fast seeded generator (splitmix64): cheap enough for benchmark loops,
/// and replayable for the oracle.
struct StressRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// Seeded from the system generator.
    init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound`.
    @inline(__always)
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

private typealias ForkFunction = @convention(c) () -> pid_t
/// glibc's fork(), through dlsym: Swift marks fork unavailable, and a raw
/// system call would skip the pthread_atfork handlers being tested.
private let systemFork: ForkFunction = unsafeBitCast(dlsym(nil, "fork"), to: ForkFunction.self)

/// Forks; the child runs `check` and exits 0 if it returns true. Returns
/// whether the child exited 0 within 10 s (a hung child is killed).
func forkAndCheckChild(_ check: () -> Bool) -> Bool {
    let child = systemFork()
    if child == 0 { _exit(check() ? 0 : 1) }
    guard child > 0 else { return false }
    var status: Int32 = 0
    let deadline = nowNanoseconds() + 10_000_000_000
    while waitpid(child, &status, WNOHANG) != child {
        if nowNanoseconds() > deadline {
            kill(child, SIGKILL)
            _ = waitpid(child, &status, 0)
            return false
        }
        sleepSeconds(0.001)
    }
    return status & 0x7F == 0 && (status >> 8) & 0xFF == 0
}
