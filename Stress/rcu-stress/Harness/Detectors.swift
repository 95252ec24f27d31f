// The named violation counters of the container tortures (hashmap, list),
// and the targeted faults (`--sabotage`) that show each one can fire.
//
// A canary run must be caught by the detector it is aimed at, not by any
// violation: the broken flavor (grace periods that do not wait) frees nodes
// early, which the `poisoned` detector must see; `--sabotage remove-stable`
// takes stable keys out for a moment, which `missed_stable` must see;
// `--sabotage duplicate-stable` makes a stable key appear twice, which
// `duplicates` (hashmap) or `out_of_order` (list) must see.
import Glibc
import Synchronization

/// One violation counter, reported as the JSON field `name`. In an isolated
/// child (the broken flavor on a container, which may crash after its first
/// violation) the first count also writes "fired NAME" to the child's result
/// descriptor at once, so the parent knows which detector fired even when
/// the child then dies.
final class Detector: @unchecked Sendable {
    // @unchecked Sendable: `marker` and `descriptor` are written in init and
    // only read after.
    let name: String
    let count = Atomic<Int>(0)
    private let announced = Atomic<Bool>(false)
    /// The isolated child's result descriptor, or -1 (no announcement).
    private let descriptor: Int32
    private let marker: [UInt8]

    init(_ name: String) {
        self.name = name
        descriptor = isolatedChildDescriptor ?? -1
        marker = Array("fired \(name)\n".utf8)
    }

    /// Counts `amount` violations. Async-signal-safe (the signals fault's
    /// handler reads too): atomics and write(2) only.
    func add(_ amount: Int = 1) {
        count.add(amount, ordering: .relaxed)
        if descriptor >= 0 && !announced.exchange(true, ordering: .relaxed) {
            marker.withUnsafeBufferPointer { bytes in _ = write(descriptor, bytes.baseAddress, bytes.count) }
        }
    }

    var value: Int { count.load(ordering: .relaxed) }
}

/// Detector names, as JSON fields.
enum DetectorName {
    static let poisoned = "poisoned"
    static let missedStable = "missed_stable"
    static let duplicates = "duplicates"
    static let outOfOrder = "out_of_order"
    /// Every detector a run may report as fired.
    static let all = [poisoned, missedStable, duplicates, outOfOrder]
}

/// A targeted fault: the harness breaks one invariant of its own workload on
/// purpose, so the detector of that invariant must fire.
enum Sabotage: String, CaseIterable {
    /// The updater removes a stable key (element) and puts it back at its
    /// next update, so one stable key is always missing: readers must count
    /// `missed_stable`.
    case removeStable = "remove-stable"
    /// The updater adds a second entry for a stable key (cds_lfht_add on
    /// liburcu-memb; a second element with a stable id at the end of the
    /// list) and removes it at its next update: traversals must count
    /// `duplicates` (hashmap) or `out_of_order` (list). RCUHashMap's API
    /// cannot hold a key twice, so on the hashmap only liburcu-memb runs it.
    case duplicateStable = "duplicate-stable"

    /// The detector this sabotage must make fire on `workload`.
    func aimedDetector(_ workload: Workload) -> String {
        switch self {
        case .removeStable: return DetectorName.missedStable
        case .duplicateStable: return workload == .list ? DetectorName.outOfOrder : DetectorName.duplicates
        }
    }
}
