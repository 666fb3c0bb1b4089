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
        var blocks: @Sendable () throws -> [RawBlock]
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
    private let committed: @Sendable (Bool) -> Void

    /// Takes ownership of `writer`. `committed` is told, with the writer held, whether each group commit succeeded
    /// (for state that must follow the log, such as the store-wide ids that blocks made by ``append(sealing:)`` gave).
    public init(_ writer: LogWriter, committed: @escaping @Sendable (Bool) -> Void = { _ in }) {
        self.log = writer
        self.committed = committed
    }

    /// Appends `blocks` atomically and returns their offsets once they are durable.
    public func append(_ blocks: [RawBlock]) async throws -> Range<UInt64> {
        try await append(sealing: { blocks })
    }

    /// Appends the blocks `seal` makes, atomically, and returns their offsets once they are durable. `seal` runs
    /// with the writer held, in commit order, right before its blocks are written: blocks whose contents depend on
    /// every block before them (format 2's store-wide ids) are made there.
    public func append(sealing seal: @escaping @Sendable () throws -> [RawBlock]) async throws -> Range<UInt64> {
        try await withCheckedThrowingContinuation { continuation in
            let startFlush = queue.withLock { queue in
                queue.pending.append(Pending(blocks: seal, continuation: continuation))
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
            let outcome: Result<[Range<UInt64>], any Error> = withWriter { writer in
                do {
                    try writer.beginTransaction()
                    var ranges: [Range<UInt64>] = []
                    for item in group {
                        var lower: UInt64?
                        var upper: UInt64 = 0
                        for block in try item.blocks() {
                            let range = try writer.add(block)
                            lower = lower ?? range.lowerBound
                            upper = range.upperBound
                        }
                        ranges.append((lower ?? upper)..<upper)
                    }
                    try writer.commit()
                    committed(true)
                    return .success(ranges)
                } catch {
                    try? writer.rollback()
                    committed(false)
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
