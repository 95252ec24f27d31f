// JSON and table output for rcu-stress. Hand-written: the contract's objects
// are small, and the tool should not pull in Foundation for them.
import Glibc

/// A JSON value with deterministic key order.
indirect enum JSON {
    case string(String)
    case number(Double)
    case integer(Int64)
    case bool(Bool)
    case array([JSON])
    case object([(String, JSON)])
    case null

    func render() -> String {
        switch self {
        case .string(let text): return JSON.quote(text)
        case .number(let value):
            if !value.isFinite { return "null" }
            if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
            return formatDouble(value, significant: 6)
        case .integer(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map { $0.render() }.joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.map { JSON.quote($0.0) + ":" + $0.1.render() }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                        + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// `%.*g`-style formatting without Foundation.
func formatDouble(_ value: Double, significant: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([Int32(significant), value]) { arguments in
        vsnprintf(&buffer, buffer.count, "%.*g", arguments)
    }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Fixed-point formatting.
func fixed(_ value: Double, _ digits: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([Int32(digits), value]) { arguments in
        vsnprintf(&buffer, buffer.count, "%.*f", arguments)
    }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A plain text table with right-aligned numeric columns.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []
    /// Columns aligned left (text); the others are right-aligned (numbers).
    var leftAligned: Set<Int>

    init(_ header: [String], leftAligned: Set<Int> = [0, 2]) {
        self.header = header
        self.leftAligned = leftAligned
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = header.map { $0.count }
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count {
                widths[column] = max(widths[column], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return leftAligned.contains(column) ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }
        var out = line(header) + "\n"
        out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        for row in rows { out += line(row) + "\n" }
        return out
    }
}
