// The torture's faults that need shared state: the registry of live reader
// threads (migrate, signals) and the read a SIGUSR1 handler performs.
import CLiburcu
import Glibc
import Synchronization

/// Reader threads currently alive, for the migrate and signals faults. A
/// thread is in the registry only between its registration and the moment it
/// leaves, so signalling a registered thread never targets an exited one.
final class ReaderRegistry: Sendable {
    private let threads = Mutex<[Int32: pthread_t]>([:])

    func add() { threads.withLock { $0[stress_gettid()] = pthread_self() } }
    func remove() { _ = threads.withLock { $0.removeValue(forKey: stress_gettid()) } }

    /// Runs `body` on one random registered thread, under the lock.
    func withRandomThread(_ body: (Int32, pthread_t) -> Void) {
        threads.withLock { threads in
            guard let entry = threads.randomElement() else { return }
            body(entry.key, entry.value)
        }
    }
}

/// The read a signal handler performs, set while a signals fault runs.
/// nonisolated(unsafe): written only while no signal can be delivered (before
/// the storm starts and after every reader has been joined).
nonisolated(unsafe) var signalReadHook: (() -> Void)? = nil

let signalHandler: @convention(c) (Int32) -> Void = { _ in
    signalReadHook?()
}
