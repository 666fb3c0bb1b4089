/// Events of a store in log order, as an `AsyncSequence`: a replay of a range (``TouchLogStore/replay(matching:)``),
/// or a tail that goes on with each new commit (``TouchLogStore/tail(from:matching:pollInterval:)``).
///
/// Events are read a chunk of blocks at a time, each block checked against its checksum; damage is thrown as
/// ``TouchLogError/Code-swift.struct/corrupt``. Iterating a tail ends when the task is cancelled or the store closed.
/// Each iterator has a reader of its own, so many tasks can iterate the same stream at once.
public struct EventStream: AsyncSequence, Sendable {
    public typealias Element = StoredEvent

    let store: TouchLogStore
    let filter: ReplayFilter
    let follow: Bool
    /// For a tail of a read-only store: how often to look for the writer's commits.
    var pollInterval: Duration = .milliseconds(100)
    /// Offsets read per step; blocks outside the filter's time range are skipped unread.
    static let chunkEvents: UInt64 = 65_536

    init(store: TouchLogStore, filter: ReplayFilter, follow: Bool) {
        self.store = store
        self.filter = filter
        self.follow = follow
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self)
    }

    /// Iterates the events with a reader of its own.
    public struct Iterator: AsyncIteratorProtocol {
        private let stream: EventStream
        private var reader: StoreReader?
        private var buffered: [StoredEvent] = []
        private var position = 0
        /// The first offset not read yet.
        private var nextOffset: UInt64
        /// For a replay: the end of the log when iteration started.
        private var end: UInt64?

        init(stream: EventStream) {
            self.stream = stream
            self.nextOffset = stream.filter.fromOffset ?? 0
        }

        public mutating func next() async throws -> StoredEvent? {
            while true {
                if position < buffered.count {
                    position += 1
                    return buffered[position - 1]
                }
                if Task.isCancelled { return nil }
                // Read before looking at the log, so that a commit made while looking wakes the wait below.
                let generation = stream.store.changes.generation
                let reader = try self.reader ?? stream.store.readers.makeReader()
                self.reader = reader
                try reader.refresh()
                let start = nextOffset
                if !stream.follow && end == nil { end = reader.endOffset }
                let limit = Swift.min(end ?? reader.endOffset, stream.filter.toOffset.map { $0 &+ 1 } ?? .max)
                if !stream.follow && start >= limit { return nil }
                if let to = stream.filter.toOffset, start > to { return nil }
                if start < limit {
                    var chunk = stream.filter
                    chunk.fromOffset = start
                    chunk.toOffset = Swift.min(limit, start + EventStream.chunkEvents) - 1
                    buffered = try reader.events(matching: chunk)
                    position = 0
                    nextOffset = chunk.toOffset! + 1
                    continue
                }
                if stream.store.changes.isClosed { return nil }
                if stream.store.isReadOnly {
                    try? await Task.sleep(for: stream.pollInterval)
                } else {
                    await stream.store.changes.wait(after: generation)
                }
            }
        }
    }
}
