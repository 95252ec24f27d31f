// The README's first example, compiled and run, so the README stays true.
import RCU
import Synchronization
import RCUTestSupport
import Testing

private struct Config { var port: Int }

// nonisolated(unsafe): Atomic of a raw pointer is not Sendable; RCU is what
// makes sharing the pointee safe (readers reach it only inside read sections).
nonisolated(unsafe) private let current = Atomic<UnsafeMutablePointer<Config>>(.make(Config(port: 80)))

private func port() -> Int {
    RCUDomain.shared.read { current.load(ordering: .acquiring).pointee.port }
}

private func reload(_ config: Config) {
    let old = current.exchange(.make(config), ordering: .acquiringAndReleasing)
    RCUDomain.shared.synchronize()
    old.deinitialize(count: 1)
    old.deallocate()
}

extension UnsafeMutablePointer<Config> {
    fileprivate static func make(_ config: Config) -> Self {
        let pointer = allocate(capacity: 1)
        pointer.initialize(to: config)
        return pointer
    }
}

@Test("the README's config example works")
func readmeExample() {
    #expect(port() == 80)
    reload(Config(port: 8080))
    #expect(port() == 8080)
}

private struct Limits: Sendable { var perTenant: [String: Int]; var fallback: Int }

private let limits = RCUSnapshot(Limits(perTenant: [:], fallback: 100))

private func limit(for tenant: String) -> Int {
    limits.read { $0.perTenant[tenant] ?? $0.fallback }
}

private func raise(_ tenant: String, to value: Int) {
    limits.update { $0.perTenant[tenant] = value }
}

private func reload(_ fresh: Limits) { limits.replace(fresh) }

@Test("the README's config-table example works")
func readmeConfigTable() {
    #expect(limit(for: "acme") == 100)
    raise("acme", to: 500)
    #expect(limit(for: "acme") == 500)
    reload(Limits(perTenant: [:], fallback: 7))
    #expect(limit(for: "acme") == 7)
}
