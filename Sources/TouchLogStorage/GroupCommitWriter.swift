import Dispatch
import Synchronization

/// A ``LogWriter`` shared by many tasks, with group commit: appends that arrive while a commit is being
/// synced are written together in the next commit and share its fsync.
///
/// Each ``append(_:)`` is still atomic (its blocks are whole in the log or absent) and durable when it returns.
/// Writing and syncing happen on a dedicated dispatch queue, never on the caller's executor.
public final class GroupCommitWriter: @unchecked Sendable {
    // Unchecked because `log` is a non-Sendable class: it is touched only inside `writerLock.withLock`,
    // which serializes every use across threads.
    private struct Pending {
        var blocks: [RawBlock]
        var continuation: CheckedContinuation<Range<UInt64>, any Error>
    }

    private struct Queue {
        var pending: [Pending] = []
        var flushing = false
    }

    private let log: LogWriter
    private let writerLock = Mutex(())
    private let queue = Mutex(Queue())
    private let commitQueue = DispatchQueue(label: "touchlog.group-commit")

    /// Takes ownership of `writer`.
    public init(_ writer: LogWriter) {
        self.log = writer
    }

    /// Appends `blocks` atomically and returns their offsets once they are durable.
    public func append(_ blocks: [RawBlock]) async throws -> Range<UInt64> {
        try await withCheckedThrowingContinuation { continuation in
            let startFlush = queue.withLock { queue in
                queue.pending.append(Pending(blocks: blocks, continuation: continuation))
                defer { queue.flushing = true }
                return !queue.flushing
            }
            if startFlush {
                commitQueue.async { self.flush() }
            }
        }
    }

    /// Runs `body` with exclusive use of the writer (for a bulk commit); group commits wait meanwhile.
    public func withWriter<T: Sendable, E: Error>(_ body: (LogWriter) throws(E) -> T) throws(E) -> T {
        try writerLock.withLock { _ throws(E) -> T in try body(log) }
    }

    /// Closes the writer (after the commit in progress, if any) and releases the log's lock; later appends fail.
    public func close() {
        withWriter { $0.close() }
    }

    /// Commits queued appends until none are left; each round is one commit with one fsync.
    private func flush() {
        while true {
            let group = queue.withLock { queue in
                let group = queue.pending
                queue.pending.removeAll()
                if group.isEmpty { queue.flushing = false }
                return group
            }
            if group.isEmpty { return }
            let outcome: Result<[Range<UInt64>], StorageError> = withWriter { writer in
                do throws(StorageError) {
                    try writer.beginTransaction()
                    var ranges: [Range<UInt64>] = []
                    for item in group {
                        var lower: UInt64?
                        var upper: UInt64 = 0
                        for block in item.blocks {
                            let range = try writer.add(block)
                            lower = lower ?? range.lowerBound
                            upper = range.upperBound
                        }
                        ranges.append((lower ?? upper)..<upper)
                    }
                    try writer.commit()
                    return .success(ranges)
                } catch {
                    try? writer.rollback()
                    return .failure(error)
                }
            }
            switch outcome {
            case .success(let ranges):
                for (item, range) in zip(group, ranges) { item.continuation.resume(returning: range) }
            case .failure(let error):
                for item in group { item.continuation.resume(throwing: error) }
            }
        }
    }
}
