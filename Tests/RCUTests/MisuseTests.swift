// Each misuse stops the process with a message naming the mistake. Exit
// tests run the body in a child process and check what it printed.
#if canImport(Glibc)
import Glibc
#endif
import RCU
import RCUTestSupport
import Testing

/// An object retired from a stall handler.
private final class HandlerRetired {}

@Suite("Misuse", .timeLimit(.minutes(10)))
struct MisuseTests {
    private func stderrText(_ result: ExitTest.Result?) -> String {
        String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
    }

    #if DEBUG
    @Test("synchronize inside a read section of the same domain stops with a message (debug builds)")
    func synchronizeInsideReadSection() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let domain = RCUDomain()
            domain.read { domain.synchronize() }
        }
        #expect(stderrText(result).contains("synchronize() called inside 1 open read section(s)"))
    }

    @Test("synchronize inside a token section on the same thread stops too (debug builds)")
    func synchronizeInsideTokenSection() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let domain = RCUDomain()
            let token = domain.lock()
            domain.synchronize()
            domain.unlock(token)
        }
        #expect(stderrText(result).contains("would wait for itself forever"))
    }

    @Test("barrier inside a read section stops with a message (debug builds)")
    func barrierInsideReadSection() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let domain = RCUDomain()
            domain.read { domain.barrier() }
        }
        #expect(stderrText(result).contains("barrier() called inside 1 open read section(s)"))
    }
    #endif

    @Test("synchronize or barrier from a stall handler stops with a message", arguments: ["synchronize", "barrier"])
    func waitFromStallHandler(operation: String) async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) { [operation] in
            var configuration = RCUDomain.Configuration(honorsEnvironment: false)
            configuration.stallTimeout = .milliseconds(50)
            let domain = RCUDomain(configuration: configuration)
            domain.stallHandler = { _ in
                if operation == "barrier" { domain.barrier() } else { domain.synchronize() }
            }
            let token = domain.lock()  // released only if the handler returned
            let waiter = TestThread { domain.synchronize() }
            sleepMicroseconds(5_000_000)
            domain.unlock(token)
            waiter.join()
        }
        #expect(stderrText(result).contains("called from a stall handler"))
    }

    @Test("retire from a stall handler never waits, even past the memory bound")
    func retireFromStallHandler() async {
        await #expect(processExitsWith: .success) {
            // Watchdog: a handler stuck in backpressure would never return.
            _ = TestThread {
                sleepMicroseconds(60_000_000)
                _exit(2)
            }
            var configuration = RCUDomain.Configuration(honorsEnvironment: false)
            configuration.stallTimeout = .milliseconds(50)
            configuration.maxPendingCallbacks = 64
            let domain = RCUDomain(configuration: configuration)
            let done = Flag()
            domain.stallHandler = { _ in
                // Far past the bound: the worker cannot make progress while
                // this handler holds the grace-period lock.
                for _ in 0..<4_096 { domain.retire(HandlerRetired()) }
                done.set()
            }
            let entered = Flag()
            let reader = TestThread {
                let token = domain.lock()
                entered.set()
                _ = waitUntil(seconds: 30) { done.isSet }
                domain.unlock(token)
            }
            _ = entered.wait()
            domain.synchronize()
            reader.join()
            domain.barrier()
            _exit(done.isSet && domain.pendingCallbacks == 0 ? 0 : 3)
        }
    }

    @Test("barrier called from a callback stops with a message")
    func barrierFromCallback() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let domain = RCUDomain()
            domain.defer { domain.barrier() }
            domain.barrier()
        }
        #expect(stderrText(result).contains("barrier() called from an RCU callback"))
    }

    @Test("retire from a callback while a barrier runs: the barrier waits for it, nothing is lost")
    func retireFromCallbackDuringBarrier() {
        final class Tracked: Sendable {
            let released: Count
            init(_ released: Count) { self.released = released }
            deinit { released.add() }
        }
        let domain = RCUDomain()
        let released = Count()
        for _ in 0..<100 {
            domain.defer { domain.retire(Tracked(released)) }
        }
        domain.barrier()
        #expect(released.current == 100)
    }

    @Test("synchronize of another domain inside a read section is fine")
    func otherDomainIsFine() {
        let outer = RCUDomain()
        let inner = RCUDomain()
        outer.read { inner.synchronize() }
    }

    @Test("unlock with a token of another domain stops with a message")
    func foreignToken() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let first = RCUDomain()
            let second = RCUDomain()
            second.unlock(first.lock())
        }
        #expect(stderrText(result).contains("received a token locked on another RCUDomain"))
    }

    @Test("a token dropped without unlock stops with a message")
    func droppedToken() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let domain = RCUDomain()
            _ = domain.lock()
        }
        #expect(stderrText(result).contains("dropped without unlock"))
    }

    @Test("a domain deinitialised with an open section stops with a message")
    func deinitWithOpenSection() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let box = TokenBox()
            do {
                let domain = RCUDomain()
                box.put(domain.lock())
            }
            exit(0)  // not reached: the domain's deinit stops the process
        }
        #expect(stderrText(result).contains("deinitialised with 1 read section(s) still open"))
    }

    @Test("a bad RCU_FORCE_ATOMIC value stops with a message")
    func badEnvironmentValue() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            setenv("RCU_FORCE_ATOMIC", "yse", 1)
            _ = RCUDomain()
        }
        #expect(stderrText(result).contains("RCU_FORCE_ATOMIC=yse is not a valid switch"))
    }
}
