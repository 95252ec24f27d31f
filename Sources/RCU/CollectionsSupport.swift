import _RCUShims

// Hooks for RCUCollections, which has no C target of its own. SPI: not part
// of the library's public surface.

extension RCUDomain {
    /// A small integer naming the caller's CPU (glibc's rseq `cpu_id_start`),
    /// or a hash of its thread when rseq is unavailable, below ``_slotCount``.
    /// A contention hint for striped counters; never a correctness input.
    @_spi(RCUCollections) @inlinable
    public var _cpuSlotHint: Int { Int(rcu_shim_slot_hint(_state)) }

    /// The number of slots ``_cpuSlotHint`` ranges over (possible CPUs).
    @_spi(RCUCollections)
    public var _cpuSlotCount: Int { Int(_state.pointee.header.slot_count) }
}

/// A spin-wait hint (x86 `pause`), for bounded spins on a word another
/// thread holds for a few instructions.
@_spi(RCUCollections) @inlinable
public func _rcuSpinHint() {
    rcu_shim_cpu_relax()
}

extension RCUDomain {
    /// Retires an object given as the bits of a +1 reference (what
    /// `Unmanaged.passRetained(_:).toOpaque()` gives); the reference is
    /// released after a grace period, as ``retire(_:)`` does.
    @_spi(RCUCollections)
    public func _retireRetainedBits(_ bits: UInt) {
        _enqueueRetained(bits)
    }
}
