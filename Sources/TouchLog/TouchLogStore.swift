import Dispatch
import Synchronization
import TouchLogStorage

/// A touchlog store: the entry point for services that embed touchlog.
///
/// Open it for writing with ``init(directory:create:options:blockEvents:snapshots:queryPriority:)`` (one process at a
/// time: opening takes the store's lock), or for reading with ``init(readingFrom:snapshots:)`` (any number of
/// processes, while another one writes). Every method is safe to call from many tasks at once: appends are
/// group-committed, and queries run on their own threads with readers from a pool, so they never wait for each other
/// or for the writer.
///
/// ```swift
/// let store = try TouchLogStore(directory: "/var/lib/touchlog")
/// let offsets = try await store.append([
///     Event(time: 1_654_078_874_250, profile: "p-123", type: .click, touchpoint: "summer-2022-collection"),
/// ])
/// let members = try await store.members(of: "discount-clickers-not-converted")
/// ```
public final class TouchLogStore: Sendable {
    /// The store directory.
    public let directory: String
    /// What opening removed from the end of the log (a commit a crash interrupted), if anything.
    public let recovery: RecoveryReport?
    /// Events per block when a batch is split into blocks.
    public let blockEvents: Int
    /// When queries save snapshots of the projections they fold.
    public let snapshotPolicy: SnapshotPolicy
    /// Nil when the store was opened read-only.
    private let writer: GroupCommitWriter?
    /// Makes the writer's blocks in the log's format (nil when read-only).
    let encoder: BlockEncoder?
    /// Readers for queries, one per query in flight.
    let readers: ReaderPool
    /// The threads its queries run on.
    let queryThreads: QueryThreads
    /// Wakes tails and watches when this store commits or changes a definition.
    let changes = ChangeSignal()
    /// Appends and queries, recorded through swift-metrics.
    let metrics = StoreMetrics()
    /// Where watches take their steps, one round at a time (``watchHub``): a hundred watches woken by one commit then
    /// share one reader and one core, and each new block is decoded once for all of them (``liveBlocks``).
    let liveQueue = DispatchQueue(label: "touchlog.watches")
    /// The watches waiting for their next update, stepped in rounds.
    let watchHub = WatchHub()
    /// The blocks watches read lately, decoded.
    let liveBlocks = DecodedBlockCache()
    /// The live audiences of definitions asked again and again as of now.
    let liveQueries = LiveQueries()
    /// How many times this store has changed a definition (put or removed one): a store opened for writing reads a
    /// definition again (``currentSegment(_:)``, for queries by name and watches) only when this moved.
    let definitionChanges = Atomic<UInt64>(0)
    /// ``currentSegment(_:)``'s definitions, read when ``definitionChanges`` was `changes`.
    let currentDefinitions = Mutex<
        (changes: UInt64, definitions: [String: (version: Int, definition: SegmentDefinition)])
    >(
        (.max, [:]))

    /// Opens the store in `directory` for writing, creating it when `create` is true and it does not exist.
    ///
    /// Throws ``TouchLogError/Code-swift.struct/locked`` when another process is writing to it, and
    /// ``TouchLogError/Code-swift.struct/corrupt`` when its log is damaged before its last commit. `queryPriority`:
    /// how its queries share a busy CPU with its appends and the rest of the process.
    public init(
        directory: String, create: Bool = true, options: LogOptions = LogOptions(), blockEvents: Int = 65_536,
        snapshots: SnapshotPolicy = .automatic(), queryPriority: QueryPriority = .normal
    ) throws(TouchLogError) {
        let layout = StoreLayout(root: directory)
        if create { try layout.create() } else { try layout.requireExisting() }
        let log = try storage { () throws(StorageError) in
            try LogWriter(directory: layout.log, lockPath: layout.lock, options: options)
        }
        // Format 3: the pads of new profiles are synced with each commit, before its commit block.
        let keys = log.formatVersion >= 3 ? try ProfileKeyFile(path: layout.profileKeys, writable: true) : nil
        if let keys { log.beforeCommit = { try keys.sync() } }
        // Format 2: the store-wide ids so far come from the log itself (read after the writer removed any unfinished
        // commit, and only before the first append).
        let readers = ReaderPool(directory: directory, snapshotInterval: snapshots.interval)
        let encoder = BlockEncoder(formatVersion: log.formatVersion, keys: keys) {
            () throws(TouchLogError) -> StoreDictionary in
            let reader = try readers.makeReader()
            try reader.loadDictionary()
            return reader.dictionary
        }
        self.directory = directory
        self.recovery = log.recovery
        self.blockEvents = max(1, blockEvents)
        self.snapshotPolicy = snapshots
        self.encoder = encoder
        self.writer = GroupCommitWriter(log, committed: { encoder.finished(committed: $0) })
        self.readers = readers
        self.queryThreads = QueryThreads.shared(queryPriority)
        // Pads of a commit a crash cut short go, and an erasure committed before a crash is finished.
        if let keys { try Self.recoverKeys(try readers.makeReader(), keys: keys) }
    }

    /// Opens the store in `directory` for reading only: no lock is taken, so another process may be writing to it.
    ///
    /// Queries see the commits made up to the moment they start; ``tail(from:matching:pollInterval:)`` and
    /// ``watch(_:options:)`` poll for the writer's new commits. Changes (appends, definitions, removals, erasures)
    /// throw ``TouchLogError/Code-swift.struct/readOnly``. Throws ``TouchLogError/Code-swift.struct/notFound`` when
    /// there is no store in `directory`.
    ///
    /// By default reading writes nothing. With `snapshots: .automatic()` queries also save snapshots (files of their
    /// own beside the log, written atomically, never the log or the definitions): what the `touchlog` command does,
    /// so that one process's query makes the next one fast.
    public init(readingFrom directory: String, snapshots: SnapshotPolicy = .never) throws(TouchLogError) {
        let layout = StoreLayout(root: directory)
        try layout.requireExisting()
        self.directory = directory
        self.recovery = nil
        self.blockEvents = 65_536
        self.snapshotPolicy = snapshots
        self.writer = nil
        self.encoder = nil
        self.readers = ReaderPool(directory: directory, snapshotInterval: snapshots.interval)
        self.queryThreads = QueryThreads.shared(.normal)
        // Fails now, not at the first query, when the log is unreadable.
        try readers.withReader { _ throws(TouchLogError) in }
    }

    /// Rewrites the store in `directory` into the newest log format, as `touchlog migrate` does; a store already in it
    /// is left as it is (the report's ``MigrationReport/fromVersion`` is nil).
    ///
    /// Every event keeps its offset and every commit its recorded time, so every answer stays the same. The new log
    /// is a new hash chain whose first commit names the old chain's head; the old log is kept under the store
    /// (``MigrationReport/archivedLog``), and ``verify(anchors:)`` checks both. Snapshots are removed; queries recreate what
    /// they need. Call it with the store closed: it takes the store's lock, and throws
    /// ``TouchLogError/Code-swift.struct/locked`` while another writer holds it. `progress` is called with the events
    /// rewritten so far and the total.
    public static func migrate(
        directory: String, progress: @escaping @Sendable (_ done: UInt64, _ total: UInt64) -> Void = { _, _ in }
    ) async throws(TouchLogError) -> MigrationReport {
        try await offload { () throws(TouchLogError) in
            try StoreMigration.migrate(directory: directory, progress: progress)
        }
    }

    /// True when the store was opened with ``init(readingFrom:snapshots:)``.
    public var isReadOnly: Bool { writer == nil }

    /// Releases the store's lock now, so that another writer (in this process or another) can open it; later appends
    /// fail, and tails and watches of this store end. Dropping the last reference releases the lock too, but only
    /// once in-flight work has let go of the store.
    public func close() {
        writer?.close()
        changes.close()
    }

    /// Appends `events` in one atomic commit and returns their offsets once they are durable.
    ///
    /// Concurrent calls are group-committed: they share an fsync but each stays atomic. Throws
    /// ``TouchLogError/Code-swift.struct/invalidInput`` (appending nothing) when an event breaks the contract.
    @discardableResult
    public func append(_ events: [Event]) async throws(TouchLogError) -> Range<UInt64> {
        // Each block's events are checked and interned into that block's own small tables, on all cores: no
        // store-sized string table is built (interning into one was most of the time, in cache misses).
        let encoder = try requireWriter().encoder
        let blocks: [BlockEncoder.Pending]
        do {
            blocks = try Self.blocks(total: events.count, blockEvents: blockEvents) {
                range, scratch throws(EventValidationError) in
                scratch.batch.removeAll()
                for i in range {
                    do throws(EventValidationError) { try scratch.batch.append(events[i]) } catch {
                        var error = error
                        error.index = i
                        throw error
                    }
                }
                return encoder.prepare(scratch.batch, range: 0..<scratch.batch.count, scratch: &scratch.encode)
            }
        } catch {
            throw TouchLogError(code: .invalidInput, message: "nothing appended: \(error)")
        }
        return try await append(blocks)
    }

    /// Appends a batch in one atomic commit and returns its offsets once they are durable.
    @discardableResult
    public func append(_ batch: EventBatch) async throws(TouchLogError) -> Range<UInt64> {
        let encoder = try requireWriter().encoder
        return try await append(
            Self.blocks(total: batch.count, blockEvents: blockEvents) { range, scratch in
                encoder.prepare(batch, range: range, scratch: &scratch.encode)
            })
    }

    private func append(_ blocks: [BlockEncoder.Pending]) async throws(TouchLogError) -> Range<UInt64> {
        let (writer, encoder) = try requireWriter()
        if blocks.isEmpty {
            let end = writer.withWriter { $0.endOffset }
            return end..<end
        }
        let started = Platform.monotonicNanoseconds()
        do {
            let offsets = try await writer.append(sealing: { try encoder.seal(blocks) })
            changes.signal()
            metrics.appended(offsets.count, since: started)
            return offsets
        } catch {
            throw TouchLogError(wrapping: error, "append failed")
        }
    }

    func requireWriter() throws(TouchLogError) -> (writer: GroupCommitWriter, encoder: BlockEncoder) {
        guard let writer, let encoder else {
            throw TouchLogError(
                code: .readOnly,
                message: "\(directory) was opened read-only; open it with TouchLogStore(directory:) to change it")
        }
        return (writer, encoder)
    }

    /// Per-thread memory for building blocks; `batch` only goes to the encoder, so it does not intern profiles.
    struct BlockScratch {
        var encode = EventBlockCodec.EncodeScratch()
        var batch = EventBatch.forEncoding()
    }

    /// Prepares the blocks of `total` events, `blockEvents` to a block, on all cores when there are several:
    /// `makeBlock` gets each block's range of events and its thread's scratch memory. Throws the error of the first
    /// block (in log order) that failed.
    static func blocks<E: Error>(
        total: Int, blockEvents: Int,
        _ makeBlock: @Sendable (Range<Int>, inout BlockScratch) throws(E) -> BlockEncoder.Pending
    ) throws(E) -> [BlockEncoder.Pending] {
        let starts = Array(stride(from: 0, to: total, by: blockEvents))
        let results = Mutex([Result<BlockEncoder.Pending, E>?](repeating: nil, count: starts.count))
        let workers = max(1, min(Platform.processorCount, starts.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var scratch = BlockScratch()
            for k in stride(from: worker, to: starts.count, by: workers) {
                let result: Result<BlockEncoder.Pending, E>
                do throws(E) {
                    result = .success(try makeBlock(starts[k]..<min(starts[k] + blockEvents, total), &scratch))
                } catch {
                    result = .failure(error)
                }
                results.withLock { $0[k] = result }
                if case .failure = result { return }
            }
        }
        var blocks: [BlockEncoder.Pending] = []
        for result in results.withLock({ $0 }) {
            switch result {
            case .success(let block): blocks.append(block)
            case .failure(let error): throw error
            case nil:
                preconditionFailure("a block is missing only after its thread failed on an earlier one, thrown above")
            }
        }
        return blocks
    }

    /// The offset the next appended event will get: the number of events committed (for a read-only store, as of
    /// the last commit it has seen).
    public var endOffset: UInt64 {
        if let writer { return writer.withWriter { $0.endOffset } }
        return (try? readers.withReader { reader throws(TouchLogError) in reader.endOffset }) ?? 0
    }

    /// How many times the writer has synced the log (group commit makes this fewer than the appends); 0 when read-only.
    public var syncCount: Int { writer?.withWriter { $0.syncCount } ?? 0 }

    /// Runs `body` with the log writer to itself (bulk ingest, definition changes), then wakes tails and watches.
    func withLogWriter<T: Sendable>(_ body: (LogWriter) throws(TouchLogError) -> T) throws(TouchLogError) -> T {
        defer { changes.signal() }
        return try requireWriter().writer.withWriter(body)
    }
}

/// When a store's queries save snapshots of the segment projections they fold (see <doc:Snapshots>). Snapshots only
/// make later queries faster; they never change an answer.
public struct SnapshotPolicy: Sendable, Hashable {
    /// A query saves a snapshot when it has folded at least this many events past the snapshot it started from (nil:
    /// never); ``TouchLogStore/createSnapshots(of:)`` also saves one this often along the log.
    public let interval: UInt64?

    /// Queries save a snapshot when they have folded at least `events` past the one they started from, keeping at
    /// most 8 per segment, spread along the log: the default of a store opened for writing.
    public static func automatic(every events: UInt64 = 1_000_000) -> SnapshotPolicy {
        SnapshotPolicy(interval: max(1, events))
    }

    /// Queries write nothing: the default of a store opened read-only. Snapshots are still made on request
    /// (``TouchLogStore/createSnapshots(of:)``, one at the end of the log).
    public static let never = SnapshotPolicy(interval: nil)
}

/// How the threads that run a store's queries share a busy CPU with the rest of the process (appends, the server's
/// connections). Queries, explanations, history, diffs and replays run on threads of their own, one set per priority in
/// a process; watches keep the store's own queue.
public struct QueryPriority: Sendable, Hashable {
    /// The query threads' nice value, 0 through 19: 0 is the process's own priority, and each step up gives them
    /// about a fifth less of a CPU that other threads want too. Linux only: elsewhere the threads run at the process's
    /// priority.
    public let nice: Int32

    /// Query threads at nice value `nice` (clamped to 0 through 19).
    public init(nice: Int32) { self.nice = min(19, max(0, nice)) }

    /// The process's own priority: the default of the library.
    public static let normal = QueryPriority(nice: 0)

    /// Appends first: when appends and queries both want the CPU, appends keep most of it and queries wait longer
    /// (nice value 10). What `touchlog serve` uses unless told otherwise.
    public static let belowAppends = QueryPriority(nice: 10)
}
