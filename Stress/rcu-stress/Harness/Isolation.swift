// The broken flavor on workloads whose containers free their nodes (hashmap,
// list): a grace period that does not wait lets readers walk freed memory,
// so the run may end in a crash instead of a counted violation. Such a run
// happens in a child process (this executable, spawned afresh): the child's
// JSON is the result when it finishes, and a child killed by a signal
// counts as caught, with the signal reported. The pointer workload recycles
// its storage and never needs this.
import Glibc
import Synchronization

/// Set in the child's environment so it runs the torture itself.
let isolatedChildVariable = "RCU_STRESS_ISOLATED_CHILD"

func needsIsolation(_ options: TortureOptions) -> Bool {
    options.flavor == .broken && (options.workload == .hashmap || options.workload == .list)
        && getenv(isolatedChildVariable) == nil
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
    let (status, output) = spawnSelf(arguments, environment: "\(isolatedChildVariable)=1")
    result.seconds = Double(nowNanoseconds() - start) / 1e9
    // The child announces each detector when it first fires ("fired NAME",
    // Detectors.swift), so they are known even when it died afterwards.
    result.fired = output.split(separator: "\n").compactMap { line in
        line.hasPrefix("fired ") ? String(line.dropFirst(6)) : nil
    }
    let signal = status & 0x7F
    if signal != 0 {
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
    result.mode = Domains.impl(for: options.flavor)?.domain.mode.description
    return result
}

/// Runs this executable with `arguments`, stdout to a pipe and stderr to
/// /dev/null; returns the wait status and the output.
private func spawnSelf(_ arguments: [String], environment extra: String) -> (Int32, String) {
    var pipeEnds: [Int32] = [0, 0]
    guard pipe(&pipeEnds) == 0 else { fatalError("rcu-stress: pipe failed (errno \(errno))") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let executable = "/proc/self/exe"
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    var environment: [UnsafeMutablePointer<CChar>?] = [strdup(extra)]
    var entry = environ
    while let variable = entry.pointee {
        environment.append(strdup(variable))
        entry += 1
    }
    environment.append(nil)
    var child = pid_t()
    let spawned = posix_spawn(&child, executable, &actions, nil, argv, environment)
    posix_spawn_file_actions_destroy(&actions)
    for pointer in argv + environment { free(pointer) }
    close(pipeEnds[1])
    guard spawned == 0 else { fatalError("rcu-stress: cannot spawn itself (error \(spawned))") }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
        if count > 0 { bytes += buffer[0..<count] } else if count == 0 || errno != EINTR { break }
    }
    close(pipeEnds[0])
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    return (status, String(decoding: bytes, as: UTF8.self))
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
