#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import _RCUShims

/// Process-wide facts about the kernel features the flavor uses. Computed
/// once, on first use, and shared by every domain: membarrier registrations
/// are per process, and registering costs milliseconds once threads exist.
internal enum _Platform {
    struct Membarrier: Sendable {
        /// PRIVATE_EXPEDITED is registered and works.
        var expedited: Bool
        /// PRIVATE_EXPEDITED_RSEQ is registered and works.
        var expeditedRseq: Bool
        /// Why membarrier is unusable, when it is.
        var problem: String?
    }

    static let membarrier: Membarrier = {
        let mask = rcu_shim_membarrier_query()
        if mask < 0 {
            return Membarrier(expedited: false, expeditedRseq: false,
                              problem: "membarrier(2) unavailable (errno \(-mask))")
        }
        let needed: Int32 = (1 << 3) | (1 << 4)  // PRIVATE_EXPEDITED and its REGISTER
        if mask & needed != needed {
            return Membarrier(expedited: false, expeditedRseq: false,
                              problem: "membarrier(2) lacks PRIVATE_EXPEDITED (mask 0x\(String(mask, radix: 16)))")
        }
        let registered = rcu_shim_membarrier_register(0)
        guard registered == 0, rcu_shim_membarrier(0) == 0 else {
            return Membarrier(expedited: false, expeditedRseq: false,
                              problem: "membarrier(2) PRIVATE_EXPEDITED registration failed (errno \(-registered))")
        }
        let rseqNeeded: Int32 = (1 << 7) | (1 << 8)
        let rseq = mask & rseqNeeded == rseqNeeded
            && rcu_shim_membarrier_register(1) == 0
            && rcu_shim_membarrier(1) == 0
        return Membarrier(expedited: true, expeditedRseq: rseq, problem: nil)
    }()

    /// Why the calling thread cannot use rseq, or nil when it can.
    static func rseqProblem() -> String? {
        if rcu_shim_rseq_compiled() == 0 {
            return "rseq critical sections are built for x86_64 Linux only"
        }
        if rcu_shim_rseq_usable() == 0 {
            return "glibc did not register rseq (__rseq_size == 0: old kernel, seccomp, valgrind, or glibc.pthread.rseq=0)"
        }
        return nil
    }

    static let possibleCPUs: Int = Int(rcu_shim_possible_cpus())
}

internal func _environmentValue(_ name: String) -> String? {
    guard let pointer = getenv(name) else { return nil }
    return String(cString: pointer)
}
