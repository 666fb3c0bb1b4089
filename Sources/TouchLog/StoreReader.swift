import Dispatch
import Synchronization
import TouchLogStorage

/// One decoded block of the log.
package struct DecodedBlock: Sendable {
    /// Offset of the block's first event.
    package var firstOffset: UInt64
    /// When the store committed the block.
    package var recorded: Int64
    /// The block's events, in log order.
    package var events: EventBatch
    /// Each event's store-wide profile id, when the block was decoded for a live audience without profile names
    /// (``StoreReader/decode(_:profileNames:)``): then ``events`` holds no profiles, and the names are those of the
    /// reader's ``StoreReader/dictionary``. Nil otherwise, and for format-1 blocks.
    var storeProfileIDs: [UInt32]? = nil

    /// Event `index` with its offset and recorded time.
    package func storedEvent(at index: Int) -> StoredEvent {
        StoredEvent(offset: firstOffset + UInt64(index), recorded: recorded, event: events.event(at: index))
    }
}

/// Reads a store's committed events; works while another process writes.
///
/// Sees the commits made up to its creation or its last ``refresh()``. Every block read is checked against its
/// checksum; damage is thrown as ``TouchLogError/Code-swift.struct/corrupt`` naming file, block and byte.
/// Not thread-safe: give each task its own reader.
package final class StoreReader {
    /// The store directory.
    package let directory: String
    let log: LogReader
    /// A query saves a snapshot of a segment's projection when it has folded at least this many events past the
    /// snapshot it started from (nil: never); at most 8 are kept per segment. Snapshots only make later queries
    /// faster; they never change an answer.
    package var snapshotInterval: UInt64? = 1_000_000
    /// False: queries fold the log from its start and never read a snapshot (an audit trusts only the log).
    package var usesSnapshots = true
    /// A snapshot keeps a rule over a moving window as latest times only when they number at most 1/this of the
    /// events of the blocks the window meets (0: whenever it can; see ``recentEntries(_:_:blocks:watermark:summaries:profiles:)``).
    package var latestTimesShare = 8
    /// What the last segment query read and wrote.
    package internal(set) var lastQuery = QueryReport()
    /// Projections kept in memory across queries (shared by the readers of a ``TouchLogStore``); nil: none.
    var projectionCache: ProjectionCache?
    /// Format 2: the store-wide ids of profiles and touchpoints, read from the blocks this reader has needed so far.
    var dictionary = StoreDictionary()
    /// Buffers reused from one block to the next.
    private var payload: [UInt8] = []
    private var scratch = EventBatch()
    private var summaryBytes: [UInt8] = []
    /// Format-2 segment queries this reader has answered.
    var groupedQueries = 0
    /// Format 2: the summaries of the log's first blocks, parsed once (shared by the readers of a ``TouchLogStore``).
    var summaryCache = SummaryCache()
    /// Format 2: summaries read out of log order (past the end of ``summaryCache``'s), by block index.
    private var summariesAhead: [Int: BlockSummary] = [:]
    /// Format 2: the stored bytes of the last section read (a buffer reused from one read to the next).
    var sectionBytes: [UInt8] = []
    /// Format 2: buffers of ``mayHold(_:block:)``.
    var pruningBytes: [UInt8] = []
    var pruningIDs: [UInt32] = []
    private var groupedScratch = GroupedBlockCodec.DecodeScratch()
    /// Format 2: the buffers the workers of this reader's last query set conversions aside in, emptied, for the
    /// next query's (see ``GroupedQueryState/setAside``).
    var conversionBuffers: [[GroupedQueryState.Conversion]] = []
    /// Format 2: the times and profiles sections queries read lately (a ``TouchLogStore``'s readers share one; a
    /// reader on its own, such as one CLI query's, keeps none).
    var sectionCache: SectionCache?
    /// Format 2: snapshots decoded lately (shared by the readers of a ``TouchLogStore``).
    var snapshotCache = SnapshotCache()
    /// Format 3: the key file, opened when first needed.
    var keyFile: ProfileKeyFile?
    /// Format 3: the erasures the log records, as of the last refresh.
    var erasures = Erasures()

    /// Opens the store in `directory` for reading. Throws ``TouchLogError/Code-swift.struct/notFound`` when there is none.
    package init(directory: String) throws(TouchLogError) {
        let layout = StoreLayout(root: directory)
        try layout.requireExisting()
        self.directory = directory
        self.log = try storage { () throws(StorageError) in try LogReader(directory: layout.log) }
        try readErasures()
    }

    /// Picks up commits made since opening.
    package func refresh() throws(TouchLogError) {
        try storage { () throws(StorageError) in try log.refresh() }
        try readErasures()
    }

    /// The offset after the last committed event (the number of events in the store).
    package var endOffset: UInt64 { log.endOffset }

    /// The chain head: hash of the last committed block.
    package var headHash: BlockHash { log.headHash }

    /// Calls `body` with each block that may hold events matching `filter`, in log order; blocks that cannot (by their
    /// header's offset and time ranges; in format 2 also by their summary's touchpoints and types and by their profile
    /// ids) are skipped without being decoded.
    package func forEachBlock(matching filter: ReplayFilter = ReplayFilter(), _ body: (DecodedBlock) throws -> Void)
        throws
    {
        try forEachBlock(matching: filter, recordedBy: nil, body)
    }

    /// ``forEachBlock(matching:_:)`` over the blocks recorded by `knownAt` only (all when nil): what the store knew then.
    func forEachBlock(matching filter: ReplayFilter, recordedBy knownAt: Int64?, _ body: (DecodedBlock) throws -> Void)
        throws
    {
        let pruning = try pruning(for: filter)
        if pruning?.matchesNothing == true { return }
        let knownAt = [knownAt, filter.knownAt].compactMap { $0 }.min()
        let start = filter.fromOffset.flatMap { log.blockIndex(containing: $0) } ?? 0
        for index in log.blocks.indices.dropFirst(start) {
            let header = log.blocks[index].header
            if let knownAt, header.maxRecorded > knownAt { break }
            if let to = filter.toOffset, header.firstOffset > to { break }
            guard
                filter.mayMatch(
                    firstOffset: header.firstOffset, endOffset: header.endOffset,
                    minTime: header.minTime, maxTime: header.maxTime)
            else { continue }
            if let pruning, try !mayHold(pruning, block: index) { continue }
            try body(try decode(log.blocks[index]))
        }
    }

    /// Every event matching `filter`, in log order (for small ranges; large replays should use ``forEachBlock(matching:_:)``).
    package func events(matching filter: ReplayFilter = ReplayFilter()) throws -> [StoredEvent] {
        var result: [StoredEvent] = []
        try forEachBlock(matching: filter) { block in
            for i in filter.matches(in: block) { result.append(block.storedEvent(at: i)) }
        }
        return result
    }

    /// The format version of the store's log (1 for a store without files yet).
    package var formatVersion: UInt16 { log.formatVersion ?? 1 }

    /// Format 2: reads the new-profile and new-touchpoint sections of the blocks up to and including `last` (default:
    /// every block) that it has not read yet.
    func loadDictionary(through last: Int? = nil) throws(TouchLogError) {
        try loadTouchpoints(through: last)
        let last = last ?? log.blocks.count - 1
        if last - dictionary.profileBlocks >= 8 { try loadProfilesOnEveryCore(through: last) }
        while dictionary.profileBlocks <= last {
            let index = dictionary.profileBlocks
            let sealed = log.blocks[index].header.version >= 3
            try readDictionarySection(.newProfiles, of: index) { summary, section throws(DecodeError) in
                try dictionary.addProfiles(summary, section: section, strict: false, sealed: sealed)
            }
        }
    }

    /// ``loadDictionary(through:)``'s profiles, when many blocks are to be read: each block's new-profiles section is
    /// read, opened (format 3) and decoded into a table of its own on every core, and the tables are appended in log
    /// order. (The dictionary of a million profiles is loaded by a reader's second query; on one core that took most
    /// of that query.)
    private func loadProfilesOnEveryCore(through last: Int) throws(TouchLogError) {
        let blocks = Array(dictionary.profileBlocks...last)
        let summaries = try blocks.map { b throws(TouchLogError) in try summary(of: b) }
        let locations = log.blocks
        let keys = formatVersion >= 3 ? try profileKeys() : nil
        let erased = erasures.profiles
        let workers = max(1, min(Self.queryThreads, blocks.count / 4))
        let tables = Mutex([StringTable](repeating: StringTable(), count: blocks.count))
        try Self.onEveryWorker((0..<workers).map { _ in log.bodyReader() }) { w, reader throws(TouchLogError) in
            var stored: [UInt8] = []
            var raw: [UInt8] = []
            for k in stride(from: w, to: blocks.count, by: workers) {
                let location = locations[blocks[k]]
                let summary = summaries[k]
                try Self.readSection(.newProfiles, of: location, summary, reader: reader, stored: &stored, into: &raw)
                if let keys {
                    try Self.openProfiles(&raw, of: location, summary, keys: keys, erased: erased, reader: reader)
                }
                let sealed = location.header.version >= 3
                var table = StringTable()
                do {
                    try raw.withDecodedBytes { section throws(DecodeError) in
                        try StoreDictionary.read(
                            section, summary.newProfiles, into: &table, strict: false, sealed: sealed, "profile")
                    }
                } catch {
                    throw TouchLogError(
                        code: .corrupt, message: "\(reader.location(of: location)): bad block dictionary: \(error)")
                }
                tables.withLock { $0[k] = table }
            }
        }
        let decoded = tables.withLock { $0 }
        dictionary.profiles.reserve(
            strings: decoded.reduce(0) { $0 + $1.count }, bytes: decoded.reduce(0) { $0 + $1.bytes.count })
        for (k, table) in decoded.enumerated() {
            do { try dictionary.addProfiles(summaries[k], decoded: table) } catch {
                throw TouchLogError(
                    code: .corrupt, message: "\(log.location(of: locations[blocks[k]])): bad block dictionary: \(error)"
                )
            }
        }
    }

    /// Format 2: reads the new-touchpoint sections of the blocks up to and including `last` (default: every block).
    func loadTouchpoints(through last: Int? = nil) throws(TouchLogError) {
        let last = last ?? log.blocks.count - 1
        while dictionary.touchpointBlocks <= last {
            let index = dictionary.touchpointBlocks
            try readDictionarySection(.newTouchpoints, of: index) { summary, section throws(DecodeError) in
                try dictionary.addTouchpoints(summary, section: section, strict: false)
            }
        }
    }

    private func readDictionarySection(
        _ kind: BlockSummary.SectionKind, of index: Int,
        _ add: (BlockSummary, UnsafeRawBufferPointer) throws(DecodeError) -> Void
    ) throws(TouchLogError) {
        let location = log.blocks[index]
        let summary = try summary(of: index)
        var raw: [UInt8] = []
        try Self.readSection(kind, of: location, summary, reader: log, stored: &sectionBytes, into: &raw)
        if kind == .newProfiles { try openProfiles(&raw, of: location, summary) }
        do {
            try raw.withDecodedBytes { section throws(DecodeError) in try add(summary, section) }
        } catch {
            throw TouchLogError(
                code: .corrupt, message: "\(log.location(of: location)): bad block dictionary: \(error)")
        }
    }

    /// The summary of format-2 block `index`, read (and checked) once and then kept.
    func summary(of index: Int) throws(TouchLogError) -> BlockSummary {
        let known = summaryCache.summaries(of: log.blocks)
        if index < known.count { return known[index] }
        if let summary = summariesAhead[index] { return summary }
        let summary = try readSummary(of: index)
        if index == known.count {
            _ = summaryCache.extend(from: index, with: [summary], of: log.blocks)
        } else {
            // Only a reader that skips blocks gets here (a replay that starts late, a damaged block before).
            if summariesAhead.count >= 4_096 { summariesAhead.removeAll() }
            summariesAhead[index] = summary
        }
        return summary
    }

    /// Reads and parses the summary of format-2 block `index`.
    private func readSummary(of index: Int) throws(TouchLogError) -> BlockSummary {
        let location = log.blocks[index]
        try storage { () throws(StorageError) in try log.readSummary(of: location, into: &summaryBytes) }
        do { return try BlockSummary(summaryBytes, header: location.header) } catch {
            throw TouchLogError(code: .corrupt, message: "\(log.location(of: location)): bad block summary: \(error)")
        }
    }

    /// The summaries of blocks `0..<end` (see ``summary(of:)``); those not read yet are read and parsed on every core.
    func summaries(through end: Int) throws(TouchLogError) -> BlockSummaries {
        // Only readers of two different logs (one replaced under an open store) can make it ask again; after two
        // tries this reader keeps summaries of its own.
        for attempt in 0..<3 {
            if attempt == 2 { summaryCache = SummaryCache() }
            if let summaries = try summaries(through: end, in: summaryCache) { return summaries }
        }
        preconditionFailure("a cache of this reader's own takes no other log's summaries")
    }

    /// ``summaries(through:)`` from `cache`, or nil when another log's reader changed it meanwhile.
    private func summaries(through end: Int, in cache: SummaryCache) throws(TouchLogError) -> BlockSummaries? {
        let known = cache.summaries(of: log.blocks)
        if end <= known.count { return known.truncated(to: end) }
        let start = known.count
        var parsed = (start..<end).map { summariesAhead[$0] }
        let missing = parsed.indices.filter { parsed[$0] == nil }
        let workers = max(1, min(StoreReader.queryThreads, missing.count / 16))
        if workers > 1 {
            let blocks = log.blocks
            let results = Mutex([BlockSummary?](repeating: nil, count: missing.count))
            try Self.onEveryWorker((0..<workers).map { _ in log.bodyReader() }) { w, reader in
                var bytes: [UInt8] = []
                for k in stride(from: w, to: missing.count, by: workers) {
                    let location = blocks[start + missing[k]]
                    // A summary that cannot be read is left to readSummary(of:) below, which names the damage.
                    guard (try? reader.readSummary(of: location, into: &bytes)) != nil,
                        let summary = try? BlockSummary(bytes, header: location.header)
                    else { continue }
                    results.withLock { $0[k] = summary }
                }
            }
            for (k, summary) in results.withLock({ $0 }).enumerated() { parsed[missing[k]] = summary }
        }
        var summaries: [BlockSummary] = []
        summaries.reserveCapacity(parsed.count)
        for k in parsed.indices {
            if let summary = parsed[k] {
                summaries.append(summary)
            } else {
                summaries.append(try readSummary(of: start + k))
            }
        }
        if !summariesAhead.isEmpty { summariesAhead = summariesAhead.filter { $0.key >= end } }
        return cache.extend(from: start, with: summaries, of: log.blocks)?.truncated(to: end)
    }

    /// Reads and decodes a block. The returned block shares storage with the reader's buffers, which the next
    /// decode reuses; a caller that keeps it past that costs a copy, never a wrong answer.
    func decode(_ location: BlockLocation, profileNames: Bool = true) throws(TouchLogError) -> DecodedBlock {
        try storage { () throws(StorageError) in try log.read(location, into: &payload) }
        var events = EventBatch()
        swap(&events, &scratch)
        defer { scratch = events }
        do {
            if location.header.version >= 2 {
                guard let index = log.blockIndex(containing: location.header.firstOffset) else {
                    throw DecodeError(byte: 0, reason: "not a committed block")
                }
                try loadDictionary(through: index)
                try decodeGrouped(location.header, into: &events, profileNames: profileNames)
                return DecodedBlock(
                    firstOffset: location.header.firstOffset, recorded: location.header.maxRecorded, events: events,
                    storeProfileIDs: profileNames ? nil : Array(groupedScratch.profiles[..<events.count]))
            }
            try EventBlockCodec.decode(payload, into: &events)
            guard events.count == Int(location.header.count) else {
                throw DecodeError(
                    byte: 0, reason: "holds \(events.count) events, its header says \(location.header.count)")
            }
            return DecodedBlock(
                firstOffset: location.header.firstOffset, recorded: location.header.maxRecorded, events: events)
        } catch let error as TouchLogError {
            throw error
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(log.location(of: location)): bad block payload: \(error)")
        }
    }

    /// Decodes the format-2 block whose stored bytes are in ``payload``.
    private func decodeGrouped(
        _ header: BlockHeader, into events: inout EventBatch, profileNames: Bool = true
    ) throws(DecodeError) {
        try GroupedBlockCodec.decodeStored(
            header, payload, dictionary: dictionary, into: &events, scratch: &groupedScratch, strict: false,
            profileNames: profileNames)
    }
}
