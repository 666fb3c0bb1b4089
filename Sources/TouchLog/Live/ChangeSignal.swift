import Synchronization

/// Wakes the tasks tailing or watching a store when it changes in this process (a commit, a definition put or
/// removed) or is closed.
///
/// Each change bumps a generation number. A waiter reads ``generation`` *before* looking at the store and then
/// waits for a later one, so a change made while it was looking is never missed; a wakeup may be spurious.
final class ChangeSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var closed = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    /// The number of changes so far.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// True once the store was closed: no change will come.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Records a change and wakes every waiter.
    func signal() {
        let waiters = state.withLock { state in
            state.generation += 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Wakes every waiter for good: later waits return at once.
    func close() {
        let waiters = state.withLock { state in
            state.closed = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the generation is past `seen`, the store is closed, or the task is cancelled.
    func wait(after seen: UInt64) async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state in
                    // Checked under the lock: a cancellation handler that ran before this registration found nothing
                    // to resume, so the wait must not start.
                    if state.generation > seen || state.closed || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
