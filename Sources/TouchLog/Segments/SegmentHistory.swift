import Dispatch
import Synchronization
import TouchLogStorage

/// A segment's size over time: its member count at each of a series of times, by what the store knew at K.
public struct SegmentHistory: Sendable, Equatable {
    public struct Point: Sendable, Equatable {
        public var time: Int64
        public var count: Int

        public init(time: Int64, count: Int) {
            self.time = time
            self.count = count
        }
    }

    public var from: Int64
    public var to: Int64
    public var step: Int64
    public var knownAt: Int64?
    /// At `from`, `from + step`, … up to `to`.
    public var points: [Point]

    public init(from: Int64, to: Int64, step: Int64, knownAt: Int64?, points: [Point]) {
        self.from = from
        self.to = to
        self.step = step
        self.knownAt = knownAt
        self.points = points
    }

    /// The most points one history computes.
    public static let maxPoints = 100_000

    /// The times of a history, or an `invalidArgument` error naming what is wrong (the one check of a history's
    /// range and step: the CLI, the servers and a cluster's client all come through it).
    package static func times(from: Int64, to: Int64, step: Int64) throws(TouchLogError) -> [Int64] {
        guard step > 0 else { throw TouchLogError(code: .invalidArgument, message: "the step must be a positive duration") }
        guard from <= to else { throw TouchLogError(code: .invalidArgument, message: "--from is after --to") }
        let (span, overflow) = to.subtractingReportingOverflow(from)
        guard !overflow, span / step < Int64(maxPoints) else {
            throw TouchLogError(code: .invalidArgument, message: "more than \(maxPoints) points: use a longer step or a shorter range")
        }
        return (0...(span / step)).map { from + $0 * step }
    }
}

/// The events a history reads, gathered from the log: for each, its profile and what ``ProfileEvaluation`` reads.
private struct GatheredEvents {
    var profiles: [UInt32] = []
    var events: [ProfileEvent] = []

    mutating func append(_ profile: UInt32, _ event: ProfileEvent) {
        profiles.append(profile)
        events.append(event)
    }
}

extension StoreReader {
    /// The member count of `definition` at `from`, `from + step`, … ≤ `to`, by what the store knew at `knownAt`, in
    /// one pass over the log: the events any rule can count (up to the last time, recorded by K) are gathered per
    /// profile; each profile is evaluated only at the steps where one of its events enters or leaves a rule's
    /// window (membership cannot change in between), and its verdicts are added to the counts of the steps they
    /// hold for. Profiles none of whose events any rule counts are members from the step they become known at
    /// exactly when the rule tree holds with every rule false.
    public func history(of definition: SegmentDefinition, from: Int64, to: Int64, step: Int64, knownAt: Int64? = nil) throws -> SegmentHistory {
        let definition = try prepared(definition)
        let times = try SegmentHistory.times(from: from, to: to, step: step)
        let segments = times.map { CompiledSegment(definition, at: QueryTime(asOf: $0, knownAt: knownAt)) }
        let last = times.last!
        // What a rule can count: its groups (type, touchpoint) inside the union of its windows over the steps.
        var touchpoints = StringTable()
        var gathered = GatheredEvents()
        var profileCount = 0
        // The earliest visible time of each profile (when a rule is negated, members must be known profiles).
        var firstSeen: [Int64] = []
        var erased: Set<Int> = []
        let negated = segments[0].hasNegation
        var report = QueryReport()
        if formatVersion >= 2 {
            let end = blocksRecorded(by: knownAt)
            if end > 0 {
                try loadTouchpoints(through: end - 1)
                touchpoints = dictionary.touchpoints
                let summaries = try summaries(through: end)
                profileCount = Int(summaries[end - 1].firstNewProfile) + summaries[end - 1].newProfiles
                // Profiles introduced by the blocks that lie wholly at or before the first step are known at every
                // step; the others are known from their earliest event, which lies in a later block.
                let straddle = log.blocks[..<end].firstIndex { $0.header.maxTime > times[0] } ?? end
                let knownBefore = straddle == end ? profileCount : Int(summaries[straddle].firstNewProfile)
                if negated { firstSeen = [Int64](repeating: .min, count: knownBefore) + [Int64](repeating: .max, count: profileCount - knownBefore) }
                report.eventsRead = try gatherGrouped(HistoryScope(segments, touchpoints: touchpoints), blocks: end, summaries: summaries,
                                                      upTo: last, into: &gathered, firstSeen: &firstSeen, from: straddle)
                erased = erasures.profiles
            }
        } else {
            var builder = ProfileEventBuilder()
            var profileIDs: [String: UInt32] = [:]
            let filter = ReplayFilter(until: last)
            try forEachBlock(matching: filter, recordedBy: knownAt) { block in
                report.eventsRead += UInt64(block.events.count)
                for i in filter.matches(in: block) {
                    let stored = block.storedEvent(at: i)
                    let e = stored.event
                    let profile: UInt32
                    if let known = profileIDs[e.profile] {
                        profile = known
                    } else {
                        profile = UInt32(profileIDs.count)
                        profileIDs[e.profile] = profile
                        firstSeen.append(.max)
                    }
                    firstSeen[Int(profile)] = min(firstSeen[Int(profile)], e.time)
                    gathered.append(profile, builder.event(stored))
                }
            }
            profileCount = profileIDs.count
            touchpoints = builder.touchpoints
            if !negated { firstSeen = [] }
        }
        lastQuery = report
        let counts = Self.historyCounts(segments, times: times, touchpoints: touchpoints, gathered: gathered, profiles: profileCount,
                                        firstSeen: firstSeen, erased: erased)
        return SegmentHistory(from: from, to: to, step: step, knownAt: knownAt,
                              points: zip(times, counts).map { SegmentHistory.Point(time: $0, count: $1) })
    }

    /// The counts per step from the gathered events (see ``history(of:from:to:step:knownAt:)``).
    private static func historyCounts(_ segments: [CompiledSegment], times: [Int64], touchpoints: StringTable, gathered: GatheredEvents,
                                      profiles n: Int, firstSeen: [Int64], erased: Set<Int>) -> [Int] {
        let S = times.count
        @Sendable func firstStep(atOrAfter t: Int64) -> Int { times.partitioningIndex { $0 >= t } }
        let matchers = RuleMatchers(segments[0], touchpoints: touchpoints)
        // Per rule (interaction rules, then sequences) and step: the window's raw bounds (monotone in the step).
        let bounds: [[(low: Int64, high: Int64)]] = (0..<segments[0].atoms).map { a in
            segments.indices.map { i in
                let segment = segments[i]
                let timeframe = a < segment.leaves.count ? segment.leaves[a].rule.timeframe : segment.sequences[a - segment.leaves.count].rule.timeframe
                return timeframe.bounds(asOf: times[i])
            }
        }
        // (Flat, atom after atom, so that the search for each event's steps reaches no array of arrays.)
        let lows = bounds.flatMap { $0.map(\.low) }
        let highs = bounds.flatMap { $0.map(\.high) }
        let relevance = HistoryRelevance(segments[0], matchers: matchers, touchpoints: touchpoints.count)
        let atoms = segments[0].atoms
        // The events of the profiles whose events can make some rule hold, grouped by profile (a counting sort, in
        // the order gathered), each profile's then put in (time, offset) order. Rules none of a profile's events can
        // count for (over the whole range) are false at every step; a profile for which every rule is is left to the
        // known profiles without counted events, below.
        let possible = relevance.possibleProfiles(gathered.profiles, gathered.events, count: n)
        var starts = [Int](repeating: 0, count: n + 1)
        for p in gathered.profiles where possible[Int(p)] { starts[Int(p) + 1] += 1 }
        for p in 0..<n { starts[p + 1] += starts[p] }
        // (The events themselves are moved, read in order and written where they belong: reading them in profile
        // order instead would wait on memory at every one.)
        var fill = starts
        let grouped = [ProfileEvent](unsafeUninitializedCapacity: starts[n]) { buffer, count in
            for (p, e) in zip(gathered.profiles, gathered.events) where possible[Int(p)] {
                (buffer.baseAddress! + fill[Int(p)]).initialize(to: e)
                fill[Int(p)] += 1
            }
            count = starts[n]
        }
        // Each profile's changes of membership, as +1 at the step it enters and −1 at the step it leaves: on every
        // core, each worker over a range of profile ids of its own, the workers' differences then added up.
        // (From a few dozen events on, so that the tests' small stores take this path too.)
        let workers = max(1, min(queryThreads, starts[n] / 64))
        let deltas = Mutex([[Int]]())
        let counted = starts
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            // Each worker has evaluations and relevance of its own: objects the workers shared would have their reference
            // counts changed by both cores at every use.
            let matchers = RuleMatchers(segments[0], touchpoints: touchpoints)
            // One evaluation per step, made once (each holds a compiled segment: copying one per profile costs more
            // than evaluating it).
            let evaluations = segments.map { ProfileEvaluation(segment: $0, matchers: matchers) }
            let relevance = HistoryRelevance(segments[0], matchers: matchers, touchpoints: touchpoints.count)
            let delta = Self.historyDeltas(profiles: (n * w / workers)..<(n * (w + 1) / workers), starts: counted, grouped: grouped,
                                           steps: S, atoms: atoms, relevance: relevance, lows: lows, highs: highs, times: times,
                                           firstSeen: firstSeen, erased: erased, evaluations: evaluations)
            deltas.withLock { $0.append(delta) }
        }
        var delta = [Int](repeating: 0, count: S + 1)
        for part in deltas.withLock({ $0 }) {
            for i in part.indices { delta[i] += part[i] }
        }
        // Known profiles none of whose events any rule counts: members from the step they are known at when the tree
        // holds with every rule false.
        if !firstSeen.isEmpty && segments[0].evaluate([Bool](repeating: false, count: segments[0].atoms)) {
            for p in 0..<n where starts[p] == starts[p + 1] && firstSeen[p] != .max && !erased.contains(p) {
                let c = firstStep(atOrAfter: firstSeen[p])
                delta[c] += 1
                delta[S] -= 1
            }
        }
        var counts: [Int] = []
        var running = 0
        for i in 0..<S {
            running += delta[i]
            counts.append(running)
        }
        return counts
    }

    /// The membership differences per step (index S: after the last) of the profiles in `range` that have grouped
    /// events (see ``historyCounts(_:times:touchpoints:gathered:profiles:firstSeen:erased:)``).
    private static func historyDeltas(profiles range: Range<Int>, starts: [Int], grouped: [ProfileEvent], steps S: Int, atoms: Int,
                                      relevance: HistoryRelevance, lows: [Int64], highs: [Int64], times: [Int64], firstSeen: [Int64],
                                      erased: Set<Int>, evaluations: [ProfileEvaluation]) -> [Int] {
        // (Copies of its own, for the same reason.)
        let (times, lows, highs) = (times.map { $0 }, lows.map { $0 }, highs.map { $0 })
        func firstStep(_ t: Int64) -> Int { times.partitioningIndex { $0 >= t } }
        var delta = [Int](repeating: 0, count: S + 1)
        var relevant = [Bool](repeating: false, count: atoms)
        var leafTimes = [[Int64]](repeating: [], count: evaluations[0].segment.leaves.count)
        var events: [ProfileEvent] = []
        var changes: [Int] = []
        for profile in range where starts[profile] < starts[profile + 1] && !erased.contains(profile) {
            events.removeAll(keepingCapacity: true)
            events.append(contentsOf: grouped[starts[profile]..<starts[profile + 1]])
            events.sort { ($0.time, $0.offset) < ($1.time, $1.offset) }
            relevance.mark(events, into: &relevant)
            for l in leafTimes.indices { leafTimes[l].removeAll(keepingCapacity: true) }
            for e in events {
                for a in relevance.atoms(of: e) where a < leafTimes.count { leafTimes[a].append(e.time) }
            }
            // The steps at which the profile's verdicts can change: where an event a rule can count enters T (and
            // with it being known, and the latest conversion when a rule asks about conversions), and where it
            // enters and leaves the windows of the rules it can count for.
            changes.removeAll(keepingCapacity: true)
            changes.append(0)
            let known = firstSeen.isEmpty ? Int64.min : firstSeen[profile]
            if !firstSeen.isEmpty { changes.append(firstStep(known)) }
            highs.withUnsafeBufferPointer { highs in
                lows.withUnsafeBufferPointer { lows in
                    for e in events {
                        var counted = relevance.conversionsMatter && e.type == EventType.conversion.rawValue
                        for a in relevance.atoms(of: e) where relevant[a] {
                            counted = true
                            changes.append(highs[(a * S)..<(a * S + S)].partitioningIndex { $0 >= e.time } - a * S)
                            changes.append(lows[(a * S)..<(a * S + S)].partitioningIndex { $0 > e.time } - a * S)
                        }
                        if counted { changes.append(firstStep(e.time)) }
                    }
                }
            }
            changes.sort()
            var previous = -1
            var member = false
            var memberFrom = 0
            for c in changes where c != previous && c < S {
                previous = c
                let now = known <= times[c] && evaluations[c].isKnownMember(events, leafTimes: leafTimes)
                if now != member {
                    if member {
                        delta[memberFrom] += 1
                        delta[c] -= 1
                    } else {
                        memberFrom = c
                    }
                    member = now
                }
            }
            if member {
                delta[memberFrom] += 1
                delta[S] -= 1
            }
        }
        return delta
    }

    /// Gathers, from the first `end` blocks of a format-2 store, the events of the groups `scope` says any rule can
    /// count, up to `last`; when `firstSeen` is not empty (a rule is negated), also each profile's earliest time
    /// (from every group of the blocks from `straddle` on) where it is earlier than the one given. The blocks are
    /// shared out among the cores in turn, each worker gathering on its own; returns the events of the blocks read.
    private func gatherGrouped(_ scope: HistoryScope, blocks end: Int, summaries: [BlockSummary], upTo last: Int64,
                               into gathered: inout GatheredEvents, firstSeen: inout [Int64], from straddle: Int) throws(TouchLogError) -> UInt64 {
        let locations = log.blocks
        let blocks = (0..<end).filter { locations[$0].header.minTime <= last }
        let workers = max(1, min(Self.queryThreads, blocks.count / 4))
        let parts = Mutex([(gathered: GatheredEvents, firstSeen: [Int64], eventsRead: UInt64)]())
        let given = firstSeen
        try Self.onEveryWorker((0..<workers).map { _ in log.bodyReader() }) { w, reader throws(TouchLogError) in
            var part = GatheredEvents()
            var seen = given
            let eventsRead = try seen.withUnsafeMutableBufferPointer { seen throws(TouchLogError) in
                // (An empty array's buffer may have a base address: none is passed unless a rule is negated.)
                try Self.gatherBlocks(scope, stride(from: w, to: blocks.count, by: workers).map { blocks[$0] }, locations: locations,
                                      summaries: summaries, upTo: last, into: &part, firstSeen: given.isEmpty ? nil : seen.baseAddress,
                                      from: straddle, reader: reader)
            }
            parts.withLock { $0.append((part, seen, eventsRead)) }
        }
        var eventsRead: UInt64 = 0
        for part in parts.withLock({ $0 }) {
            gathered.profiles += part.gathered.profiles
            gathered.events += part.gathered.events
            part.firstSeen.withUnsafeBufferPointer { seen in
                firstSeen.withUnsafeMutableBufferPointer { all in
                    for p in all.indices where seen[p] < all[p] { all[p] = seen[p] }
                }
            }
            eventsRead += part.eventsRead
        }
        return eventsRead
    }

    /// One worker's part of ``gatherGrouped(_:blocks:summaries:upTo:into:firstSeen:from:)``: the blocks `blocks`.
    private static func gatherBlocks(_ scope: HistoryScope, _ blocks: [Int], locations: [BlockLocation], summaries: [BlockSummary],
                                      upTo last: Int64, into gathered: inout GatheredEvents, firstSeen: UnsafeMutablePointer<Int64>?,
                                      from straddle: Int, reader: BlockBodyReader) throws(TouchLogError) -> UInt64 {
        let n = Int(summaries[summaries.count - 1].firstNewProfile) + summaries[summaries.count - 1].newProfiles
        var times: [UInt8] = []
        var profiles: [UInt8] = []
        var positions: [UInt8] = []
        var values: [UInt8] = []
        var stored: [UInt8] = []
        var detail = GroupEvents()
        var eventsRead: UInt64 = 0
        for b in blocks {
            let firstSeen = b >= straddle ? firstSeen : nil
            let summary = summaries[b]
            var sectionsRead = false
            var positionsRead = false
            var valuesRead = false
            for group in summary.groups where group.minTime <= last {
                let wanted = scope.wants(group)
                guard wanted || firstSeen != nil else { continue }
                if !sectionsRead {
                    try readSection(.times, of: locations[b], summary, reader: reader, stored: &stored, into: &times)
                    try readSection(.profiles, of: locations[b], summary, reader: reader, stored: &stored, into: &profiles)
                    profiles.append(contentsOf: repeatElement(0, count: 8))
                    sectionsRead = true
                    eventsRead += UInt64(summary.count)
                }
                detail.removeAll()
                try scan(group, summary, times: times, profiles: profiles, upTo: last, limit: n) { t, p in detail.append(t, p) }
                if let firstSeen {
                    for k in 0..<detail.times.count where detail.times[k] < firstSeen[detail.profiles[k]] {
                        firstSeen[detail.profiles[k]] = detail.times[k]
                    }
                }
                guard wanted else { continue }
                if scope.needsOffsets {
                    if !positionsRead {
                        try readSection(.positions, of: locations[b], summary, reader: reader, stored: &stored, into: &positions)
                        positionsRead = true
                    }
                    try detail.decodePositions(group, positions, first: locations[b].header.firstOffset, blockEvents: summary.count)
                }
                if scope.needsValues {
                    if !valuesRead {
                        try readSection(.values, of: locations[b], summary, reader: reader, stored: &stored, into: &values)
                        valuesRead = true
                    }
                    try detail.decodeValues(group, values)
                }
                // Without positions, an offset that keeps a block's events after the earlier blocks' (ties in time
                // between blocks are ordered by it; within a block only sequences need the true order).
                let blockOffset = locations[b].header.firstOffset
                for k in 0..<detail.times.count {
                    gathered.append(UInt32(detail.profiles[k]),
                                    ProfileEvent(time: detail.times[k], offset: scope.needsOffsets ? detail.offsets[k] : blockOffset, type: group.type,
                                                 touchpoint: group.touchpoint, value: scope.needsValues ? detail.values[k] : .nan))
                }
            }
        }
        return eventsRead
    }
}

/// Which rules an event can count for, by its type and touchpoint (whatever its time), and whether a profile's
/// events can make each rule hold at some step: an interaction rule needs one event it accepts, a sequence events
/// that can take every one of its steps.
private struct HistoryRelevance {
    /// Per key `touchpoint × 3 + type`: the atoms (interaction rules, then sequences) an event can count for, and per
    /// sequence that can take it, the steps it can take.
    private var atomStarts: [Int32] = [0]
    private var atomList: [Int32] = []
    private var stepMasks: [[UInt16]]
    private let leafCount: Int
    private let every: [UInt16]
    /// Some rule asks about conversions (then every conversion can change a verdict as it enters T).
    let conversionsMatter: Bool

    init(_ segment: CompiledSegment, matchers: RuleMatchers, touchpoints: Int) {
        leafCount = segment.leaves.count
        every = segment.sequences.map { UInt16(truncatingIfNeeded: (1 << $0.steps.count) - 1) }
        conversionsMatter = segment.leaves.contains { $0.rule.conversion != nil }
        stepMasks = segment.sequences.map { _ in [UInt16](repeating: 0, count: (touchpoints + 1) * 3) }
        for touchpoint in 0...touchpoints {
            for type in 0..<3 {
                func accepts(_ interaction: InteractionRule.Interaction, _ allowed: [Bool]) -> Bool {
                    interaction.matches(UInt8(type)) && touchpoint < allowed.count && allowed[touchpoint]
                }
                for (l, leaf) in segment.leaves.enumerated() where accepts(leaf.rule.interaction, matchers.leaves[l]) { atomList.append(Int32(l)) }
                for (s, sequence) in segment.sequences.enumerated() {
                    var mask: UInt16 = 0
                    for (k, step) in sequence.steps.enumerated() where accepts(step.rule.interaction, matchers.steps[s][k]) { mask |= 1 << UInt16(k) }
                    stepMasks[s][touchpoint * 3 + type] = mask
                    if mask != 0 { atomList.append(Int32(leafCount + s)) }
                }
                atomStarts.append(Int32(atomList.count))
            }
        }
    }

    @inline(__always)
    private func key(_ e: ProfileEvent) -> Int { Int(e.touchpoint) * 3 + Int(e.type) }

    /// The atoms `e` can count for.
    @inline(__always)
    func atoms(of e: ProfileEvent) -> some Sequence<Int> {
        let k = key(e)
        return atomList[Int(atomStarts[k])..<Int(atomStarts[k + 1])].lazy.map { Int($0) }
    }

    /// Marks in `relevant` the atoms `events` can make hold at some step; whether there is one.
    @discardableResult
    func mark(_ events: [ProfileEvent], into relevant: inout [Bool]) -> Bool {
        for a in relevant.indices { relevant[a] = false }
        var seen = [UInt16](repeating: 0, count: every.count)
        for e in events {
            for a in atoms(of: e) where a < leafCount { relevant[a] = true }
            for s in seen.indices { seen[s] |= stepMasks[s][key(e)] }
        }
        for s in seen.indices { relevant[leafCount + s] = seen[s] == every[s] }
        return relevant.contains(true)
    }

    /// Whether the events of each of `n` profiles (`profiles[i]`'s event `events[i]`) can make some atom hold.
    func possibleProfiles(_ profiles: [UInt32], _ events: [ProfileEvent], count n: Int) -> [Bool] {
        var possible = [Bool](repeating: false, count: n)
        var seen = stepMasks.map { _ in [UInt16](repeating: 0, count: n) }
        for (p, e) in zip(profiles, events) {
            let k = key(e)
            if atomList[Int(atomStarts[k])..<Int(atomStarts[k + 1])].contains(where: { Int($0) < leafCount }) { possible[Int(p)] = true }
            for s in seen.indices { seen[s][Int(p)] |= stepMasks[s][k] }
        }
        for s in seen.indices {
            for p in 0..<n where seen[s][p] == every[s] { possible[p] = true }
        }
        return possible
    }
}

/// Which groups a history reads: those of a type and touchpoint some rule or sequence step accepts (every
/// conversion when a rule asks about conversions), inside the union of that rule's windows over the steps.
private struct HistoryScope {
    let matchers: RuleMatchers
    /// Per atom: its interactions and the union of its windows.
    let atoms: [(interactions: [InteractionRule.Interaction], touchpoints: [[Bool]], low: Int64, high: Int64)]
    let conversions: Bool
    let needsOffsets: Bool
    let needsValues: Bool

    init(_ segments: [CompiledSegment], touchpoints: StringTable) {
        let first = segments[0]
        matchers = RuleMatchers(first, touchpoints: touchpoints)
        var atoms: [(interactions: [InteractionRule.Interaction], touchpoints: [[Bool]], low: Int64, high: Int64)] = []
        func union(_ bounds: [(low: Int64, high: Int64)]) -> (Int64, Int64) { (bounds.map(\.low).min()!, bounds.map(\.high).max()!) }
        for l in first.leaves.indices {
            let (low, high) = union(segments.map { $0.leaves[l].rule.timeframe.bounds(asOf: $0.time.asOf) })
            atoms.append(([first.leaves[l].rule.interaction], [matchers.leaves[l]], low, high))
        }
        for s in first.sequences.indices {
            let (low, high) = union(segments.map { $0.sequences[s].rule.timeframe.bounds(asOf: $0.time.asOf) })
            atoms.append((first.sequences[s].rule.steps.map(\.interaction), matchers.steps[s], low, high))
        }
        self.atoms = atoms
        conversions = first.leaves.contains { $0.rule.conversion != nil }
        needsOffsets = !first.sequences.isEmpty
        needsValues = first.leaves.contains { $0.rule.value != nil }
    }

    func wants(_ group: BlockSummary.Group) -> Bool {
        if conversions && group.type == EventType.conversion.rawValue { return true }
        for atom in atoms where group.maxTime >= atom.low && group.minTime <= atom.high {
            for (interaction, allowed) in zip(atom.interactions, atom.touchpoints)
            where interaction.matches(group.type) && Int(group.touchpoint) < allowed.count && allowed[Int(group.touchpoint)] {
                return true
            }
        }
        return false
    }
}

extension InteractionRule.Timeframe {
    /// The window's bounds at `asOf` as they are, even when empty (low > high): both move forward as T does.
    func bounds(asOf: Int64) -> (low: Int64, high: Int64) {
        switch self {
        case .allTime: return (.min, asOf)
        case .last(let d): return (asOf &- d, asOf)
        case .between(let from, let to): return (from ?? .min, min(to ?? .max, asOf))
        case .before(let d): return (.min, asOf &- d &- 1)
        case .calendar(let calendar): return (calendar.start(asOf: asOf), asOf)
        }
    }
}

extension ProfileEvaluation {
    /// Whether the rule tree holds for the profile (the caller knows it is known at T).
    func isKnownMember(_ events: [ProfileEvent], leafTimes: [[Int64]]) -> Bool { evaluate(atoms(events, leafTimes: leafTimes)) }
}

extension Collection {
    /// The index of the first element for which `belongs` holds, in a collection where it holds for a suffix.
    func partitioningIndex(where belongs: (Element) -> Bool) -> Index {
        var low = startIndex
        var count = distance(from: startIndex, to: endIndex)
        while count > 0 {
            let half = count / 2
            let mid = index(low, offsetBy: half)
            if belongs(self[mid]) {
                count = half
            } else {
                low = index(after: mid)
                count -= half + 1
            }
        }
        return low
    }
}
