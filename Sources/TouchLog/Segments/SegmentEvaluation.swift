import Glibc

/// When a segment is evaluated: as of event time T, by what the store knew at K.
public struct QueryTime: Sendable, Equatable {
    /// Only events with event time ≤ `asOf` count.
    public var asOf: Int64
    /// Only events recorded at or before `knownAt` count; nil means everything recorded.
    public var knownAt: Int64?

    public init(asOf: Int64, knownAt: Int64? = nil) {
        self.asOf = asOf
        self.knownAt = knownAt
    }
}

/// A definition's rule tree with its interaction rules numbered, ready to evaluate at one time.
struct CompiledSegment {
    indirect enum Node {
        case leaf(Int, negate: Bool)
        case group(SegmentDefinition.Match, [Node], negate: Bool)
    }

    struct Leaf {
        let rule: InteractionRule
        /// Event times that count at the query's T; nil when none can.
        let window: ClosedRange<Int64>?

        /// True when an event of `type` with `touchpoint` at `time` qualifies (time ≤ T and recorded ≤ K are checked by the caller).
        func qualifies(type: UInt8, touchpoint: ArraySlice<UInt8>?, time: Int64) -> Bool {
            guard let window, window.contains(time), rule.interaction.matches(type) else { return false }
            guard let matcher = rule.touchpoint else { return true }
            return touchpoint.map { matcher.matches($0) } ?? false
        }

        /// For each touchpoint id of a block (0 = none, i + 1 = dictionary entry i): whether it passes the matcher.
        func allowedTouchpoints(_ table: StringTable) -> [Bool] {
            var allowed = [rule.touchpoint == nil]
            for id in 0..<table.count { allowed.append(rule.touchpoint?.matches(table[id]) ?? true) }
            return allowed
        }

        /// Whether the rule holds for a profile with `count` qualifying events, the first at `first`, and its latest
        /// conversion (≤ T) at `lastConversion`.
        func holds(count: Int, first: Int64, lastConversion: Int64) -> Bool {
            guard count >= rule.atLeast, count <= (rule.atMost ?? .max) else { return false }
            switch rule.conversion {
            case nil: return true
            case .converted?: return lastConversion >= first
            case .notConverted?: return lastConversion < first
            }
        }
    }

    let definition: SegmentDefinition
    let time: QueryTime
    var leaves: [Leaf] = []
    var root: Node = .group(.all, [], negate: false)

    init(_ definition: SegmentDefinition, at time: QueryTime) {
        self.definition = definition
        self.time = time
        root = .group(definition.match, definition.rules.map { compile($0) }, negate: false)
    }

    private mutating func compile(_ rule: SegmentDefinition.Rule) -> Node {
        switch rule {
        case .interaction(let interaction, let negate):
            leaves.append(Leaf(rule: interaction, window: interaction.timeframe.window(asOf: time.asOf)))
            return .leaf(leaves.count - 1, negate: negate)
        case .group(let match, let rules, let negate):
            return .group(match, rules.map { compile($0) }, negate: negate)
        }
    }

    /// Evaluates the tree for one profile, given whether each leaf holds.
    func holds(_ leafHolds: (Int) -> Bool) -> Bool {
        evaluate(root, leafHolds)
    }

    private func evaluate(_ node: Node, _ leafHolds: (Int) -> Bool) -> Bool {
        switch node {
        case .leaf(let index, let negate):
            return leafHolds(index) != negate
        case .group(let match, let children, let negate):
            let value = match == .all ? children.allSatisfy { evaluate($0, leafHolds) } : children.contains { evaluate($0, leafHolds) }
            return value != negate
        }
    }
}

/// Per-profile state of a segment evaluation: exactly what the rules need at one (T, K).
///
/// For each interaction rule, the number of qualifying events and the time of the first; for each profile,
/// whether it is known and the time of its latest conversion. A conversion in `[F, T]` exists exactly when the
/// latest conversion at or before T is at or after F.
struct SegmentState {
    var profiles = StringTable()
    var known: [Bool] = []
    var lastConversion: [Int64] = []
    var counts: [[UInt32]]
    var firsts: [[Int64]]

    init(leafCount: Int) {
        counts = Array(repeating: [], count: leafCount)
        firsts = Array(repeating: [], count: leafCount)
    }

    /// Folds in the events of one block that satisfy the query's T (K was checked per block by the caller).
    mutating func add(_ block: DecodedBlock, _ segment: CompiledSegment) {
        let events = block.events
        let global = profiles.internAll(events.profiles)
        let n = profiles.count
        if known.count < n {
            known.append(contentsOf: repeatElement(false, count: n - known.count))
            lastConversion.append(contentsOf: repeatElement(.min, count: n - lastConversion.count))
            for l in counts.indices {
                counts[l].append(contentsOf: repeatElement(0, count: n - counts[l].count))
                firsts[l].append(contentsOf: repeatElement(.max, count: n - firsts[l].count))
            }
        }
        let allowed = segment.leaves.map { $0.allowedTouchpoints(events.touchpoints) }
        let asOf = segment.time.asOf
        let conversion = EventType.conversion.rawValue
        for i in 0..<events.count {
            let t = events.times[i]
            if t > asOf { continue }
            let g = Int(global[Int(events.profileIDs[i])])
            known[g] = true
            let type = events.types[i]
            if type == conversion && t > lastConversion[g] { lastConversion[g] = t }
            let touchpoint = Int(events.touchpointIDs[i])
            for (l, leaf) in segment.leaves.enumerated() {
                guard let window = leaf.window, window.contains(t), leaf.rule.interaction.matches(type), allowed[l][touchpoint] else { continue }
                counts[l][g] += 1
                if t < firsts[l][g] { firsts[l][g] = t }
            }
        }
    }

    /// The members, sorted by bytes.
    func members(_ segment: CompiledSegment) -> [String] {
        var ids: [Int] = []
        for g in 0..<profiles.count where known[g] {
            let member = segment.holds { l in
                segment.leaves[l].holds(count: Int(counts[l][g]), first: firsts[l][g], lastConversion: lastConversion[g])
            }
            if member { ids.append(g) }
        }
        profiles.bytes.withUnsafeBytes { all in
            ids.sort { bytesPrecede(UnsafeRawBufferPointer(rebasing: all[profiles.range($0)]), UnsafeRawBufferPointer(rebasing: all[profiles.range($1)])) }
        }
        return ids.map { profiles.string($0) }
    }
}

extension StoreReader {
    /// The members of `definition` at `time`, sorted ascending by bytes.
    ///
    /// Starts from the newest usable snapshot of the segment's projection (watermark ≤ T, recorded ≤ K), folds in
    /// the following blocks that lie wholly at or before T (saving one snapshot where that stops when it is at least
    /// ``snapshotInterval`` events on),
    /// then reads the rest of the log with T applied per event, so late events are counted. Blocks whose events
    /// are all after T are skipped by their headers, and reading stops at the first block recorded after K
    /// (recorded time never decreases along the log).
    public func members(of definition: SegmentDefinition, at time: QueryTime) throws -> [String] {
        let segment = CompiledSegment(definition, at: time)
        var report = QueryReport()
        var projection = newestUsableSnapshot(definition, at: time, report: &report) ?? SegmentProjection(definition: definition)
        report.snapshotOffset = projection.endOffset
        let startOffset = projection.endOffset
        let start = projection.endOffset == 0 ? 0 : log.blockIndex(containing: projection.endOffset) ?? log.blocks.count
        var state: SegmentState?
        for location in log.blocks[start...] {
            let header = location.header
            if let knownAt = time.knownAt, header.maxRecorded > knownAt { break }
            if state == nil && header.maxTime <= time.asOf {
                projection.fold(try decode(location), header: header)
                report.eventsRead += UInt64(header.count)
                continue
            }
            if state == nil {
                saveIfDue(&projection, since: startOffset, definition, &report)
                state = projection.queryState(segment)
            }
            if header.minTime > time.asOf { continue }
            state!.add(try decode(location), segment)
            report.eventsRead += UInt64(header.count)
        }
        if state == nil { saveIfDue(&projection, since: startOffset, definition, &report) }
        lastQuery = report
        return (state ?? projection.queryState(segment)).members(segment)
    }

    /// The most snapshots kept per segment definition; the oldest are deleted beyond it.
    static let maxSnapshotsPerSegment = 8

    /// Saves the projection when it has folded at least ``snapshotInterval`` events since the query's starting
    /// point (so a query writes at most one snapshot), then keeps only the newest ones of its segment.
    private func saveIfDue(_ projection: inout SegmentProjection, since start: UInt64, _ definition: SegmentDefinition, _ report: inout QueryReport) {
        guard let interval = snapshotInterval, projection.endOffset - start >= interval else { return }
        projection.prune()
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        guard store.save(projection, definition: definition) == nil else { return }
        report.snapshotsWritten += 1
        let key = SnapshotStore.key(definition)
        let old = store.all().filter { $0.key == key }.sorted { $0.endOffset > $1.endOffset }.dropFirst(Self.maxSnapshotsPerSegment)
        for info in old { unlink(directory + "/" + info.path) }
    }

    /// Calls `body` with each block that holds events visible at `time`.
    func forEachCommittedBlock(at time: QueryTime, _ body: (DecodedBlock) throws -> Void) throws {
        for location in log.blocks {
            if let knownAt = time.knownAt, location.header.maxRecorded > knownAt { break }
            if location.header.minTime > time.asOf { continue }
            try body(try decode(location))
        }
    }
}
