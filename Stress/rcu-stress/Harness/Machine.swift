import Glibc
import RCU

/// What the machine offers, as the contract's `machine` object reports it.
struct Machine {
    let cpus: Int
    let kernel: String
    let rseq: Bool
    let membarrier: Bool
    let defaultMode: RCUMode

    static let current: Machine = {
        var names = utsname()
        uname(&names)
        let kernel = withUnsafeBytes(of: &names.release) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        let probe = RCUDomain(configuration: .init(honorsEnvironment: false))
        return Machine(
            cpus: onlineCPUs(),
            kernel: kernel,
            rseq: probe.mode.counters == .rseq,
            membarrier: probe.mode.ordering == .membarrier,
            defaultMode: RCUDomain.shared.mode
        )
    }()

    var json: JSON {
        .object([
            ("cpus", .integer(Int64(cpus))),
            ("kernel", .string(kernel)),
            ("rseq", .bool(rseq)),
            ("membarrier", .bool(membarrier)),
        ])
    }

    var summary: String {
        "\(cpus) CPUs, kernel \(kernel), rseq \(rseq ? "yes" : "no"), membarrier \(membarrier ? "yes" : "no"); RCUDomain.shared runs \(defaultMode)"
    }
}

/// Resident set size of this process in KiB (/proc/self/statm), 0 if unknown.
func residentKilobytes() -> Int {
    guard let text = readSmallFile("/proc/self/statm") else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}

/// Peak resident set size in KiB (VmHWM in /proc/self/status), 0 if unknown.
func peakResidentKilobytes() -> Int {
    guard let text = readSmallFile("/proc/self/status") else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.dropFirst(6).filter(\.isNumber)) ?? 0
    }
    return 0
}

private func readSmallFile(_ path: String) -> String? {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes = [UInt8](repeating: 0, count: 8192)
    let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
    guard count > 0 else { return nil }
    return String(decoding: bytes[0..<count], as: UTF8.self)
}
