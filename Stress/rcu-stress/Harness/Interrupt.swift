// SIGINT and SIGTERM (the contract): every command stops within about a
// second, prints what it has so far (JSON with "interrupted": true), and
// exits 128 + the signal number, which wins over any result code.
//
// The handler is async-signal-safe: it stores the signal number to an atomic
// (the first signal wins), writes one byte to a self-pipe, and restores
// errno; nothing else. Commands poll `Interrupt.isRequested` between batches
// (readers, updaters, oracle steps, bench rounds); code that sleeps or waits
// sleeps on the pipe instead (`Interrupt.sleep`, `Interrupt.wait`: poll(2) on
// its read end), so a signal wakes it at once. The byte is never read: the
// pipe stays readable and wakes every waiter, now and later. No thread is
// started for this (storm's worker-start check needs the reclamation worker
// to be the process's second thread).
//
// The globals the handler touches (`received`, `wakeWrite`, `owner`) are
// initialised by `install()` before sigaction, so the handler only takes the
// completed fast path of their lazy initialisation (an atomic load). A fork
// child (the fork fault) inherits the handler and sets its own flag, but
// does not write to the pipe it shares with its parent: the handler writes
// only in the process that installed it (getpid() == owner).
import CLiburcu
import Glibc
import Synchronization

enum Interrupt {
    /// The first SIGINT or SIGTERM received (or adopted from a child); 0 before.
    private static let received = Atomic<Int32>(0)
    private static let wakeWrite = Atomic<Int32>(-1)
    private static let wakeRead = Atomic<Int32>(-1)
    private static let owner = Atomic<Int32>(0)

    /// Installs the handlers for SIGINT and SIGTERM, and ignores SIGPIPE so
    /// that a write to a closed pipe fails with EPIPE (and is reported)
    /// instead of killing the process silently. Call once, at start.
    static func install() {
        if let ends = closeOnExecPipe(nonBlocking: true) {
            wakeRead.store(ends.read, ordering: .relaxed)
            wakeWrite.store(ends.write, ordering: .relaxed)
        }
        owner.store(getpid(), ordering: .relaxed)
        _ = received.load(ordering: .relaxed)
        _ = signal(SIGPIPE, SIG_IGN)
        for number in [SIGINT, SIGTERM] {
            _ = stress_install_handler(number) { number in Interrupt.handle(number) }
        }
    }

    /// The signal handler's whole work (async-signal-safe).
    private static func handle(_ number: Int32) {
        let savedErrno = errno
        _ = received.compareExchange(expected: 0, desired: number, ordering: .relaxed)
        if getpid() == owner.load(ordering: .relaxed) {
            var byte: UInt8 = 1
            _ = write(wakeWrite.load(ordering: .relaxed), &byte, 1)
        }
        errno = savedErrno
    }

    /// Whether a SIGINT or SIGTERM has arrived: stop, and print what you have.
    static var isRequested: Bool { received.load(ordering: .relaxed) != 0 }

    /// The signal that interrupted the run, or nil.
    static var signalNumber: Int32? {
        let number = received.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// 128 + the signal number once interrupted: the exit code that wins.
    static var exitCode: Int32? { signalNumber.map { 128 + $0 } }

    /// Takes on a signal that interrupted a child of this process (the
    /// isolated torture): this process then stops and exits as if it had
    /// received it. The first signal still wins.
    static func adopt(_ number: Int32) {
        if received.compareExchange(expected: 0, desired: number, ordering: .relaxed).exchanged {
            var byte: UInt8 = 1
            _ = write(wakeWrite.load(ordering: .relaxed), &byte, 1)
        }
    }

    /// Sleeps for `seconds`, or less if interrupted; returns false when
    /// interrupted. Exact to the nanosecond (poll(2) for the milliseconds,
    /// nanosleep for the rest).
    @discardableResult
    static func sleep(_ seconds: Double) -> Bool {
        let deadline = nowNanoseconds() &+ UInt64(max(0, seconds) * 1e9)
        while !isRequested {
            let now = nowNanoseconds()
            if now >= deadline { return true }
            let remaining = deadline - now
            if remaining < 1_000_000 {
                sleepSeconds(Double(remaining) / 1e9)
            } else {
                // One poll for the whole wait (a bench slice's coordinator
                // wakes once, as it did in nanosleep); at most 100 ms per
                // poll if the pipe could not be made.
                let cap: UInt64 = wakeRead.load(ordering: .relaxed) < 0 ? 100 : 1 << 30
                _ = wait(for: -1, milliseconds: Int32(min(remaining / 1_000_000, cap)))
            }
        }
        return false
    }

    /// Waits until `descriptor` is readable (or has hung up), a signal
    /// arrives (unless `wakesOnSignal` is false: once interrupted, the pipe
    /// stays readable), or `milliseconds` pass; returns whether the
    /// descriptor is ready. A negative descriptor waits for a signal or the
    /// time only.
    static func wait(for descriptor: Int32, milliseconds: Int32, wakesOnSignal: Bool = true) -> Bool {
        let wake = wakesOnSignal ? wakeRead.load(ordering: .relaxed) : -1
        var entries = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        let ready = poll(&entries, 2, milliseconds)
        return ready > 0 && descriptor >= 0 && entries[0].revents != 0
    }
}
