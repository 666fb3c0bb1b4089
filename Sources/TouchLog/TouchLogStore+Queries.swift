import Dispatch
import TouchLogStorage

extension QueryTime {
    /// As of the current wall-clock time, by everything recorded: what a segment is "now".
    public static var now: QueryTime { QueryTime(asOf: Timestamp.now()) }
}

extension TouchLogStore {
    // MARK: Segment definitions

    /// The store's segment definitions, every version kept.
    public var segments: SegmentCatalog { SegmentCatalog(layout: StoreLayout(root: directory)) }

    /// Stores `definition` as the next version of its name; returns that version and whether anything changed
    /// (putting the current definition again stores nothing). Durable on return; serialized with appends.
    ///
    /// Throws ``TouchLogError/Code-swift.struct/invalidInput`` when the definition refers to a segment that does not
    /// exist, the references form a cycle or nest too deep, and ``TouchLogError/Code-swift.struct/readOnly`` for a
    /// store opened read-only.
    @discardableResult
    public func putSegment(_ definition: SegmentDefinition) async throws(TouchLogError) -> (version: Int, changed: Bool)
    {
        try await offload { () throws(TouchLogError) in try self.putSegmentNow(definition) }
    }

    /// Removes a segment; its versions are kept for audit. Returns the version number of the removal.
    ///
    /// Throws ``TouchLogError/Code-swift.struct/notFound`` when there is no such segment, and
    /// ``TouchLogError/Code-swift.struct/conflict`` while another segment refers to it.
    @discardableResult
    public func removeSegment(_ name: String) async throws(TouchLogError) -> Int {
        try await offload { () throws(TouchLogError) in try self.removeSegmentNow(name) }
    }

    /// ``putSegment(_:)`` on the caller's thread (for callers that are not async, such as a cluster node's handler).
    @discardableResult
    package func putSegmentNow(_ definition: SegmentDefinition) throws(TouchLogError) -> (version: Int, changed: Bool) {
        try withLogWriter { _ throws(TouchLogError) in
            defer { definitionChanges.add(1, ordering: .sequentiallyConsistent) }
            return try segments.put(definition)
        }
    }

    /// ``removeSegment(_:)`` on the caller's thread.
    @discardableResult
    package func removeSegmentNow(_ name: String) throws(TouchLogError) -> Int {
        try withLogWriter { _ throws(TouchLogError) in
            defer { definitionChanges.add(1, ordering: .sequentiallyConsistent) }
            return try segments.remove(name)
        }
    }

    /// The current version and definition (references resolved) of the segment `name`, as
    /// ``SegmentCatalog/current(_:)`` reads it: a store opened for writing keeps what it read until it changes a
    /// definition (no other process can), so a query by name does not read the catalog each time.
    package func currentSegment(_ name: String) throws(TouchLogError) -> (version: Int, definition: SegmentDefinition) {
        guard !isReadOnly else { return try segments.current(name) }
        let changes = definitionChanges.load(ordering: .sequentiallyConsistent)
        if let known = currentDefinitions.withLock({ $0.changes == changes ? $0.definitions[name] : nil }) {
            return known
        }
        let current = try segments.current(name)
        currentDefinitions.withLock { cache in
            if cache.changes != changes { cache = (changes, [:]) }
            cache.definitions[name] = current
        }
        return current
    }

    // MARK: Queries

    /// The members of the segment `name` (its current definition) at `time`, sorted ascending by bytes.
    ///
    /// Starts from the newest usable snapshot and reads only the log after it; may save a snapshot for later queries.
    /// Throws ``TouchLogError/Code-swift.struct/notFound`` when there is no such segment.
    public func members(of name: String, at time: QueryTime = .now) async throws(TouchLogError) -> [String] {
        try await members(of: try currentSegment(name).definition, at: time)
    }

    /// The members of `definition` (stored or not) at `time`, sorted ascending by bytes.
    public func members(of definition: SegmentDefinition, at time: QueryTime = .now) async throws(TouchLogError)
        -> [String]
    {
        try await answer(definition, at: time, listing: true).members ?? []
    }

    /// The members of `definition` at `time` (with `listing`) or only their count, and the as-of time answered. Nil
    /// `time`: now, by everything recorded, the wall clock when the store answers (what a server answers when no time
    /// is given); a repeated ask is answered by the definition's live audience, at its own time when the wall clock
    /// went back, so the answers' times never go back. A live audience answers whatever it can (see ``LiveQueries``);
    /// a reader the rest.
    package func answer(_ definition: SegmentDefinition, at time: QueryTime?, listing: Bool)
        async throws(TouchLogError) -> SegmentAnswer
    {
        let operation = listing ? "members" : "count"
        return try await metrics.timeQuery(operation, asOf: time?.asOf ?? Timestamp.now(), knownAt: time?.knownAt) {
            () throws(TouchLogError) in
            if time?.knownAt == nil, let live = try await liveAnswer(definition, at: time?.asOf, listing: listing) {
                return live
            }
            let time = time ?? .now
            return try await read("query \(definition.name)") { reader in
                guard listing else {
                    return SegmentAnswer(asOf: time.asOf, count: try reader.count(of: definition, at: time))
                }
                let members = try reader.members(of: definition, at: time)
                return SegmentAnswer(asOf: time.asOf, count: members.count, members: members)
            }
        }
    }

    /// How many members the segment `name` (its current definition) has at `time`: ``members(of:at:)-(String,_)``'s
    /// count, without building the list.
    public func count(of name: String, at time: QueryTime = .now) async throws(TouchLogError) -> Int {
        try await count(of: try currentSegment(name).definition, at: time)
    }

    /// How many members `definition` (stored or not) has at `time`.
    public func count(of definition: SegmentDefinition, at time: QueryTime = .now) async throws(TouchLogError) -> Int {
        try await answer(definition, at: time, listing: false).count
    }

    /// Why `profile` is, or is not, in the segment `name` at `time`: each rule's verdict and the events that decided it.
    public func explain(_ name: String, profile: String, at time: QueryTime = .now) async throws(TouchLogError)
        -> Explanation
    {
        try await explain(try currentSegment(name).definition, profile: profile, at: time)
    }

    /// Why `profile` is, or is not, a member of `definition` (stored or not) at `time`.
    public func explain(_ definition: SegmentDefinition, profile: String, at time: QueryTime = .now)
        async throws(TouchLogError) -> Explanation
    {
        try await metrics.timeQuery("explain", asOf: time.asOf, knownAt: time.knownAt) { () throws(TouchLogError) in
            try await read("explain \(definition.name)") { reader in
                try reader.explain(definition, profile: profile, at: time)
            }
        }
    }

    /// The member count of the segment `name` (its current definition) at `from`, `from + step`, … up to `to`, by what
    /// the store knew at `knownAt`, in one pass over the log: each profile is evaluated only at the steps where one of
    /// its events enters or leaves a rule's window, since membership cannot change in between. Throws
    /// ``TouchLogError/Code-swift.struct/invalidArgument`` when `to` is before `from` or `step` is not positive.
    public func history(of name: String, from: Int64, to: Int64, step: Int64, knownAt: Int64? = nil)
        async throws(TouchLogError) -> SegmentHistory
    {
        try await history(of: try currentSegment(name).definition, from: from, to: to, step: step, knownAt: knownAt)
    }

    /// The history of `definition` (stored or not).
    public func history(of definition: SegmentDefinition, from: Int64, to: Int64, step: Int64, knownAt: Int64? = nil)
        async throws(TouchLogError) -> SegmentHistory
    {
        try await metrics.timeQuery("history", asOf: to, knownAt: knownAt) { () throws(TouchLogError) in
            try await read("history \(definition.name)") { reader in
                try reader.history(of: definition, from: from, to: to, step: step, knownAt: knownAt)
            }
        }
    }

    /// Who entered and who left the segment `name` between two times (its current definition at both), sorted by
    /// profile.
    public func diff(_ name: String, from before: QueryTime, to after: QueryTime) async throws(TouchLogError)
        -> SegmentDiff
    {
        let definition = try segments.current(name).definition
        return try await metrics.timeQuery("diff", asOf: after.asOf, knownAt: after.knownAt) {
            () throws(TouchLogError) in
            try await read("diff \(name)") { reader in
                SegmentDiff(
                    before: try reader.members(of: definition, at: before),
                    after: try reader.members(of: definition, at: after))
            }
        }
    }

    // MARK: Replay

    /// The events matching `filter`, in log order. For large ranges use ``replay(matching:)``, which streams.
    public func events(matching filter: ReplayFilter = ReplayFilter()) async throws(TouchLogError) -> [StoredEvent] {
        try await read("replay") { reader in try reader.events(matching: filter) }
    }

    /// The committed events matching `filter`, in log order, read a block at a time; the sequence ends at the end of
    /// the log as it was when iteration started. Every block is checked against its checksum.
    public func replay(matching filter: ReplayFilter = ReplayFilter()) -> EventStream {
        EventStream(store: self, filter: filter, follow: false)
    }

    /// The events from `offset` on that match `filter`: first those already committed, then each new commit as it
    /// becomes durable. Without `offset` (and no ``ReplayFilter/fromOffset``), only events committed after this call.
    /// The sequence ends only when the task is cancelled or the store is closed.
    ///
    /// A read-only store looks for the writer's commits every `pollInterval`; a store opened for writing is woken by
    /// its own commits.
    public func tail(
        from offset: UInt64? = nil, matching filter: ReplayFilter = ReplayFilter(),
        pollInterval: Duration = .milliseconds(100)
    ) -> EventStream {
        var filter = filter
        filter.fromOffset = max(offset ?? filter.fromOffset ?? endOffset, filter.fromOffset ?? 0)
        var stream = EventStream(store: self, filter: filter, follow: true)
        stream.pollInterval = pollInterval
        return stream
    }

    // MARK: Snapshots, audit

    /// Snapshots every current segment (or only `name`) at the end of the log: folds the log from the newest
    /// snapshot into the segment's projection and saves it; in format 2 and later also one every
    /// ``SnapshotPolicy/interval`` events on the way (see <doc:Snapshots>). Works on a store opened read-only too:
    /// snapshots are files of their own, never the log. Throws ``TouchLogError/Code-swift.struct/notFound`` when
    /// `name` is no current segment.
    public func createSnapshots(of name: String? = nil) async throws(TouchLogError) -> [SnapshotCreation] {
        let current = try segments.list().filter { name == nil || $0.name == name }
        if let name, current.isEmpty { _ = try segments.current(name) }
        return try await read("snapshot") { reader in
            try current.map { segment in
                let snapshot = try reader.createSnapshot(of: segment.definition)
                // (One that would keep nothing, every rule being cheaper to read from the log, is not saved.)
                let helps =
                    reader.snapshotsHelp(segment.definition)
                    && (snapshot != nil || reader.lastQuery.snapshotsNotWorthKeeping == 0)
                return SnapshotCreation(segment: segment.name, snapshot: snapshot, helps: helps)
            }
        }
    }

    /// Every snapshot in the store, by key and offset, each with the current segment it belongs to.
    public func snapshots() throws(TouchLogError) -> [SnapshotInfo] {
        var names: [String: String] = [:]
        for segment in try segments.list() { names[SnapshotStore.key(segment.definition)] = segment.name }
        return SnapshotStore(layout: StoreLayout(root: directory)).all().map { info in
            var info = info
            info.segment = names[info.key]
            return info
        }
    }

    /// Keeps the newest `keep` snapshots of each current segment and deletes the rest, and those of earlier or removed
    /// definitions; returns what was deleted. Works on a store opened read-only too.
    @discardableResult
    public func pruneSnapshots(keep: Int) async throws(TouchLogError) -> [SnapshotInfo] {
        let keys = Set(try segments.list().map { SnapshotStore.key($0.definition) })
        return try await read("prune snapshots") { reader in try reader.pruneSnapshots(keep: keep, currentKeys: keys) }
    }

    /// Checks every checksum, the hash chain, offsets, snapshots and definitions, and that the log still holds each of
    /// `anchors` (chain heads an auditor noted earlier) as a committed block; see ``StoreVerifyReport``.
    public func verify(anchors: [BlockHash] = []) async throws(TouchLogError) -> StoreVerifyReport {
        let directory = self.directory
        return try await offload { () throws(TouchLogError) in
            try StoreVerifier.verify(directory: directory, anchors: anchors)
        }
    }

    /// Events, profiles, touchpoints, files, bytes and time ranges of the store.
    public func stats() async throws(TouchLogError) -> StoreStats {
        try await stats(progress: { _, _ in })
    }

    /// ``stats()``, calling `progress` with the events counted so far and the total as it goes.
    package func stats(progress: @escaping @Sendable (_ done: UInt64, _ total: UInt64) -> Void)
        async throws(TouchLogError) -> StoreStats
    {
        try await read("stats") { reader in try reader.stats(progress: progress) }
    }

    /// The bytes of the log's files (what `/metrics` reports as `touchlog_log_bytes`).
    package func logBytes() -> Int64 { directorySize(StoreLayout(root: directory).log) }

    /// The chain head: the hash of the last committed block (as ``verify(anchors:)`` prints it).
    public func headHash() throws(TouchLogError) -> BlockHash {
        try readers.withReader { reader throws(TouchLogError) in reader.headHash }
    }

    /// Runs `body` on one of the store's query threads (or on `queue`'s, when given) with a pooled reader that sees
    /// every commit made before the call.
    func read<T: Sendable>(
        _ what: String, on queue: DispatchQueue? = nil, _ body: @escaping @Sendable (StoreReader) throws -> T
    )
        async throws(TouchLogError) -> T
    {
        let readers = self.readers
        return try await offload(on: queue ?? .global(), threads: queue == nil ? queryThreads : nil) {
            () throws(TouchLogError) in
            try readers.withReader { reader throws(TouchLogError) in
                do { return try body(reader) } catch { throw TouchLogError(wrapping: error, "\(what) failed") }
            }
        }
    }
}
