// rcu-stress's command line, on swift-argument-parser: one ParsableCommand
// per subcommand (the tour, torture, bench, storm, oracle, stall), each with
// its --help and its checks in validate(). The contract's shape of errors is
// kept: a bad argument is one line on standard error, `rcu-stress: <message>`,
// naming the bad value and the accepted ones, and exit 64; help (`--help`,
// `-h`, `help [command]`) goes to standard output with exit 0.
import ArgumentParser

/// A subcommand's work once its arguments are valid; returns the exit code
/// (0 the expected outcome, 1 not; finish() lets a signal's 128 + n win).
protocol StressCommand: ParsableCommand {
    func execute() -> Int32
}

struct RCUStress: ParsableCommand {
    static let commands: [any StressCommand.Type] = [
        TourCommand.self, TortureCommand.self, BenchCommand.self, StormCommand.self, OracleCommand.self,
        StallCommand.self,
    ]

    static let configuration = CommandConfiguration(
        commandName: "rcu-stress",
        abstract: "Torture tester and benchmark for swift-rcu, with liburcu as the reference.",
        discussion: """
            With no command (or only --quick) it runs the default tour. Long runs show live \
            progress on standard error when it is a terminal; --json prints one object on \
            standard output and nothing else goes there. A bad argument prints one line and \
            exits 64; SIGINT and SIGTERM stop every command within about a second, print what \
            it has (JSON with "interrupted": true) and exit 130 or 143; a result that cannot be \
            written is reported on standard error (exit 74; 73 for an --svg path that cannot be \
            opened, checked before measuring).

            Environment: RCU_FORCE_ATOMIC=1 / RCU_FORCE_FENCE=1 / RCU_FORCE_SEQCST=1 force the \
            library's fallbacks for every rcu flavor.
            """,
        subcommands: commands,
        defaultSubcommand: TourCommand.self)
}

/// Parses `arguments` (without the program name), runs the command and
/// exits; never returns.
func runCommandLine(_ arguments: [String]) -> Never {
    // ArgumentParser's own `help` takes any words and prints the root's help
    // for names it does not know; here only a command's name may follow it.
    if arguments.first == "help" {
        let names = RCUStress.commands.map { $0._commandName }
        if arguments.count > 2 || arguments.dropFirst().contains(where: { !names.contains($0) }) {
            let extra = arguments.dropFirst().first { !names.contains($0) } ?? arguments[2]
            usageError("help takes at most one command name; '\(extra)' is not accepted;"
                + " accepted: \(names.joined(separator: ", "))")
        }
    }
    var command: ParsableCommand
    do {
        command = try RCUStress.parseAsRoot(arguments)
    } catch {
        exitOnParseError(error, arguments)
    }
    if let command = command as? StressCommand { finish(command.execute()) }
    do {
        try command.run()  // `help`: throws the help request
    } catch {
        exitOnParseError(error, arguments)
    }
    finish(0)
}

/// Help requests print their text on standard output and exit 0; every
/// other error is a usage error.
private func exitOnParseError(_ error: Error, _ arguments: [String]) -> Never {
    if RCUStress.exitCode(for: error) == .success {
        let text = RCUStress.fullMessage(for: error)
        emit(text.hasSuffix("\n") ? String(text.dropLast()) : text)
        finish(0)
    }
    usageError(oneLineMessage(RCUStress.message(for: error), arguments: arguments))
}

/// The contract's usage error: one line on standard error, exit 64.
func usageError(_ message: String) -> Never {
    printError("rcu-stress: \(message)")
    finish(ExitStatus.usage)
}

/// ArgumentParser's message folded into one line: a bulleted list of
/// accepted values becomes a comma list, other lines are joined with "; ",
/// and where the message does not name the accepted values or options
/// (an unknown option or argument, a missing value, a value of the wrong
/// type) they are appended, from the command's own help.
func oneLineMessage(_ message: String, arguments: [String]) -> String {
    var parts: [String] = []
    var bullets: [String] = []
    for line in message.split(separator: "\n").map({ $0.trimmingSpaces }) where !line.isEmpty {
        if line.hasPrefix("- ") { bullets.append(String(line.dropFirst(2))) } else { parts.append(line) }
    }
    var text = parts.joined(separator: "; ")
    if !bullets.isEmpty { text += " " + bullets.joined(separator: ", ") }
    let command = RCUStress.commands.first { $0._commandName == arguments.first }
    let entries = helpEntries(of: command ?? TourCommand.self)
    if text.hasPrefix("Unknown option") {
        text += "; accepted: " + entries.flatMap(\.names).filter { $0.hasPrefix("--") }.joined(separator: ", ")
    } else if text.hasPrefix("Unexpected argument") && command == nil {
        text += "; accepted: " + (RCUStress.commands.map { $0._commandName } + ["help", "--quick"]).joined(separator: ", ")
            + " (or no argument for the tour)"
    } else if (text.hasPrefix("Missing value for '") || text.hasPrefix("The value '")) && !text.contains("Please provide"),
              let option = text.split(separator: "'").first(where: { $0.hasPrefix("--") })?.split(separator: " ").first,
              let entry = entries.first(where: { $0.names.contains(String(option)) }) {
        text += "; accepted: " + entry.accepted
    }
    return text
}

/// One OPTIONS entry of a command's help: its names, its value's name, and
/// its text.
private struct HelpEntry {
    let names: [String]
    let valueName: String?
    let text: String

    /// What the option accepts, in words: the listed values of an
    /// enumeration, else what its value's name stands for.
    var accepted: String {
        if let start = text.firstRange(of: "(values: ") {
            return String(text[start.upperBound...].prefix { $0 != ";" && $0 != ")" })
        }
        switch valueName {
        case "n": return "an integer"
        case "seconds": return "seconds, a number > 0 and <= 86400"
        case "list": return "a comma list"
        case "file": return "a file path"
        default: return valueName.map { "a \($0)" } ?? "no value"
        }
    }
}

/// The OPTIONS entries of a command's help (one line each at this width).
private func helpEntries(of command: any StressCommand.Type) -> [HelpEntry] {
    command.helpMessage(columns: 10_000).split(separator: "\n").compactMap { line in
        let entry = line.trimmingSpaces
        guard entry.hasPrefix("-") else { return nil }
        // The names column ends at the first run of two spaces.
        let words = entry.split(separator: " ", omittingEmptySubsequences: false)
        let column = words.prefix { !$0.isEmpty }
        let names = column.filter { $0.hasPrefix("-") }.map { String($0.hasSuffix(",") ? $0.dropLast() : $0) }
        let valueName = column.first { $0.hasPrefix("<") }.map { String($0.dropFirst().dropLast()) }
        return HelpEntry(names: names, valueName: valueName, text: words.dropFirst(column.count).joined(separator: " "))
    }
}

extension Substring {
    var trimmingSpaces: String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
