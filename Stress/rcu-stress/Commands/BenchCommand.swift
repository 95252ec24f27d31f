// `rcu-stress bench`: the command line of the benchmark suites, and their
// output (table or JSON, and the --svg chart).
import ArgumentParser

struct BenchCommand: StressCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark this library against liburcu and locks, every impl in the same process.",
        discussion: """
            For every case each impl runs in interleaved rounds (A, B, C, A, B, C, ...), so slow \
            phases of a noisy machine hit every impl alike; a result is the median over rounds. \
            'vs liburcu' is each impl's ns/op over the liburcu reference's from the same run \
            (liburcu-memb; cds_lfht for hashmap, cds_list_rcu for list). Exit 0, 64 for a bad \
            argument, 73 if --svg cannot be opened (checked before measuring), 74 if a result \
            could not be written, 130/143 on SIGINT/SIGTERM (the results measured so far are \
            printed, with "interrupted": true in the JSON).

            Impls per suite (--impls): \(Suite.allCases.filter { $0 != .all }.map { "\($0.rawValue): \($0.implNames.joined(separator: ", "))" }.joined(separator: "; ")).
            """)

    @Option(help: "The suite to run (all: every one).")
    var suite: Suite = .all

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Seconds per (case, thread count, impl), split over the rounds.", valueName: "seconds"))
    var duration = 1.0

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Reader threads of the cases that take a count (default: 1 and the online CPUs).",
                               valueName: "n"))
    var threads: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Interleaved rounds per case; results are medians.", valueName: "n"))
    var rounds = 5

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Only these impls of the chosen suite, a comma list of its names (see below).",
                               valueName: "list"))
    var impls: String?

    @Flag(help: "Print one JSON object on stdout (the contract's), nothing else.")
    var json = false

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Also write an SVG chart of each impl's ratio to the liburcu reference to this file.",
                               valueName: "file"))
    var svg: String?

    mutating func validate() throws {
        try checkSeconds(duration, option: "--duration")
        if let threads { try checkCount(threads, option: "--threads", range: 1...256) }
        try checkCount(rounds, option: "--rounds", range: 1...1000)
        if let impls { _ = try parseCommaList(impls, option: "--impls", accepted: suite.implNames) }
        if let svg, svg.isEmpty { throw ValidationError("--svg needs a file path") }
    }

    func execute() -> Int32 {
        var options = BenchOptions()
        options.suite = suite
        options.duration = duration
        options.threads = threads
        options.rounds = rounds
        options.json = json
        options.impls = impls.map { (try? parseCommaList($0, option: "--impls", accepted: suite.implNames)) ?? [] }
        // The chart's path is checked (opened) before anything is measured.
        var chart: OutputFile? = nil
        if let svg {
            do {
                chart = try OutputFile(svg)
            } catch {
                printError("rcu-stress: --svg \(error.message)")
                return ExitStatus.cannotCreate
            }
        }
        let results = runBench(options)
        if options.json {
            emit(benchJSON(results, suite: options.suite, interrupted: Interrupt.isRequested))
        } else {
            emit("rcu-stress bench --suite \(options.suite.rawValue): \(Machine.current.summary)")
            emit(benchTable(results))
            if Interrupt.isRequested { emit("interrupted: partial results") }
        }
        if let chart, let problem = chart.replaceContents(with: ratioChartSVG(results, machine: Machine.current)) {
            printError("rcu-stress: --svg \(problem)")
            return ExitStatus.ioError
        }
        return 0
    }
}
