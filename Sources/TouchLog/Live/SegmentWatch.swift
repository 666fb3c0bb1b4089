import Synchronization

/// How a ``SegmentWatch`` re-evaluates its segment.
public struct SegmentWatchOptions: Sendable {
    /// How often to re-evaluate when nothing is committed: members also enter and leave as time passes (a `last`
    /// window slides, a `from`/`to` bound is crossed, an event stamped in the future becomes visible).
    public var recheckInterval: Duration = .seconds(1)
    /// The least time between two evaluations, however often commits arrive (they are taken together).
    public var minimumInterval: Duration = .milliseconds(50)
    /// For a read-only store: how often to look for the writer's commits.
    public var pollInterval: Duration = .milliseconds(100)
    /// Whether the first update lists every current member as entered (``SegmentUpdate/isInitial``).
    public var includeInitialMembers = true
    /// The as-of time of each evaluation, epoch ms. Default: the wall clock.
    public var clock: @Sendable () -> Int64 = { Timestamp.now() }

    /// Options with the given intervals; the rest keep their defaults.
    public init(
        recheckInterval: Duration = .seconds(1), minimumInterval: Duration = .milliseconds(50),
        includeInitialMembers: Bool = true
    ) {
        self.recheckInterval = recheckInterval
        self.minimumInterval = minimumInterval
        self.includeInitialMembers = includeInitialMembers
    }
}

/// Who entered and who left a segment between two evaluations of a ``SegmentWatch``. It encodes with its fields as
/// named (``asOf`` in epoch milliseconds).
public struct SegmentUpdate: Sendable, Equatable, Codable {
    /// The segment's name.
    public var segment: String
    /// The definition version evaluated (a new version is reported as the difference it makes).
    public var version: Int
    /// The as-of time of the evaluation, epoch ms (everything recorded by then counts).
    public var asOf: Int64
    /// The log's end offset at the evaluation: every event before it was seen.
    public var endOffset: UInt64
    /// Profiles that entered, sorted by bytes (for the first update: every member).
    public var entered: [String]
    /// Profiles that left, sorted by bytes.
    public var exited: [String]
    /// True for the first update, whose ``entered`` is the whole membership.
    public var isInitial: Bool
}

/// A segment's entries and exits as they happen, as an `AsyncSequence` of ``SegmentUpdate``s.
///
/// The segment is evaluated as of "now" (``SegmentWatchOptions/clock``) after each commit of the store (at most every
/// ``SegmentWatchOptions/minimumInterval``) and every ``SegmentWatchOptions/recheckInterval`` in any case; an update
/// is produced when the members changed. Each evaluation uses the segment's current definition, so putting a new
/// version reports the difference it makes; removing the segment ends iteration with
/// ``TouchLogError/Code-swift.struct/notFound``. Iteration ends when the task is cancelled or the store closed.
public struct SegmentWatch: AsyncSequence, Sendable {
    public typealias Element = SegmentUpdate

    let store: TouchLogStore
    let name: String
    let options: SegmentWatchOptions

    public func makeAsyncIterator() -> Iterator {
        Iterator(watch: self)
    }

    /// Iterates the updates; each iterator evaluates the segment on its own, in the rounds in which the store steps
    /// every waiting watch.
    public struct Iterator: AsyncIteratorProtocol {
        private let watch: SegmentWatch
        private let live = LiveState()
        private var progress = WatchProgress()
        /// Counted in `touchlog_watched_segments` while the iterator lives.
        private let counted = WatchCount()

        init(watch: SegmentWatch) {
            self.watch = watch
        }

        public mutating func next() async throws -> SegmentUpdate? {
            try await watch.store.watchHub.next(watch, live: live, progress: &progress)
        }
    }
}

extension TouchLogStore {
    /// Watches the segment `name`: its entries and exits as they happen. See ``SegmentWatch``.
    ///
    /// ```swift
    /// for try await update in store.watch("discount-clickers-not-converted") {
    ///     audience.add(update.entered)
    ///     audience.remove(update.exited)
    /// }
    /// ```
    public func watch(_ name: String, options: SegmentWatchOptions = SegmentWatchOptions()) -> SegmentWatch {
        SegmentWatch(store: self, name: name, options: options)
    }
}

/// A watch's ``LiveAudience``, built at its first evaluation and again when the definition (or a segment it refers
/// to) changes, a profile is erased, or the clock goes back; between those, each evaluation re-checks only the
/// profiles that can have changed.
final class LiveState: Sendable {
    // A watch iterator evaluates one step at a time (each `next()` awaits the last); the lock makes that hold
    // whatever a caller does.
    private let audience = Mutex<LiveAudience?>(nil)

    struct Step: Sendable {
        var endOffset: UInt64
        var entered: [String]
        var exited: [String]
        /// The first evaluation: ``entered`` is every member.
        var isInitial: Bool
    }

    /// Whether it holds an audience of `definition` (else the next step builds one).
    func holdsAudience(of definition: SegmentDefinition) -> Bool {
        audience.withLock { $0?.definition == definition }
    }

    /// `blocks`: decoded blocks shared with other watches of the store.
    func advance(_ reader: StoreReader, definition: SegmentDefinition, to asOf: Int64, blocks: DecodedBlockCache? = nil)
        throws -> Step
    {
        try audience.withLock { audience in
            try reader.readErasures()
            let erasures = reader.erasures.records.count
            if let audience, audience.definition == definition, audience.erasures == erasures, audience.asOf <= asOf {
                let (entered, exited) = try audience.advance(reader, to: asOf, blocks: blocks)
                return Step(endOffset: audience.endOffset, entered: entered, exited: exited, isInitial: false)
            }
            let before = audience?.members
            let fresh = LiveAudience(definition, erasures: erasures)
            _ = try fresh.advance(reader, to: asOf, blocks: blocks)
            audience = fresh
            let now = fresh.members
            guard let before else {
                return Step(endOffset: fresh.endOffset, entered: now, exited: [], isInitial: true)
            }
            let diff = SegmentDiff(before: before, after: now)
            return Step(endOffset: fresh.endOffset, entered: diff.entered, exited: diff.exited, isInitial: false)
        }
    }
}
