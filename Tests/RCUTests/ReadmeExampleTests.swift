// The README's first example, compiled and run, so the README stays true.
import RCU
import Synchronization
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
