// Where rcu-stress's words go, and how it leaves. No result is ever lost
// (the contract): every write to standard output and to an output file
// (--svg) is checked; a failed one is reported on standard error, what could
// not be written follows there, and the exit code is non-zero. Output paths
// are opened before any measuring starts.
import Glibc
import Synchronization

/// Exit codes besides a command's result (0 expected outcome, 1 not), from
/// sysexits.h. A signal's 128 + n wins over all of them (Interrupt.swift).
enum ExitStatus {
    /// A bad argument: one line on standard error.
    static let usage: Int32 = 64
    /// An output path (--svg) cannot be opened for writing.
    static let cannotCreate: Int32 = 73
    /// A write of a result (standard output, --svg) failed.
    static let ioError: Int32 = 74
}

/// Standard output, written with write(2) and checked. After the first
/// failure (a full disk, a closed descriptor, a reader that went away) the
/// failure is reported on standard error once, and everything not written,
/// then and later, goes to standard error instead, so the result still
/// reaches the user; the exit code is then `ExitStatus.ioError`.
enum StandardOutput {
    private struct State {
        var descriptor: Int32 = 1
        var failure: String? = nil
    }
    private static let state = Mutex(State())

    /// Makes standard descriptors that were closed at start (`>&-`) refer to
    /// /dev/null opened read-only: no file this process opens later can land
    /// on descriptor 1 or 2 and receive its output, and a write there still
    /// fails (EBADF), so it is reported.
    static func reserveClosedDescriptors() {
        for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            _ = open("/dev/null", O_RDONLY)  // the lowest free descriptor: this one
        }
    }

    /// Sends results to `descriptor` instead of 1 (an isolated child writes
    /// them to the descriptor its parent reads).
    static func redirect(to descriptor: Int32) {
        state.withLock { $0.descriptor = descriptor }
    }

    static func write(_ text: String) {
        state.withLock { state in
            var text = text
            var unwritten = text.utf8.count
            if state.failure == nil {
                let (written, error) = text.withUTF8 { writeAll(state.descriptor, $0) }
                guard let error else { return }
                unwritten -= written
                state.failure = error
                writeStandardError("rcu-stress: cannot write to standard output (\(error));"
                    + " what was not written follows on standard error\n")
            }
            writeStandardError(String(decoding: text.utf8.suffix(unwritten), as: UTF8.self))
        }
    }

    /// Whether a write to standard output failed.
    static var failed: Bool { state.withLock { $0.failure != nil } }

    /// Closes standard output, which reports what a regular file's write
    /// may only report there.
    static func close() {
        state.withLock { state in
            if Glibc.close(state.descriptor) != 0 && errno != EBADF && state.failure == nil {
                state.failure = String(cString: strerror(errno))
                writeStandardError("rcu-stress: cannot write to standard output (\(state.failure!))\n")
            }
        }
    }
}

/// Writes `bytes` to `descriptor` until done or an error; returns the bytes
/// written and the error's text, if any.
func writeAll(_ descriptor: Int32, _ bytes: UnsafeBufferPointer<UInt8>) -> (written: Int, error: String?) {
    var offset = 0
    while offset < bytes.count {
        let count = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
        if count > 0 {
            offset += count
        } else if count < 0 && errno == EINTR {
            continue
        } else if count < 0 && errno == EAGAIN {
            var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            _ = poll(&entry, 1, 100)
        } else {
            return (offset, count == 0 ? "no progress" : String(cString: strerror(errno)))
        }
    }
    return (offset, nil)
}

/// A pipe whose ends are close-on-exec (and non-blocking, if asked):
/// pipe2 is not in Swift's Glibc module, so pipe and fcntl. Returns the read
/// and write ends, or nil.
func closeOnExecPipe(nonBlocking: Bool = false) -> (read: Int32, write: Int32)? {
    var ends: [Int32] = [-1, -1]
    guard pipe(&ends) == 0 else { return nil }
    for end in ends {
        _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        if nonBlocking { _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK) }
    }
    return (ends[0], ends[1])
}

/// Prints one line of a result on standard output (checked).
func emit(_ line: String = "") {
    StandardOutput.write(line + "\n")
}

/// Writes a line to standard error.
func printError(_ text: String) {
    writeStandardError(text + "\n")
}

/// Writes raw text to file descriptor 2 (no stdio: `stderr` is a C global
/// that strict concurrency rightly refuses). Errors are ignored: there is
/// nowhere left to report them.
func writeStandardError(_ text: String) {
    var text = text
    _ = text.withUTF8 { writeAll(2, $0) }
}

/// Whether standard error is a terminal (progress lines go there only then).
let stderrIsTerminal: Bool = isatty(2) != 0

/// An output file named on the command line (--svg): opened before any
/// measuring starts, so a bad path fails at once; its old content stays
/// until the result replaces it, every write checked.
final class OutputFile {
    let path: String
    private let descriptor: Int32

    struct OpenError: Error {
        let message: String
    }

    init(_ path: String) throws(OpenError) {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw OpenError(message: "cannot write '\(path)': \(String(cString: strerror(errno)))")
        }
    }

    deinit { _ = close(descriptor) }

    /// Replaces the file's content with `text`; returns nil, or why it failed.
    func replaceContents(with text: String) -> String? {
        var status = stat()
        if fstat(descriptor, &status) == 0 && status.st_mode & S_IFMT == S_IFREG && ftruncate(descriptor, 0) != 0 {
            return "cannot write '\(path)': \(String(cString: strerror(errno)))"
        }
        var text = text
        let (_, error) = text.withUTF8 { writeAll(descriptor, $0) }
        if let error { return "cannot write '\(path)': \(error)" }
        if fsync(descriptor) != 0 && errno != EINVAL && errno != EROFS {
            return "cannot write '\(path)': \(String(cString: strerror(errno)))"
        }
        return nil
    }
}

/// The live progress line on standard error: on a terminal only, rewritten
/// in place at most four times a second, cleared at the end.
struct ProgressLine {
    let enabled: Bool
    private var lastShown: UInt64
    private var shown = false

    init(enabled: Bool = true) {
        self.enabled = enabled && stderrIsTerminal
        lastShown = nowNanoseconds()
    }

    /// Shows `text` unless the line changed less than 0.25 s ago (`force`:
    /// at once, for a new phase).
    mutating func show(_ text: @autoclosure () -> String, force: Bool = false) {
        guard enabled else { return }
        let now = nowNanoseconds()
        guard force || now &- lastShown >= 250_000_000 else { return }
        lastShown = now
        shown = true
        writeStandardError("\r\u{1B}[K" + text())
    }

    mutating func clear() {
        if shown { writeStandardError("\r\u{1B}[K") }
        shown = false
    }
}

private let exiting = Atomic<Bool>(false)

/// Leaves the process with `code`, unless a signal interrupted it (128 + n
/// wins) or a result could not be written (`ExitStatus.ioError`). The first
/// caller exits; another thread calling at the same time waits for that.
func finish(_ code: Int32) -> Never {
    if exiting.exchange(true, ordering: .acquiringAndReleasing) {
        while true { pause() }
    }
    StandardOutput.close()
    exit(Interrupt.exitCode ?? (StandardOutput.failed ? ExitStatus.ioError : code))
}
