// The values rcu-stress's options accept, and the checks each command's
// validate() runs. Enumerated options are ExpressibleByArgument through
// their raw values, so ArgumentParser lists the accepted values in --help
// and in the error for a bad one; comma lists and ranges are checked here,
// with messages that name the bad value and the accepted ones (the contract).
import ArgumentParser

extension FlavorName: ExpressibleByArgument {}
extension Workload: ExpressibleByArgument {}
extension GracePeriodMode: ExpressibleByArgument {}
extension Fault: ExpressibleByArgument {}
extension Sabotage: ExpressibleByArgument {}
extension Suite: ExpressibleByArgument {}
extension OracleWorkload: ExpressibleByArgument {}

/// The accepted values of an enumeration, as help and errors list them.
func valueList<E: CaseIterable & RawRepresentable>(_ type: E.Type) -> String where E.RawValue == String {
    type.allCases.map(\.rawValue).joined(separator: ", ")
}

/// A duration in seconds: finite, > 0 and at most a day.
func checkSeconds(_ value: Double, option: String) throws(ValidationError) {
    guard value.isFinite, value > 0, value <= 86_400 else {
        throw ValidationError("\(option) '\(formatDouble(value, significant: 6))' is not accepted;"
            + " accepted: seconds, a number > 0 and <= 86400")
    }
}

/// A count within `range`.
func checkCount(_ value: Int, option: String, range: ClosedRange<Int>) throws(ValidationError) {
    guard range.contains(value) else {
        throw ValidationError("\(option) '\(value)' is not accepted;"
            + " accepted: an integer from \(range.lowerBound) to \(range.upperBound)")
    }
}

/// Splits a comma list; every entry must be one of `accepted` and none may
/// be empty (`rcu,,mutex` is refused). Duplicates are kept once.
func parseCommaList(_ text: String, option: String, accepted: [String]) throws(ValidationError) -> [String] {
    let list = accepted.joined(separator: ", ")
    var names: [String] = []
    for entry in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
        guard !entry.isEmpty else {
            throw ValidationError("\(option) '\(text)' has an empty entry; accepted: a comma list of \(list)")
        }
        guard accepted.contains(entry) else {
            throw ValidationError("\(option) '\(entry)' is not accepted; accepted: \(list)")
        }
        if !names.contains(entry) { names.append(entry) }
    }
    return names
}

/// `--faults`: a comma list of the fault names.
func parseFaults(_ text: String) throws(ValidationError) -> [Fault] {
    try parseCommaList(text, option: "--faults", accepted: Fault.allCases.map(\.rawValue)).compactMap(Fault.init)
}
