// The SVG chart of a bench run: each impl's ns/op as a ratio to liburcu-memb's
// from the same run, one row per case. Written directly, no plotting library.
import Glibc

func ratioChartSVG(_ results: [BenchResult], machine: Machine) -> String {
    struct Row { let label: String; let impl: String; let ratio: Double; let ns: Double }
    var rows: [Row] = []
    var groups: [String] = []
    for result in results {
        guard let reference = referenceResult(for: result, in: results) else { continue }
        let label = "\(result.suite) \(result.benchCase) x\(result.threads)"
        if !groups.contains(label) { groups.append(label) }
        rows.append(Row(label: label, impl: result.impl,
                        ratio: result.nanosecondsPerOperation / reference.nanosecondsPerOperation,
                        ns: result.nanosecondsPerOperation))
    }
    let palette = ["rcu": "#1f77b4", "rcu-atomic": "#6baed6", "rcu-fence": "#9ecae1",
                   "liburcu-memb": "#d62728", "pthread-rwlock": "#7f7f7f", "mutex": "#bcbd22",
                   "RCUSnapshot": "#1f77b4", "RCUReference": "#6baed6", "Mutex": "#bcbd22"]
    // Log scale from 1/16x to 64x, so 1.0x sits in a fixed place.
    let minimumLog = -4.0, maximumLog = 6.0
    let left = 330.0, plotWidth = 520.0, barHeight = 13.0, groupGap = 14.0, top = 70.0
    func x(_ ratio: Double) -> Double {
        let clamped = min(max(log2(max(ratio, 1e-9)), minimumLog), maximumLog)
        return left + (clamped - minimumLog) / (maximumLog - minimumLog) * plotWidth
    }
    var y = top
    var body = ""
    for group in groups {
        let members = rows.filter { $0.label == group }
        body += "<text x=\"10\" y=\"\(y + 10)\" font-weight=\"bold\">\(group)</text>\n"
        y += 16
        for row in members {
            let color = palette[row.impl] ?? "#444"
            let x0 = x(1), x1 = x(row.ratio)
            body += "<text x=\"20\" y=\"\(y + 10)\">\(row.impl)</text>\n"
            body += "<rect x=\"\(min(x0, x1))\" y=\"\(y)\" width=\"\(max(abs(x1 - x0), 1))\" height=\"\(barHeight - 2)\" fill=\"\(color)\"/>\n"
            body += "<text x=\"\(max(x0, x1) + 4)\" y=\"\(y + 10)\">\(fixed(row.ratio, 2))x (\(formatDouble(row.ns, significant: 3)) ns)</text>\n"
            y += barHeight
        }
        y += groupGap
    }
    var axis = ""
    for exponent in stride(from: Int(minimumLog), through: Int(maximumLog), by: 2) {
        let ratio = pow(2.0, Double(exponent))
        let label = exponent < 0 ? "1/\(Int(1 / ratio))x" : "\(Int(ratio))x"
        axis += "<line x1=\"\(x(ratio))\" y1=\"\(top - 8)\" x2=\"\(x(ratio))\" y2=\"\(y)\" stroke=\"#ddd\"/>\n"
        axis += "<text x=\"\(x(ratio))\" y=\"\(top - 12)\" text-anchor=\"middle\">\(label)</text>\n"
    }
    axis += "<line x1=\"\(x(1))\" y1=\"\(top - 8)\" x2=\"\(x(1))\" y2=\"\(y)\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n"
    let width = left + plotWidth + 170
    let height = y + 20
    return """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="10" y="20" font-size="14" font-weight="bold">rcu-stress bench: ns/op relative to liburcu-memb in the same run (log scale, left is faster)</text>
        <text x="10" y="38">\(machine.summary)</text>
        \(axis)\(body)</svg>

        """
}
