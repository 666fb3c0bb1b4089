import Dispatch
import Synchronization

/// Idle ``StoreReader``s of one store, handed to one caller at a time so that queries from many tasks each get a
/// reader of their own without opening the log every time.
final class ReaderPool: Sendable {
    /// A reader moving between the pool and the one caller that holds it.
    // Unchecked: a StoreReader is not thread-safe; the pool gives each box to one caller at a time, and a box is
    // touched only by the caller holding it.
    private final class Box: @unchecked Sendable {
        let reader: StoreReader
        init(_ reader: StoreReader) { self.reader = reader }
    }

    let directory: String
    /// The readers' ``StoreReader/snapshotInterval``.
    let snapshotInterval: UInt64?
    /// Segment projections kept in memory, shared by the pool's readers.
    let projections = ProjectionCache()
    /// Block summaries, parsed once for all of the store's readers.
    let summaries = SummaryCache()
    /// Format-2 snapshots decoded lately, for all of the store's readers.
    let snapshots = SnapshotCache()
    /// Format-2 block sections queries read lately, for all of the store's readers.
    let sections = SectionCache()
    /// Readers kept when idle; more are opened when more queries run at once, and dropped after.
    private let keep = 8
    private let idle = Mutex<[Box]>([])

    init(directory: String, snapshotInterval: UInt64?) {
        self.directory = directory
        self.snapshotInterval = snapshotInterval
    }

    /// A reader of the store sharing the pool's caches, for a caller that keeps it (a live audience, the writer
    /// reading the store's dictionary).
    func makeReader() throws(TouchLogError) -> StoreReader {
        let reader = try StoreReader(directory: directory)
        reader.projectionCache = projections
        reader.summaryCache = summaries
        reader.snapshotCache = snapshots
        reader.sectionCache = sections
        reader.snapshotInterval = snapshotInterval
        return reader
    }

    /// Runs `body` with a reader of its own that sees every commit made before the call.
    func withReader<T>(_ body: (StoreReader) throws(TouchLogError) -> T) throws(TouchLogError) -> T {
        let box: Box
        if let idleBox = idle.withLock({ $0.popLast() }) {
            box = idleBox
        } else {
            box = Box(try makeReader())
        }
        try box.reader.refresh()
        let result = try body(box.reader)
        // A reader that failed (damage, I/O) is dropped rather than reused: the next query opens a fresh one.
        idle.withLock { if $0.count < keep { $0.append(box) } }
        return result
    }
}

/// Runs blocking work (file reads, folding the log) on a dispatch thread, or on `threads` when given, so that a long
/// query does not hold one of the few threads Swift concurrency runs every task on.
func offload<T: Sendable>(
    on queue: DispatchQueue = .global(), threads: QueryThreads? = nil,
    _ work: @escaping @Sendable () throws(TouchLogError) -> T
) async throws(TouchLogError) -> T {
    let result: Result<T, TouchLogError> = await withCheckedContinuation { continuation in
        let job: @Sendable () -> Void = {
            do throws(TouchLogError) { continuation.resume(returning: .success(try work())) } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        if let threads { threads.async(job) } else { queue.async(execute: job) }
    }
    return try result.get()
}
