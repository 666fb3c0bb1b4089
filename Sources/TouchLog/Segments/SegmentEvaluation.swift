/// When a segment is evaluated: as of event time T, by what the store knew at K.
public struct QueryTime: Sendable, Equatable {
    /// Only events with event time ≤ `asOf` count.
    public var asOf: Int64
    /// Only events recorded at or before `knownAt` count; nil means everything recorded.
    public var knownAt: Int64?

    /// As of `asOf`, by what was recorded at `knownAt` (nil: everything), both epoch milliseconds.
    public init(asOf: Int64, knownAt: Int64? = nil) {
        self.asOf = asOf
        self.knownAt = knownAt
    }
}

/// A definition's rule tree with its interaction rules and sequences numbered, ready to evaluate at one time.
/// References to other segments are compiled in place as groups of the referenced definitions' rules (from
/// ``SegmentDefinition/referenced``): a profile's membership depends on its own events only, and every answer is
/// restricted to known profiles, so the referenced tree's verdict is its membership.
struct CompiledSegment {
    indirect enum Node {
        /// Interaction rule `leaves[i]`.
        case leaf(Int, negate: Bool)
        /// Sequence `sequences[i]` (its verdicts follow the interaction rules' in ``evaluate(_:count:)``).
        case sequence(Int, negate: Bool)
        case group(SegmentDefinition.Match, [Node], negate: Bool)

        /// Levels of groups from this node down (0 for a rule or a sequence).
        var depth: Int {
            guard case .group(_, let children, _) = self else { return 0 }
            return 1 + (children.map(\.depth).max() ?? 0)
        }
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

        /// Whether the rule holds for a profile with `count` qualifying events, the first at `first`, its latest
        /// conversion (≤ T) at `lastConversion`, and the aggregate of the values of its qualifying events.
        func holds(count: Int, first: Int64, lastConversion: Int64, values: ValueTotals = ValueTotals()) -> Bool {
            guard count >= rule.atLeast, count <= (rule.atMost ?? .max) else { return false }
            if let value = rule.value, !values.satisfy(value) { return false }
            switch rule.conversion {
            case nil: return true
            case .converted?: return lastConversion >= first
            case .notConverted?: return lastConversion < first
            }
        }
    }

    /// A sequence rule at the query's time: each step as an interaction leaf with the rule's window.
    struct SequenceLeaf {
        let rule: SequenceRule
        let steps: [Leaf]
        let window: ClosedRange<Int64>?
    }

    let definition: SegmentDefinition
    let time: QueryTime
    var leaves: [Leaf] = []
    var sequences: [SequenceLeaf] = []
    var root: Node = .group(.all, [], negate: false)

    init(_ definition: SegmentDefinition, at time: QueryTime) {
        self.definition = definition
        self.time = time
        root = .group(definition.match, definition.rules.map { compile($0, depth: 0) }, negate: false)
    }

    /// The number of verdict columns ``evaluate(_:count:)`` takes: the interaction rules', then the sequences'.
    var atoms: Int { leaves.count + sequences.count }

    private mutating func compile(_ rule: SegmentDefinition.Rule, depth: Int) -> Node {
        switch rule {
        case .interaction(let interaction, let negate):
            leaves.append(Leaf(rule: interaction, window: interaction.timeframe.window(asOf: time.asOf)))
            return .leaf(leaves.count - 1, negate: negate)
        case .group(let match, let rules, let negate):
            return .group(match, rules.map { compile($0, depth: depth) }, negate: negate)
        case .sequence(let sequence, let negate):
            let window = sequence.timeframe.window(asOf: time.asOf)
            sequences.append(
                SequenceLeaf(
                    rule: sequence, steps: sequence.steps.map { Leaf(rule: $0.rule, window: window) }, window: window))
            return .sequence(sequences.count - 1, negate: negate)
        case .segment(let name, let negate):
            // Resolution refuses missing segments, cycles and deep chains before a query compiles; should one slip
            // through, the reference holds for no one rather than recursing.
            guard let referenced = definition.referenced[name], depth < SegmentDefinition.referenceDepthLimit else {
                return .group(.any, [], negate: negate)
            }
            return .group(referenced.match, referenced.rules.map { compile($0, depth: depth + 1) }, negate: negate)
        }
    }

    /// Evaluates the tree for `count` profiles at once, given whether each interaction rule (`leafHolds[i]`) and
    /// each sequence (`leafHolds[leaves.count + i]`) holds for each profile.
    ///
    /// Verdicts are combined eight at a time, as the bytes of a 64-bit word (a `Bool` is the byte 0 or 1, so `&`,
    /// `|` and `^ 0x01…01` on words are `&&`, `||` and `!` on eight verdicts), in buffers allocated once per call.
    func evaluate(_ leafHolds: [[Bool]], count n: Int) -> [Bool] {
        var result = [Bool](repeating: false, count: n)
        guard n > 0 else { return result }
        // One scratch buffer per level of groups below the root, each rounded up to whole words.
        let width = (n + 7) / 8 * 8
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: width * max(1, root.depth), alignment: 8)
        defer { scratch.deallocate() }
        let out = UnsafeMutableRawPointer.allocate(byteCount: width, alignment: 8)
        defer { out.deallocate() }
        evaluate(root, leafHolds, n, words: width / 8, into: out, scratch: scratch)
        result.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: out, count: n)) }
        return result
    }

    /// Writes `node`'s verdicts on `n` profiles into `out` (`words` words; bytes past `n` are left undefined), using
    /// `scratch` (a buffer of `words` words per level of groups below `node`).
    private func evaluate(
        _ node: Node, _ leafHolds: [[Bool]], _ n: Int, words: Int, into out: UnsafeMutableRawPointer,
        scratch: UnsafeMutableRawPointer
    ) {
        let negated: Bool
        switch node {
        case .leaf(let index, let negate), .sequence(let index, let negate):
            let atom = if case .sequence = node { leaves.count + index } else { index }
            leafHolds[atom].withUnsafeBytes { out.copyMemory(from: $0.baseAddress!, byteCount: n) }
            negated = negate
        case .group(let match, let children, let negate):
            negated = negate
            let all = match == .all
            guard let first = children.first else {
                out.initializeMemory(as: UInt8.self, repeating: all ? 1 : 0, count: words * 8)
                break
            }
            let below = scratch + words * 8
            evaluate(first, leafHolds, n, words: words, into: out, scratch: below)
            for child in children.dropFirst() {
                evaluate(child, leafHolds, n, words: words, into: scratch, scratch: below)
                for w in 0..<words {
                    let a = out.load(fromByteOffset: w * 8, as: UInt64.self)
                    let b = scratch.load(fromByteOffset: w * 8, as: UInt64.self)
                    out.storeBytes(of: all ? a & b : a | b, toByteOffset: w * 8, as: UInt64.self)
                }
            }
        }
        if negated {
            for w in 0..<words {
                let a = out.load(fromByteOffset: w * 8, as: UInt64.self)
                out.storeBytes(of: a ^ 0x0101_0101_0101_0101, toByteOffset: w * 8, as: UInt64.self)
            }
        }
    }

    /// Evaluates the tree for one profile, given each atom's verdict (as ``evaluate(_:count:)`` numbers them).
    func evaluate(_ atoms: [Bool]) -> Bool {
        func value(_ node: Node) -> Bool {
            switch node {
            case .leaf(let i, let negate): return atoms[i] != negate
            case .sequence(let i, let negate): return atoms[leaves.count + i] != negate
            case .group(let match, let children, let negate):
                return (match == .all ? children.allSatisfy(value) : children.contains(where: value)) != negate
            }
        }
        return value(root)
    }

    /// Whether anything beyond the first grammar is used (sequences, values, `before` and `calendar` windows): the
    /// format-1 projection does not keep what those need.
    var usesSecondGrammar: Bool {
        !sequences.isEmpty
            || leaves.contains { leaf in
                if leaf.rule.value != nil { return true }
                switch leaf.rule.timeframe {
                case .before, .calendar: return true
                case .allTime, .last, .between: return false
                }
            }
    }
}

/// The values (in millionths) of a profile's qualifying events that carry one: how many, their sum, least and greatest.
struct ValueTotals {
    var count = 0
    var sum: Int64 = 0
    var least: Int64 = .max
    var greatest: Int64 = .min

    mutating func add(_ value: Double) {
        guard !value.isNaN else { return }
        let micros = InteractionRule.ValueCondition.micros(value)
        count += 1
        sum = InteractionRule.ValueCondition.add(sum, micros)
        least = min(least, micros)
        greatest = max(greatest, micros)
    }

    func satisfy(_ condition: InteractionRule.ValueCondition) -> Bool {
        condition.holds(count: count, sum: sum, least: least, greatest: greatest)
    }
}

/// For one block: which interaction rules an event of each (touchpoint, type) can count for, as a list per key
/// `touchpoint id × 3 + type` (touchpoint id 0 = none). Rules are matched against the block's dictionary once, so
/// the per-event loop only walks a (usually empty) list.
struct LeafRouting {
    private var starts: [Int32] = [0]
    private var leaves: [Int32] = []

    init(_ rules: [InteractionRule], touchpoints: StringTable) {
        let allowed = rules.map { CompiledSegment.Leaf(rule: $0, window: nil).allowedTouchpoints(touchpoints) }
        for touchpoint in 0...touchpoints.count {
            for type in 0..<3 {
                for (l, rule) in rules.enumerated()
                where rule.interaction.matches(UInt8(type)) && allowed[l][touchpoint] {
                    leaves.append(Int32(l))
                }
                starts.append(Int32(leaves.count))
            }
        }
    }

    /// Calls `body` with each rule an event with `touchpoint` (id + 1, or 0) and `type` counts for.
    @inline(__always)
    func forEachLeaf(touchpoint: UInt32, type: UInt8, _ body: (Int) -> Void) {
        let key = Int(touchpoint) * 3 + Int(type)
        var k = Int(starts[key])
        let end = Int(starts[key + 1])
        while k < end {
            body(Int(leaves[k]))
            k += 1
        }
    }
}

extension CompiledSegment.Leaf {
    /// Whether the rule holds for each of `n` profiles, given per profile its count (at `countAt + profile ×
    /// countStride`), its first qualifying time (likewise; read only when the rule asks about conversions) and
    /// its latest conversion.
    func holds(
        _ n: Int, counts: UnsafeBufferPointer<UInt32>, at countAt: Int, stride countStride: Int,
        firsts: UnsafeBufferPointer<Int64>, at firstAt: Int, stride firstStride: Int,
        lastConversion: UnsafeBufferPointer<Int64>
    ) -> [Bool] {
        precondition(n == 0 || (countAt + (n - 1) * countStride < counts.count && lastConversion.count >= n))
        precondition(n == 0 || rule.conversion == nil || firstAt + (n - 1) * firstStride < firsts.count)
        let low = UInt32(clamping: rule.atLeast)
        let high = UInt32(clamping: rule.atMost ?? Int(UInt32.max))
        let conversion = rule.conversion
        return [Bool](unsafeUninitializedCapacity: n) { result, initialized in
            var c = countAt
            var f = firstAt
            for g in 0..<n {
                let count = counts[c]
                var holds = count >= low && count <= high
                switch conversion {
                case nil: break
                case .converted?: holds = holds && lastConversion[g] >= firsts[f]
                case .notConverted?: holds = holds && lastConversion[g] < firsts[f]
                }
                result[g] = holds
                c += countStride
                f += firstStride
            }
            initialized = n
        }
    }
}

extension Array where Element == Bool {
    /// The indices where the array is true.
    func indicesOfTrue() -> [Int] {
        var result: [Int] = []
        withUnsafeBufferPointer { values in
            for g in 0..<values.count where values[g] { result.append(g) }
        }
        return result
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
    package func members(of definition: SegmentDefinition, at time: QueryTime) throws -> [String] {
        let definition = try prepared(definition)
        if formatVersion >= 2 { return try groupedMembers(of: definition, at: time) }
        let segment = CompiledSegment(definition, at: time)
        if segment.usesSecondGrammar { return try evaluatedMembers(segment) }
        var report = QueryReport()
        var projection = startingProjection(definition, at: time, report: &report)
        let startOffset = projection.endOffset
        let start = projection.endOffset == 0 ? 0 : log.blockIndex(containing: projection.endOffset) ?? log.blocks.count
        var folding = true
        for location in log.blocks[start...] {
            let header = location.header
            if let knownAt = time.knownAt, header.maxRecorded > knownAt { break }
            if folding && header.maxTime <= time.asOf {
                projection.fold(try decode(location), header: header)
                report.eventsRead += UInt64(header.count)
                continue
            }
            if folding {
                keep(&projection, since: startOffset, definition, &report)
                folding = false
            }
            if header.minTime > time.asOf { continue }
            projection.add(try decode(location), upTo: time.asOf)
            report.eventsRead += UInt64(header.count)
        }
        if folding { keep(&projection, since: startOffset, definition, &report) }
        lastQuery = report
        return projection.memberIDs(segment).map { projection.profiles.string($0) }
    }

    /// How many members `definition` has at `time`: the answer of ``members(of:at:)`` without its strings (a format-2
    /// store never looks them up).
    package func count(of definition: SegmentDefinition, at time: QueryTime) throws -> Int {
        let definition = try prepared(definition)
        if formatVersion >= 2 { return try groupedMemberIDs(of: definition, at: time).ids.count }
        return try members(of: definition, at: time).count
    }

    /// What the engine evaluates: `definition` with its references resolved (from this store's catalog where the
    /// definition does not hold them) and compiled in place (``SegmentDefinition/expanded``).
    func prepared(_ definition: SegmentDefinition) throws(TouchLogError) -> SegmentDefinition {
        try segments.resolve(definition).expanded
    }

    /// The members of `segment` from each profile's own events (``ProfileEvaluation``): how a format-1 store answers
    /// rules its projection does not keep (sequences, values, `before` and `calendar` windows). Reads every block
    /// recorded by K that starts at or before T.
    func evaluatedMembers(_ segment: CompiledSegment) throws -> [String] {
        let time = segment.time
        var builder = ProfileEventBuilder()
        var profiles: [String: [ProfileEvent]] = [:]
        let filter = ReplayFilter(until: time.asOf)
        var report = QueryReport()
        try forEachBlock(matching: filter, recordedBy: time.knownAt) { block in
            report.eventsRead += UInt64(block.events.count)
            for i in filter.matches(in: block) {
                let stored = block.storedEvent(at: i)
                profiles[stored.event.profile, default: []].append(builder.event(stored))
            }
        }
        lastQuery = report
        let evaluation = ProfileEvaluation(
            segment: segment, matchers: RuleMatchers(segment, touchpoints: builder.touchpoints))
        return profiles.filter { evaluation.isMember($0.value) }.map(\.key).sorted {
            $0.utf8.lexicographicallyPrecedes($1.utf8)
        }
    }

    /// The most snapshots kept per segment definition; beyond it, the ones closest to their neighbours go.
    static let maxSnapshotsPerSegment = 8

    /// Where a query at `time` starts: the furthest usable of the in-memory projection (``projectionCache``) and the
    /// snapshots on disk (a snapshot is loaded only when it is further along than the cached projection), else empty.
    func startingProjection(_ definition: SegmentDefinition, at time: QueryTime, report: inout QueryReport)
        -> SegmentProjection
    {
        var start = SegmentProjection(definition: definition)
        if let cached = projectionCache?.projection(of: definition, usableAt: time, within: endOffset),
            anchoredBlock(endingAt: cached.endOffset, hash: cached.anchor) != nil
        {
            start = cached
            report.fromMemory = true
        }
        if let snapshot = newestUsableSnapshot(definition, at: time, after: start.endOffset, report: &report) {
            start = snapshot
            report.fromMemory = false
        }
        report.snapshotOffset = start.endOffset
        return start
    }

    /// Where the fold of a query stops: prunes the projection once, offers it to the ``projectionCache`` when it got
    /// further than where the query started, and saves it as a snapshot when it is ``snapshotInterval`` events on or
    /// more (so a query writes at most one snapshot), keeping only the newest ones of its segment.
    private func keep(
        _ projection: inout SegmentProjection, since start: UInt64, _ definition: SegmentDefinition,
        _ report: inout QueryReport
    ) {
        let saveDue = snapshotInterval.map { projection.endOffset - start >= $0 } ?? false
        guard projection.endOffset > start, projectionCache != nil || saveDue else { return }
        projection.prune()
        projectionCache?.offer(projection, of: definition)
        guard saveDue else { return }
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        guard store.save(projection, definition: definition) == nil else { return }
        report.snapshotsWritten += 1
        store.thin(definition, keep: Self.maxSnapshotsPerSegment)
    }
}
