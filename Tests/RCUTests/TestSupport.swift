// Test helpers only the RCU tests use; the shared ones are in
// Tests/Support (RCUTestSupport).
import RCU
import Synchronization

/// Hands a noncopyable token from one thread to another.
final class TokenBox: @unchecked Sendable {
    // @unchecked Sendable: the token is moved in and out under `lock` (a
    // pthread mutex, which ThreadSanitizer sees; Synchronization.Mutex's
    // futex it does not).
    private let lock = _RCUMutex<Void>(())
    private var token: RCUReadToken?

    func put(_ token: consuming RCUReadToken) {
        var incoming: RCUReadToken? = consume token
        lock.withLock { _ in self.token = incoming.take() }
    }

    func take() -> RCUReadToken? {
        var taken: RCUReadToken? = nil
        lock.withLock { _ in taken = self.token.take() }
        return taken
    }
}

