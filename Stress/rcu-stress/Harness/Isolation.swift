// The broken flavor on workloads whose containers free their nodes (hashmap,
// list): a grace period that does not wait lets readers walk freed memory,
// so the run may end in a crash instead of a counted violation. Such a run
// happens in a child process (this executable, spawned afresh): the child's
// JSON is the result when it finishes, and a child killed by a signal
// counts as caught, with the signal reported. The pointer workload recycles
// its storage and never needs this.
//
// The child's result travels on a descriptor of its own (never 0, 1 or 2,
// named in its environment), so a parent whose standard output is closed or
// full still gets it; the child's own standard output and error go to
// /dev/null. The parent reads until the child has exited (a fork of the
// child's may hold the descriptor past that). A signal that interrupts the
// parent is forwarded to the child (which stops and reports "interrupted":
// true), and a child interrupted on its own interrupts the parent too
// (Interrupt.adopt).
import Glibc
import Synchronization

/// Set in the child's environment to the descriptor its result goes to.
let isolatedChildVariable = "RCU_STRESS_ISOLATED_CHILD"

/// In an isolated child, the descriptor its result goes to; nil elsewhere.
let isolatedChildDescriptor: Int32? = getenv(isolatedChildVariable)
    .flatMap { Int32(String(cString: $0)) }
    .flatMap { $0 > 2 ? $0 : nil }

func needsIsolation(_ options: TortureOptions) -> Bool {
    options.flavor == .broken && (options.workload == .hashmap || options.workload == .list)
        && isolatedChildDescriptor == nil
}

func runIsolatedTorture(_ options: TortureOptions) -> TortureResult {
    var arguments = ["torture", "--flavor", options.flavor.rawValue, "--workload", options.workload.rawValue,
                     "--updaters", String(options.updaters), "--duration", String(options.duration),
                     "--gp", options.gracePeriodMode.rawValue, "--dwell", String(options.dwell), "--json"]
    if let readers = options.readers { arguments += ["--readers", String(readers)] }
    if !options.faults.isEmpty { arguments += ["--faults", options.faults.map(\.rawValue).joined(separator: ",")] }
    if options.stopOnViolation { arguments.append("--stop-on-violation") }

    var result = TortureResult(options: options)
    let start = nowNanoseconds()
    let child = spawnSelf(arguments)
    result.seconds = Double(nowNanoseconds() - start) / 1e9
    result.mode = Domains.impl(for: options.flavor)?.domain.mode.description
    let output = child.output
    // The child announces each detector when it first fires ("fired NAME",
    // Detectors.swift), so they are known even when it died afterwards.
    result.fired = output.split(separator: "\n").compactMap { line in
        line.hasPrefix("fired ") ? String(line.dropFirst(6)) : nil
    }
    let signal = child.status & 0x7F
    let exitCode = (child.status >> 8) & 0xFF
    // Interrupted: by a signal forwarded from here, or one of its own (it
    // then exits 128 + n, or dies of it before its handler is installed).
    let interruption: Int32? = child.forwarded
        ?? (signal == SIGINT || signal == SIGTERM ? signal : nil)
        ?? (signal == 0 && (exitCode == 128 + SIGINT || exitCode == 128 + SIGTERM) ? exitCode - 128 : nil)
    if let interruption {
        result.interrupted = true
        Interrupt.adopt(interruption)
    }
    // A signal that came after the child had finished still stops this run.
    if Interrupt.isRequested { result.interrupted = true }
    if signal != 0 && interruption == nil {
        // Killed by a signal: the broken grace period let a reader use freed
        // memory (or the reclaimer found a slot a grace period should have
        // waited for). The canary counts as caught only if its detector
        // fired before that (TortureResult.caught).
        result.violations = max(1, result.fired.count)
        result.details = [("crashed_signal", Int(signal))]
        return result
    }
    for (key, path) in [("reads", \TortureResult.reads), ("updates", \.updates), ("grace_periods", \.gracePeriods),
                        ("violations", \.violations), ("leaked", \.leaked), ("signal_reads", \.signalReads)] {
        result[keyPath: path] = jsonInteger(output, key) ?? 0
    }
    for key in ["missed_stable", "duplicates", "poisoned", "out_of_order", "traversals", "buckets_min", "buckets_max", "forks", "fork_failures", "rss_start_kb", "rss_end_kb", "rss_peak_kb"] {
        if let value = jsonInteger(output, key) { result.details.append((key, value)) }
    }
    if let seconds = jsonNumber(output, "duration_s") { result.seconds = seconds }
    if output.contains("\"interrupted\":true") { result.interrupted = true }
    return result
}

/// Runs this executable with `arguments` and its result descriptor; returns
/// the wait status, what the child wrote there, and the signal forwarded to
/// it, if any.
private func spawnSelf(_ arguments: [String]) -> (status: Int32, output: String, forwarded: Int32?) {
    guard let (readEnd, writeEnd) = closeOnExecPipe() else { fatalError("rcu-stress: pipe failed (errno \(errno))") }
    // The child's copy of the write end gets a number of its own above 2;
    // dup2 clears close-on-exec there. (Were it the write end's own number,
    // dup2 would do nothing and leave close-on-exec set, hence the choice.)
    let childDescriptor: Int32 = writeEnd == 3 ? 4 : 3
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, writeEnd, childDescriptor)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let executable = "/proc/self/exe"
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    var environment: [UnsafeMutablePointer<CChar>?] = [strdup("\(isolatedChildVariable)=\(childDescriptor)")]
    var entry = environ
    while let variable = entry.pointee {
        if !String(cString: variable).hasPrefix(isolatedChildVariable + "=") { environment.append(strdup(variable)) }
        entry += 1
    }
    environment.append(nil)
    var child = pid_t()
    let spawned = posix_spawn(&child, executable, &actions, nil, argv, environment)
    posix_spawn_file_actions_destroy(&actions)
    for pointer in argv + environment { free(pointer) }
    close(writeEnd)
    guard spawned == 0 else { fatalError("rcu-stress: cannot spawn itself (error \(spawned))") }

    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    var forwarded: Int32? = nil
    var killAt = UInt64.max
    var status: Int32 = 0
    var exited = false
    while true {
        if forwarded == nil, !exited, let signal = Interrupt.signalNumber {
            // Stop the child as this process stops; it reports what it has.
            // (Never once reaped: its pid may belong to another process.)
            kill(child, signal)
            forwarded = signal
            killAt = nowNanoseconds() + 5_000_000_000
        }
        if !exited && nowNanoseconds() > killAt {
            kill(child, SIGKILL)  // it did not stop within 5 s of the signal
            killAt = .max
        }
        if Interrupt.wait(for: readEnd, milliseconds: 100, wakesOnSignal: forwarded == nil) {
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count > 0 { bytes += buffer[0..<count] } else if count == 0 || errno != EINTR { break }
        } else if exited {
            // The child is gone and nothing more came: done, even if a fork
            // of its own (the fork fault) still holds the descriptor open.
            break
        } else if waitpid(child, &status, WNOHANG) == child {
            exited = true  // read once more: what it wrote before exiting
        }
    }
    close(readEnd)
    if !exited { while waitpid(child, &status, 0) < 0 && errno == EINTR {} }
    return (status, String(decoding: bytes, as: UTF8.self), forwarded)
}

/// The integer after `"key":` in a flat JSON object.
func jsonInteger(_ text: String, _ key: String) -> Int? {
    jsonNumber(text, key).map { Int($0) }
}

func jsonNumber(_ text: String, _ key: String) -> Double? {
    let needle = Array("\"\(key)\":".utf8)
    let bytes = Array(text.utf8)
    guard bytes.count >= needle.count else { return nil }
    for start in 0...(bytes.count - needle.count) where bytes[start..<(start + needle.count)].elementsEqual(needle) {
        let digits = bytes[(start + needle.count)...].prefix { "0123456789.-e+".utf8.contains($0) }
        return Double(String(decoding: digits, as: UTF8.self))
    }
    return nil
}

/// Drives the broken flavor's writer ops (list and hashmap) from the
/// domain's own reclamation worker. The broken domain's grace periods do not wait, and the library's
/// reclaimer relies on them internally too: a retire from another thread can
/// race with the worker detaching that retire's half-filled slot, which stops
/// the process ("reclamation slot empty after a grace period"). Retires that
/// the worker queues from its own callbacks cannot race that way, so the
/// canary frees early (what it must show) without tripping the reclaimer.
final class WorkerDriver: Sendable {
    let started = Atomic<Bool>(false)
    let stop = Atomic<Bool>(false)
    let done = Atomic<Bool>(false)

    /// The updater thread's step while the worker runs the writer: the
    /// first call runs `start` (which queues the worker's first step), and
    /// every call idles for a millisecond.
    func updaterStep(start: () -> Void) {
        if !started.exchange(true, ordering: .relaxed) { start() }
        sleepSeconds(0.001)
    }

    /// At the top of each worker step: whether the run is over; the step
    /// then empties the container (`drain`, without waiting) and is done.
    func stopsHere(drain: () -> Void) -> Bool {
        guard stop.load(ordering: .acquiring) else { return false }
        drain()
        done.store(true, ordering: .releasing)
        return true
    }

    /// The end of the run: stops the worker's chain of steps (its last one
    /// drains), or drains here if it never started; then waits, with no
    /// barrier (that would queue from this thread), until the worker has
    /// freed what the drain retired. Returns the leases still live.
    func finish(drain: () -> Void, pool: LeasePool) -> Int {
        stop.store(true, ordering: .releasing)
        if started.load(ordering: .relaxed) {
            _ = waitWithBound(seconds: 30) { done.load(ordering: .acquiring) }
        } else {
            drain()
        }
        _ = waitWithBound(seconds: 30) { pool.live == 0 }
        return pool.live
    }
}

/// Polls `condition` until it holds or `seconds` pass.
func waitWithBound(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = nowNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if nowNanoseconds() > deadline { return false }
        sleepSeconds(0.0002)
    }
    return true
}
