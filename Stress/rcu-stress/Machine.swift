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
