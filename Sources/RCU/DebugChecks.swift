// Debug-build bookkeeping that catches synchronize() inside a read section
// of the same domain on the same thread. Release builds compile none of it:
// the read side cannot afford a thread-local lookup per section.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

#if DEBUG
/// Sections of one domain opened by one thread and not yet closed. A token
/// keeps its cell alive, so a section that ends on another thread still
/// closes the count of the thread that opened it.
@usableFromInline
internal final class _ReadDepthCell: Sendable {
    let depth = Atomic<Int>(0)
    init() {}
}

/// Per-thread map from domain id to that thread's depth cell.
private final class _ThreadReadState {
    var cells: [UInt64: _ReadDepthCell] = [:]
}

private let _threadReadStateKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key) { pointer in
        guard let pointer else { return }
        Unmanaged<AnyObject>.fromOpaque(pointer).release()
    }
    if status != 0 { fatalError("swift-rcu: pthread_key_create failed (\(status))") }
    return key
}()

private func _currentThreadReadState() -> _ThreadReadState {
    if let pointer = pthread_getspecific(_threadReadStateKey) {
        return Unmanaged<_ThreadReadState>.fromOpaque(pointer).takeUnretainedValue()
    }
    let state = _ThreadReadState()
    pthread_setspecific(_threadReadStateKey, Unmanaged.passRetained(state).toOpaque())
    return state
}

extension RCUDomain {
    @usableFromInline
    internal func _debugEnter() -> Unmanaged<_ReadDepthCell> {
        let state = _currentThreadReadState()
        let cell: _ReadDepthCell
        if let existing = state.cells[_id] {
            cell = existing
        } else {
            cell = _ReadDepthCell()
            state.cells[_id] = cell
        }
        cell.depth.add(1, ordering: .relaxed)
        return Unmanaged.passRetained(cell)
    }

    @usableFromInline
    internal func _debugExit(_ cell: Unmanaged<_ReadDepthCell>) {
        cell.takeRetainedValue().depth.subtract(1, ordering: .relaxed)
    }

    /// Read sections of this domain the calling thread has open (debug builds).
    internal var _sectionsOpenOnThisThread: Int {
        _currentThreadReadState().cells[_id]?.depth.load(ordering: .relaxed) ?? 0
    }

    /// Whether this thread has a tracked read section of this domain open.
    internal var _debugSectionsOpen: Bool { _sectionsOpenOnThisThread > 0 }

    internal func _assertNotReading(_ operation: StaticString) {
        let depth = _sectionsOpenOnThisThread
        if depth > 0 {
            fatalError("swift-rcu: \(operation) called inside \(depth) open read section(s) of \(self) on the same thread; it would wait for itself forever")
        }
    }
}
#else
extension RCUDomain {
    @inline(__always)
    internal func _assertNotReading(_ operation: StaticString) {}

    /// Release builds do not track sections per thread.
    internal var _debugSectionsOpen: Bool { false }
}
#endif
