// Command-line parsing for rcu-stress, per the contract in
// shared/design/stress-contract.md: a bad argument prints one line naming
// the bad value and the accepted ones, and exits 64 (EX_USAGE).
import Glibc

struct UsageError: Error {
    let message: String
}

enum Command {
    case tour(quick: Bool)
    case bench(BenchOptions)
    case torture(TortureOptions)
    case storm(StormOptions)
    case oracle(OracleOptions)
    case stall(StallOptions)
    case help
}

let usageText = """
    usage: rcu-stress                       the default tour (add --quick for a short one)
           rcu-stress torture [--flavor F] [--workload W] [--readers N] [--updaters N]
                              [--duration SECONDS] [--gp G] [--faults LIST] [--dwell N]
                              [--sabotage S] [--json]
           rcu-stress bench [--suite S] [--duration SECONDS] [--threads N] [--rounds N] [--impls LIST]
                            [--json] [--svg FILE]
           rcu-stress storm [--duration SECONDS] [--stall SECONDS] [--bound N] [--retirers N] [--json]
           rcu-stress oracle --workload W [--seed N] [--ops N] [--readers N] [--json]
           rcu-stress stall [--seconds SECONDS] [--timeout SECONDS] [--inside-read] [--json]
           rcu-stress help

      flavors F: \(FlavorName.allCases.map(\.rawValue).joined(separator: ", ")) (default rcu)
      workloads W: \(Workload.available.map(\.rawValue).joined(separator: ", ")) (default pointer)
      grace periods G: \(GracePeriodMode.available.map(\.rawValue).joined(separator: ", ")) (default sync)
      faults: comma list of \(Fault.available.map(\.rawValue).joined(separator: ", "))
      --dwell     re-reads of the element inside each read section (default 64; 8192 for
                  the broken flavor's hashmap canary)
      --sabotage  break the hashmap or list workload on purpose (\(Sabotage.allCases.map(\.rawValue).joined(separator: ", "))):
                  the run must then be caught by that fault's detector
      a correct flavor's run fails below 1000 reads and 10 updates per second of its duration

      suites S: \(Suite.allCases.map(\.rawValue).joined(separator: ", "))
      --duration  seconds per (case, thread count, impl), split over the rounds (default 1)
      --threads   reader threads for the read-side suite (default: 1 and the online CPUs)
      --rounds    interleaved rounds per case (default 5); results are medians
      --impls     only these impls of the read-side, synchronize and retire suites (comma list)
      --json      one JSON object on stdout (contract: shared/design/stress-contract.md)
      --svg       also write an SVG chart of each impl's ratio to liburcu-memb

      oracle      a seeded random operation sequence applied to this library's container
                  and to liburcu's (workloads: \(OracleWorkload.available.map(\.rawValue).joined(separator: ", "))),
                  with concurrent readers; exit 1 at the first result that differs
                  (defaults: seed 1, 1000000 ops, 1 reader)

      stall       one reader stalls for --seconds (default 12) while synchronize() waits;
                  expects one stall report per --timeout (default 10, the library's);
                  --inside-read: the misuse instead, synchronize() inside a read section of
                  the same domain, which must be reported (release builds; debug builds stop)

      storm       retire flood against a small memory bound while one reader stalls
                  (defaults: 60 s, stall 5 s, bound 65536, 2 retirers); exit 0 if the
                  peak pending, counted at each retire, stayed within the bound (bounds
                  under 1024 per possible CPU are run but not judged) and every retired
                  object was deinitialised after barrier()

    environment: RCU_FORCE_ATOMIC=1 / RCU_FORCE_FENCE=1 force the fallbacks of the 'rcu' impl.
    """

/// Parses `arguments` (without the program name).
func parseCommand(_ arguments: [String]) throws(UsageError) -> Command {
    guard let first = arguments.first else { return .tour(quick: false) }
    switch first {
    case "--quick":
        try expectNoMore(arguments.dropFirst(), after: "--quick")
        return .tour(quick: true)
    case "help", "--help", "-h":
        return .help
    case "bench":
        return .bench(try parseBench(Array(arguments.dropFirst())))
    case "torture":
        return .torture(try parseTorture(Array(arguments.dropFirst())))
    case "storm":
        return .storm(try parseStorm(Array(arguments.dropFirst())))
    case "oracle":
        return .oracle(try parseOracle(Array(arguments.dropFirst())))
    case "stall":
        return .stall(try parseStall(Array(arguments.dropFirst())))
    default:
        throw UsageError(message: "unknown command '\(first)'; accepted: torture, bench, storm, oracle, stall, help, --quick (or no argument for the tour)")
    }
}

private func expectNoMore(_ rest: ArraySlice<String>, after: String) throws(UsageError) {
    if let extra = rest.first {
        throw UsageError(message: "unexpected argument '\(extra)' after \(after)")
    }
}

/// Splits `--name value` and `--name=value` into pairs; flags get nil.
private struct OptionReader {
    var arguments: [String]
    var position = 0
    let flags: Set<String>

    mutating func next() throws(UsageError) -> (name: String, value: String?)? {
        guard position < arguments.count else { return nil }
        let argument = arguments[position]
        position += 1
        guard argument.hasPrefix("--") else {
            throw UsageError(message: "unexpected argument '\(argument)'; options start with --")
        }
        if let equals = argument.firstIndex(of: "=") {
            return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
        }
        if flags.contains(argument) { return (argument, nil) }
        guard position < arguments.count else {
            throw UsageError(message: "option \(argument) needs a value")
        }
        position += 1
        return (argument, arguments[position - 1])
    }
}

private func parseBench(_ arguments: [String]) throws(UsageError) -> BenchOptions {
    var options = BenchOptions()
    var reader = OptionReader(arguments: arguments, flags: ["--json"])
    while let (name, value) = try reader.next() {
        switch name {
        case "--suite":
            options.suite = try parseEnum(value, option: name, Suite.self)
        case "--duration":
            options.duration = try parseDuration(value, option: name)
        case "--threads":
            options.threads = try parseCount(value, option: name, range: 1...256)
        case "--rounds":
            options.rounds = try parseCount(value, option: name, range: 1...1000)
        case "--json":
            options.json = true
        case "--impls":
            let names = (value ?? "").split(separator: ",").map(String.init)
            let known = ["rcu", "rcu-atomic", "rcu-fence", "liburcu-memb", "pthread-rwlock", "mutex"]
            for name in names where !known.contains(name) {
                throw UsageError(message: "--impls '\(name)' is not accepted; accepted: \(known.joined(separator: ", "))")
            }
            guard !names.isEmpty else { throw UsageError(message: "--impls needs a comma list of \(known.joined(separator: ", "))") }
            options.impls = names
        case "--svg":
            guard let value, !value.isEmpty else { throw UsageError(message: "--svg needs a file path") }
            options.svgPath = value
        default:
            throw UsageError(message: "unknown option '\(name)' for bench; accepted: --suite, --duration, --threads, --rounds, --impls, --json, --svg")
        }
    }
    return options
}

func parseEnum<E: RawRepresentable & CaseIterable>(_ value: String?, option: String, _ type: E.Type) throws(UsageError) -> E
where E.RawValue == String {
    let value = value ?? ""
    guard let parsed = E(rawValue: value) else {
        throw UsageError(message: "\(option) '\(value)' is not accepted; accepted: \(E.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return parsed
}

func parseDuration(_ value: String?, option: String) throws(UsageError) -> Double {
    let value = value ?? ""
    guard let seconds = Double(value), seconds.isFinite, seconds > 0, seconds <= 86_400 else {
        throw UsageError(message: "\(option) '\(value)' is not accepted; accepted: seconds, a number > 0 and <= 86400")
    }
    return seconds
}

func parseCount(_ value: String?, option: String, range: ClosedRange<Int>) throws(UsageError) -> Int {
    let value = value ?? ""
    guard let count = Int(value), range.contains(count) else {
        throw UsageError(message: "\(option) '\(value)' is not accepted; accepted: an integer from \(range.lowerBound) to \(range.upperBound)")
    }
    return count
}

private func parseTorture(_ arguments: [String]) throws(UsageError) -> TortureOptions {
    var options = TortureOptions()
    var reader = OptionReader(arguments: arguments, flags: ["--json", "--stop-on-violation"])
    while let (name, value) = try reader.next() {
        switch name {
        case "--stop-on-violation":
            options.stopOnViolation = true
        case "--flavor":
            options.flavor = try parseEnum(value, option: name, FlavorName.self)
        case "--workload":
            options.workload = try parseAvailable(value, option: name, Workload.available)
        case "--readers":
            options.readers = try parseCount(value, option: name, range: 1...256)
        case "--updaters":
            options.updaters = try parseCount(value, option: name, range: 1...64)
        case "--duration":
            options.duration = try parseDuration(value, option: name)
        case "--gp":
            options.gracePeriodMode = try parseAvailable(value, option: name, GracePeriodMode.available)
        case "--faults":
            options.faults = try parseFaults(value)
        case "--dwell":
            options.requestedDwell = try parseCount(value, option: name, range: 0...1_000_000)
        case "--sabotage":
            options.sabotage = try parseEnum(value, option: name, Sabotage.self)
        case "--json":
            options.json = true
        default:
            throw UsageError(message: "unknown option '\(name)' for torture; accepted: --flavor, --workload, --readers, --updaters, --duration, --gp, --faults, --dwell, --sabotage, --json")
        }
    }
    if let sabotage = options.sabotage {
        if options.workload != .hashmap && options.workload != .list {
            throw UsageError(message: "--sabotage \(sabotage.rawValue) does not apply to --workload \(options.workload.rawValue); accepted workloads: hashmap, list")
        }
        if options.flavor == .broken {
            throw UsageError(message: "--sabotage does not combine with --flavor broken (already a canary); accepted flavors: \(FlavorName.correct.map(\.rawValue).joined(separator: ", "))")
        }
        if sabotage == .duplicateStable && options.workload == .hashmap && options.flavor != .liburcu {
            throw UsageError(message: "--sabotage duplicate-stable on the hashmap needs --flavor liburcu-memb (RCUHashMap's API cannot hold a key twice); accepted flavors: liburcu-memb")
        }
    }
    if options.flavor == .broken && options.workload == .snapshot {
        throw UsageError(message: "--flavor broken does not run the snapshot workload (RCUSnapshot frees its boxes, so a violation would crash instead of being counted); accepted workloads: pointer, hashmap, list")
    }
    return options
}

/// Like `parseEnum`, but only values already built are accepted; a value the
/// contract reserves for a later issue says so.
func parseAvailable<E: RawRepresentable & CaseIterable>(_ value: String?, option: String, _ available: [E]) throws(UsageError) -> E
where E.RawValue == String {
    let value = value ?? ""
    let accepted = available.map(\.rawValue).joined(separator: ", ")
    guard let parsed = E(rawValue: value) else {
        throw UsageError(message: "\(option) '\(value)' is not accepted; accepted: \(accepted)")
    }
    guard available.contains(where: { $0.rawValue == parsed.rawValue }) else {
        throw UsageError(message: "\(option) '\(value)' is not built yet; accepted: \(accepted)")
    }
    return parsed
}

private func parseFaults(_ value: String?) throws(UsageError) -> [Fault] {
    let value = value ?? ""
    var faults: [Fault] = []
    for name in value.split(separator: ",", omittingEmptySubsequences: false) {
        let fault = try parseAvailable(String(name), option: "--faults", Fault.available)
        if !faults.contains(fault) { faults.append(fault) }
    }
    return faults
}

private func parseStorm(_ arguments: [String]) throws(UsageError) -> StormOptions {
    var options = StormOptions()
    var reader = OptionReader(arguments: arguments, flags: ["--json"])
    while let (name, value) = try reader.next() {
        switch name {
        case "--duration": options.duration = try parseDuration(value, option: name)
        case "--stall": options.stall = try parseDuration(value, option: name)
        case "--bound": options.bound = try parseCount(value, option: name, range: 1...(1 << 30))
        case "--retirers": options.retirers = try parseCount(value, option: name, range: 1...64)
        case "--json": options.json = true
        default:
            throw UsageError(message: "unknown option '\(name)' for storm; accepted: --duration, --stall, --bound, --retirers, --json")
        }
    }
    return options
}

private func parseOracle(_ arguments: [String]) throws(UsageError) -> OracleOptions {
    var options = OracleOptions()
    var workload: OracleWorkload? = nil
    var reader = OptionReader(arguments: arguments, flags: ["--json"])
    while let (name, value) = try reader.next() {
        switch name {
        case "--workload": workload = try parseAvailable(value, option: name, OracleWorkload.available)
        case "--seed": options.seed = UInt64(try parseCount(value, option: name, range: 0...Int.max))
        case "--ops": options.operations = try parseCount(value, option: name, range: 1...1_000_000_000)
        case "--readers": options.readers = try parseCount(value, option: name, range: 0...64)
        case "--json": options.json = true
        default:
            throw UsageError(message: "unknown option '\(name)' for oracle; accepted: --workload, --seed, --ops, --readers, --json")
        }
    }
    guard let workload else {
        throw UsageError(message: "oracle needs --workload; accepted: \(OracleWorkload.available.map(\.rawValue).joined(separator: ", "))")
    }
    options.workload = workload
    return options
}

private func parseStall(_ arguments: [String]) throws(UsageError) -> StallOptions {
    var options = StallOptions()
    var reader = OptionReader(arguments: arguments, flags: ["--json", "--inside-read"])
    var secondsGiven = false
    while let (name, value) = try reader.next() {
        switch name {
        case "--seconds":
            options.seconds = try parseDuration(value, option: name)
            secondsGiven = true
        case "--timeout": options.timeout = try parseDuration(value, option: name)
        case "--json": options.json = true
        case "--inside-read": options.insideRead = true
        default:
            throw UsageError(message: "unknown option '\(name)' for stall; accepted: --seconds, --timeout, --inside-read, --json")
        }
    }
    if options.insideRead && secondsGiven {
        throw UsageError(message: "--seconds does not apply to stall --inside-read: its reader never leaves")
    }
    return options
}
