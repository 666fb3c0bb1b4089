import Dispatch
import Synchronization
import TouchLogStorage

/// A segment's size over time: its member count at each of a series of times, by what the store knew at K.
public struct SegmentHistory: Sendable, Equatable {
    /// The member count at one time.
    public struct Point: Sendable, Equatable {
        /// The as-of time, epoch milliseconds.
        public var time: Int64
        /// Members at that time.
        public var count: Int

        /// A point.
        public init(time: Int64, count: Int) {
            self.time = time
            self.count = count
        }
    }

    /// The first time counted, epoch milliseconds.
    public var from: Int64
    /// The last time that may be counted (the last point is at or before it).
    public var to: Int64
    /// Milliseconds between points.
    public var step: Int64
    /// Counted by what the store knew at this time; nil: everything recorded.
    public var knownAt: Int64?
    /// At `from`, `from + step`, … up to `to`.
    public var points: [Point]

    /// A history with these points.
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
        guard step > 0 else {
            throw TouchLogError(code: .invalidArgument, message: "the step must be a positive duration")
        }
        guard from <= to else { throw TouchLogError(code: .invalidArgument, message: "--from is after --to") }
        let (span, overflow) = to.subtractingReportingOverflow(from)
        guard !overflow, span / step < Int64(maxPoints) else {
            throw TouchLogError(
                code: .invalidArgument, message: "more than \(maxPoints) points: use a longer step or a shorter range")
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
    package func history(of definition: SegmentDefinition, from: Int64, to: Int64, step: Int64, knownAt: Int64? = nil)
        throws -> SegmentHistory
    {
        let definition = try prepared(definition)
        let times = try SegmentHistory.times(from: from, to: to, step: step)
        let segments = times.map { CompiledSegment(definition, at: QueryTime(asOf: $0, knownAt: knownAt)) }
        let last = times.last!
        // What a rule can count: its groups (type, touchpoint) inside the union of its windows over the steps.
        var touchpoints = StringTable()
        // (In parts, one per worker that gathered them: never copied into one.)
        var gathered: [GatheredEvents] = []
        var profileCount = 0
        // The earliest visible time of each profile (when the tree holds without events, members must be known profiles).
        var firstSeen: [Int64] = []
        var erased: Set<Int> = []
        let needsKnown = segments[0].holdsWithoutEvents
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
                if needsKnown {
                    firstSeen =
                        [Int64](repeating: .min, count: knownBefore)
                        + [Int64](repeating: .max, count: profileCount - knownBefore)
                }
                (gathered, report.eventsRead) = try gatherGrouped(
                    HistoryScope(segments, touchpoints: touchpoints), blocks: end,
                    summaries: summaries, upTo: last, firstSeen: &firstSeen, from: straddle)
                erased = erasures.profiles
            }
        } else {
            var builder = ProfileEventBuilder()
            var profileIDs: [String: UInt32] = [:]
            var part = GatheredEvents()
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
                    part.append(profile, builder.event(stored))
                }
            }
            gathered = [part]
            profileCount = profileIDs.count
            touchpoints = builder.touchpoints
            if !needsKnown { firstSeen = [] }
        }
        lastQuery = report
        let counts = Self.historyCounts(
            segments, times: times, touchpoints: touchpoints, gathered: gathered, profiles: profileCount,
            firstSeen: firstSeen, erased: erased)
        return SegmentHistory(
            from: from, to: to, step: step, knownAt: knownAt,
            points: zip(times, counts).map { SegmentHistory.Point(time: $0, count: $1) })
    }

    /// The counts per step from the gathered events (see ``history(of:from:to:step:knownAt:)``).
    private static func historyCounts(
        _ segments: [CompiledSegment], times: [Int64], touchpoints: StringTable, gathered: [GatheredEvents],
        profiles n: Int, firstSeen: [Int64], erased: Set<Int>
    ) -> [Int] {
        let stepCount = times.count
        // Per rule (interaction rules, then sequences) and step: the window's raw bounds (monotone in the step).
        let bounds: [[(low: Int64, high: Int64)]] = (0..<segments[0].atoms).map { a in
            segments.indices.map { i in
                let segment = segments[i]
                let timeframe =
                    a < segment.leaves.count
                    ? segment.leaves[a].rule.timeframe : segment.sequences[a - segment.leaves.count].rule.timeframe
                return timeframe.bounds(asOf: times[i])
            }
        }
        // (Flat, atom after atom, so that the search for each event's steps reaches no array of arrays.)
        let lows = bounds.flatMap { $0.map(\.low) }
        let highs = bounds.flatMap { $0.map(\.high) }
        let atoms = segments[0].atoms
        // Known profiles none of whose events any rule counts are members from the step they are known at when the
        // tree holds with every rule false.
        let eventless = !firstSeen.isEmpty && segments[0].holdsWithoutEvents
        // Each profile's changes of membership, as +1 at the step it enters and −1 at the step it leaves: on every
        // core, each worker over a range of profile ids of its own (grouping their events and evaluating them), the
        // workers' differences then added up. (From a few dozen events on, so that the tests' small stores take this
        // path too.)
        let workers = max(1, min(queryThreads, gathered.map(\.events.count).reduce(0, +) / 64))
        let deltas = Mutex([[Int]]())
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let range = (n * w / workers)..<(n * (w + 1) / workers)
            // Each worker has evaluations and relevance of its own: objects the workers shared would have their reference
            // counts changed by both cores at every use.
            let matchers = RuleMatchers(segments[0], touchpoints: touchpoints)
            // One evaluation per step, made once (each holds a compiled segment: copying one per profile costs more
            // than evaluating it).
            let evaluations = segments.map { ProfileEvaluation(segment: $0, matchers: matchers) }
            let relevance = HistoryRelevance(segments[0], matchers: matchers, touchpoints: touchpoints.count)
            let (starts, grouped) = Self.grouped(gathered, profiles: range, relevance: relevance)
            var delta = Self.historyDeltas(
                profiles: range, starts: starts, grouped: grouped, steps: stepCount, atoms: atoms, relevance: relevance,
                lows: lows, highs: highs, times: times, firstSeen: firstSeen, erased: erased, evaluations: evaluations)
            if eventless {
                for p in range
                where starts[p - range.lowerBound] == starts[p - range.lowerBound + 1] && firstSeen[p] != .max
                    && !erased.contains(p)
                {
                    delta[times.partitioningIndex { $0 >= firstSeen[p] }] += 1
                    delta[stepCount] -= 1
                }
            }
            deltas.withLock { $0.append(delta) }
        }
        var delta = [Int](repeating: 0, count: stepCount + 1)
        for part in deltas.withLock({ $0 }) {
            for i in part.indices { delta[i] += part[i] }
        }
        var counts: [Int] = []
        var running = 0
        for i in 0..<stepCount {
            running += delta[i]
            counts.append(running)
        }
        return counts
    }

    /// The events of the profiles in `range` that can make some rule hold, grouped by profile: profile p's are
    /// `events[starts[p − range.lowerBound] ..< starts[p − range.lowerBound + 1]]`, in the order gathered (a counting
    /// sort). Rules none of a profile's events can count for (over the whole range) are false at every step; a
    /// profile for which every rule is gets none, and is left to the known profiles without counted events.
    private static func grouped(_ gathered: [GatheredEvents], profiles range: Range<Int>, relevance: HistoryRelevance)
        -> (starts: [Int], events: [ProfileEvent])
    {
        let (low, n) = (UInt32(range.lowerBound), UInt32(range.count))
        // Per profile: its events (at index p + 1), then whether it can make some rule hold.
        var starts = [Int](repeating: 0, count: range.count + 1)
        var possible = relevance.possibleProfiles(gathered, range)
        starts.withUnsafeMutableBufferPointer { starts in
            for part in gathered {
                for p in part.profiles where p &- low < n { starts[Int(p &- low) + 1] += 1 }
            }
            possible.withUnsafeBufferPointer { possible in
                for p in 0..<Int(n) where !possible[p] { starts[p + 1] = 0 }
            }
            for p in 0..<Int(n) { starts[p + 1] += starts[p] }
        }
        // (The events themselves are moved, read in order and written where they belong: reading them in profile
        // order instead would wait on memory at every one.)
        var fill = starts
        let events = [ProfileEvent](unsafeUninitializedCapacity: starts[Int(n)]) { buffer, count in
            fill.withUnsafeMutableBufferPointer { fill in
                possible.withUnsafeMutableBufferPointer { possible in
                    for part in gathered {
                        part.profiles.withUnsafeBufferPointer { profiles in
                            part.events.withUnsafeBufferPointer { events in
                                for i in profiles.indices
                                where profiles[i] &- low < n && possible[Int(profiles[i] &- low)] {
                                    let p = Int(profiles[i] &- low)
                                    (buffer.baseAddress! + fill[p]).initialize(to: events[i])
                                    fill[p] += 1
                                }
                            }
                        }
                    }
                }
            }
            count = starts[Int(n)]
        }
        return (starts, events)
    }

    /// The membership differences per step (index S: after the last) of the profiles in `range` that have grouped
    /// events (see ``grouped(_:profiles:relevance:)``).
    private static func historyDeltas(
        profiles range: Range<Int>, starts: [Int], grouped: [ProfileEvent], steps stepCount: Int, atoms: Int,
        relevance: HistoryRelevance, lows: [Int64], highs: [Int64], times: [Int64], firstSeen: [Int64],
        erased: Set<Int>, evaluations: [ProfileEvaluation]
    ) -> [Int] {
        let leaves = evaluations[0].segment.leaves.count
        let most = zip(starts, starts.dropFirst()).map { $1 - $0 }.max() ?? 0
        // Scratch for one profile at a time, allocated once: buffers rather than arrays, whose every use in this loop
        // would retain and release them. (Copies of the times and bounds too, for the same reason as the evaluations.)
        let scratch = HistoryScratch(
            events: most, atoms: atoms, leaves: leaves, sequences: relevance.sequences, times: times, lows: lows,
            highs: highs)
        defer { scratch.deallocate() }
        let (times, lows, highs) = (scratch.times, scratch.lows, scratch.highs)
        let (events, leafTimes, leafCounts, changes) = (
            scratch.events, scratch.leafTimes, scratch.leafCounts, scratch.changes
        )
        func firstStep(_ t: Int64) -> Int { times.partitioningIndex { $0 >= t } }
        var delta = [Int](repeating: 0, count: stepCount + 1)
        // (The evaluations are kept by `evaluations`: using them unretained spares two reference-count changes per ask.)
        let steps = evaluations.map { Unmanaged.passUnretained($0) }
        for profile in range {
            let (first, end) = (starts[profile - range.lowerBound], starts[profile - range.lowerBound + 1])
            guard first < end, !erased.contains(profile) else { continue }
            let count = end - first
            _ = grouped[first..<end].withUnsafeBufferPointer { events.initialize(fromContentsOf: $0) }
            var profileEvents = UnsafeMutableBufferPointer(rebasing: events[..<count])
            profileEvents.sort { ($0.time, $0.offset) < ($1.time, $1.offset) }
            relevance.mark(UnsafeBufferPointer(profileEvents), into: scratch.relevant, seen: scratch.seen)
            // The steps at which the profile's verdicts can change: where an event a rule can count enters T (and
            // with it being known, and the latest conversion when a rule asks about conversions), and where it
            // enters and leaves the windows of the rules it can count for.
            var changeCount = 0
            func change(_ c: Int) {
                changes[changeCount] = c
                changeCount += 1
            }
            change(0)
            let known = firstSeen.isEmpty ? Int64.min : firstSeen[profile]
            if !firstSeen.isEmpty { change(firstStep(known)) }
            for l in 0..<leaves { leafCounts[l] = 0 }
            for e in profileEvents {
                var counted = relevance.conversionsMatter && e.type == EventType.conversion.rawValue
                for a in relevance.atoms(of: e) {
                    if a < leaves {
                        leafTimes[a * count + leafCounts[a]] = e.time
                        leafCounts[a] += 1
                    }
                    guard scratch.relevant[a] else { continue }
                    counted = true
                    change(
                        UnsafeBufferPointer(rebasing: highs[(a * stepCount)..<(a * stepCount + stepCount)])
                            .partitioningIndex { $0 >= e.time })
                    change(
                        UnsafeBufferPointer(rebasing: lows[(a * stepCount)..<(a * stepCount + stepCount)])
                            .partitioningIndex { $0 > e.time })
                }
                if counted { change(firstStep(e.time)) }
            }
            var profileChanges = UnsafeMutableBufferPointer(rebasing: changes[..<changeCount])
            profileChanges.sort()
            var previous = -1
            var member = false
            var memberFrom = 0
            let given = ProfileEvaluation.LeafTimes(
                times: UnsafeBufferPointer(leafTimes), stride: count, counts: UnsafeBufferPointer(leafCounts))
            for c in profileChanges where c != previous && c < stepCount {
                previous = c
                let now =
                    known <= times[c]
                    && steps[c]._withUnsafeGuaranteedRef { evaluation in
                        evaluation.atoms(UnsafeBufferPointer(profileEvents), leafTimes: given, into: scratch.verdicts)
                        return evaluation.evaluate(UnsafeBufferPointer(scratch.verdicts))
                    }
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
                delta[stepCount] -= 1
            }
            profileEvents.deinitialize()
        }
        return withExtendedLifetime(evaluations) { delta }
    }

    /// Gathers, from the first `end` blocks of a format-2 store, the events of the groups `scope` says any rule can
    /// count, up to `last`; when `firstSeen` is not empty (the tree holds without events), also each profile's earliest time
    /// (from every group of the blocks from `straddle` on) where it is earlier than the one given. The blocks are
    /// shared out among the cores in turn, each worker gathering on its own; returns the events of the blocks read.
    private func gatherGrouped(
        _ scope: HistoryScope, blocks end: Int, summaries: BlockSummaries, upTo last: Int64,
        firstSeen: inout [Int64], from straddle: Int
    ) throws(TouchLogError) -> (gathered: [GatheredEvents], eventsRead: UInt64) {
        let locations = log.blocks
        let blocks = (0..<end).filter { locations[$0].header.minTime <= last }
        let workers = max(1, min(Self.queryThreads, blocks.count / 4))
        let parts = Mutex([(gathered: GatheredEvents, firstSeen: [Int64], eventsRead: UInt64)]())
        let given = firstSeen
        try Self.onEveryWorker((0..<workers).map { _ in log.bodyReader() }) { w, reader throws(TouchLogError) in
            var part = GatheredEvents()
            var seen = given
            let eventsRead = try seen.withUnsafeMutableBufferPointer { seen throws(TouchLogError) in
                // (An empty array's buffer may have a base address: none is passed unless the tree holds without events.)
                try Self.gatherBlocks(
                    scope, stride(from: w, to: blocks.count, by: workers).map { blocks[$0] }, locations: locations,
                    summaries: summaries, upTo: last, into: &part, firstSeen: given.isEmpty ? nil : seen.baseAddress,
                    from: straddle, reader: reader)
            }
            parts.withLock { $0.append((part, seen, eventsRead)) }
        }
        var eventsRead: UInt64 = 0
        var gathered: [GatheredEvents] = []
        for part in parts.withLock({ $0 }) {
            gathered.append(part.gathered)
            part.firstSeen.withUnsafeBufferPointer { seen in
                firstSeen.withUnsafeMutableBufferPointer { all in
                    for p in all.indices where seen[p] < all[p] { all[p] = seen[p] }
                }
            }
            eventsRead += part.eventsRead
        }
        return (gathered, eventsRead)
    }

    /// One worker's part of ``gatherGrouped(_:blocks:summaries:upTo:firstSeen:from:)``: the blocks `blocks`.
    private static func gatherBlocks(
        _ scope: HistoryScope, _ blocks: [Int], locations: [BlockLocation], summaries: BlockSummaries,
        upTo last: Int64, into gathered: inout GatheredEvents, firstSeen: UnsafeMutablePointer<Int64>?,
        from straddle: Int, reader: BlockBodyReader
    ) throws(TouchLogError) -> UInt64 {
        let n = Int(summaries[summaries.count - 1].firstNewProfile) + summaries[summaries.count - 1].newProfiles
        var times: [UInt8] = []
        var profiles: [UInt8] = []
        var positionsSection: [UInt8] = []
        var positions: [UInt32] = []
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
                    try readSection(
                        .profiles, of: locations[b], summary, reader: reader, stored: &stored, into: &profiles)
                    profiles.append(contentsOf: repeatElement(0, count: 8))
                    sectionsRead = true
                    eventsRead += UInt64(summary.count)
                }
                detail.removeAll()
                try scan(group, summary, times: times, profiles: profiles, upTo: last, limit: n) { t, p in
                    detail.append(t, p)
                }
                if let firstSeen {
                    for k in 0..<detail.times.count where detail.times[k] < firstSeen[detail.profiles[k]] {
                        firstSeen[detail.profiles[k]] = detail.times[k]
                    }
                }
                guard wanted else { continue }
                if scope.needsOffsets {
                    if !positionsRead {
                        try readPositions(
                            of: locations[b], summary, times: times, reader: reader, stored: &stored,
                            section: &positionsSection, into: &positions)
                        positionsRead = true
                    }
                    detail.decodePositions(group, positions, first: locations[b].header.firstOffset)
                }
                if scope.needsValues {
                    if !valuesRead {
                        try readSection(
                            .values, of: locations[b], summary, reader: reader, stored: &stored, into: &values)
                        valuesRead = true
                    }
                    try detail.decodeValues(group, values)
                }
                // Without positions, an offset that keeps a block's events after the earlier blocks' (ties in time
                // between blocks are ordered by it; within a block only sequences need the true order).
                let blockOffset = locations[b].header.firstOffset
                for k in 0..<detail.times.count {
                    gathered.append(
                        UInt32(detail.profiles[k]),
                        ProfileEvent(
                            time: detail.times[k], offset: scope.needsOffsets ? detail.offsets[k] : blockOffset,
                            type: group.type,
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
private final class HistoryRelevance {
    // A class holding buffers of its own: history asks it for every event, and reading arrays of a struct would
    // retain and release them at every ask. Each worker makes its own.
    /// Per key `touchpoint × 3 + type`: the atoms (interaction rules, then sequences) an event can count for, at
    /// `atomList[atomStarts[key] ..< atomStarts[key + 1]]`; per sequence s, the steps an event of the key can take,
    /// at `stepMasks[s × keys + key]`.
    private let atomStarts: UnsafeMutableBufferPointer<Int32>
    private let atomList: UnsafeMutableBufferPointer<Int32>
    private let stepMasks: UnsafeMutableBufferPointer<UInt16>
    /// Per key: whether an event of it counts for an interaction rule.
    private let leafKeys: UnsafeMutableBufferPointer<Bool>
    private let keys: Int
    private let leafCount: Int
    /// Per sequence: every step's bit.
    private let every: [UInt16]
    /// Some rule asks about conversions (then every conversion can change a verdict as it enters T).
    let conversionsMatter: Bool

    var sequences: Int { every.count }

    init(_ segment: CompiledSegment, matchers: RuleMatchers, touchpoints: Int) {
        leafCount = segment.leaves.count
        every = segment.sequences.map { UInt16(truncatingIfNeeded: (1 << $0.steps.count) - 1) }
        conversionsMatter = segment.leaves.contains { $0.rule.conversion != nil }
        keys = (touchpoints + 1) * 3
        var starts: [Int32] = [0]
        var list: [Int32] = []
        var masks = [UInt16](repeating: 0, count: segment.sequences.count * keys)
        var leafKeys: [Bool] = []
        for touchpoint in 0...touchpoints {
            for type in 0..<3 {
                func accepts(_ interaction: InteractionRule.Interaction, _ allowed: [Bool]) -> Bool {
                    interaction.matches(UInt8(type)) && touchpoint < allowed.count && allowed[touchpoint]
                }
                for (l, leaf) in segment.leaves.enumerated() where accepts(leaf.rule.interaction, matchers.leaves[l]) {
                    list.append(Int32(l))
                }
                leafKeys.append(list.count > Int(starts.last!))
                for (s, sequence) in segment.sequences.enumerated() {
                    var mask: UInt16 = 0
                    for (k, step) in sequence.steps.enumerated()
                    where accepts(step.rule.interaction, matchers.steps[s][k]) { mask |= 1 << UInt16(k) }
                    masks[s * keys + touchpoint * 3 + type] = mask
                    if mask != 0 { list.append(Int32(leafCount + s)) }
                }
                starts.append(Int32(list.count))
            }
        }
        (atomStarts, atomList, stepMasks, self.leafKeys) = (
            .allocate(copying: starts), .allocate(copying: list), .allocate(copying: masks),
            .allocate(copying: leafKeys)
        )
    }

    deinit {
        atomStarts.deallocate()
        atomList.deallocate()
        stepMasks.deallocate()
        leafKeys.deallocate()
    }

    @inline(__always)
    private static func key(_ e: ProfileEvent) -> Int { Int(e.touchpoint) * 3 + Int(e.type) }

    /// The atoms `e` can count for.
    @inline(__always)
    func atoms(of e: ProfileEvent) -> LazyMapSequence<UnsafeMutableBufferPointer<Int32>.SubSequence, Int> {
        let k = Self.key(e)
        return atomList[Int(atomStarts[k])..<Int(atomStarts[k + 1])].lazy.map { Int($0) }
    }

    /// Marks in `relevant` the atoms `events` can make hold at some step (`seen`: scratch of one mask per sequence).
    func mark(
        _ events: UnsafeBufferPointer<ProfileEvent>, into relevant: UnsafeMutableBufferPointer<Bool>,
        seen: UnsafeMutableBufferPointer<UInt16>
    ) {
        relevant.update(repeating: false)
        seen.update(repeating: 0)
        for e in events {
            let k = Self.key(e)
            for a in atomStarts[k]..<atomStarts[k + 1] where atomList[Int(a)] < leafCount {
                relevant[Int(atomList[Int(a)])] = true
            }
            for s in seen.indices { seen[s] |= stepMasks[s * keys + k] }
        }
        for s in seen.indices { relevant[leafCount + s] = seen[s] == every[s] }
    }

    /// Whether the events of each profile of `range` (index p − range.lowerBound) can make some atom hold.
    func possibleProfiles(_ gathered: [GatheredEvents], _ range: Range<Int>) -> [Bool] {
        let (low, n) = (UInt32(range.lowerBound), UInt32(range.count))
        var possible = [Bool](repeating: false, count: range.count)
        possible.withUnsafeMutableBufferPointer { possible in
            for part in gathered {
                for (p, e) in zip(part.profiles, part.events) where p &- low < n && leafKeys[Self.key(e)] {
                    possible[Int(p &- low)] = true
                }
            }
            // A sequence: where a profile's events can take every step.
            for s in every.indices {
                var seen = [UInt16](repeating: 0, count: range.count)
                for part in gathered {
                    for (p, e) in zip(part.profiles, part.events) where p &- low < n {
                        seen[Int(p &- low)] |= stepMasks[s * keys + Self.key(e)]
                    }
                }
                for p in 0..<range.count where seen[p] == every[s] { possible[p] = true }
            }
        }
        return possible
    }
}

/// One history worker's scratch for one profile at a time, and its copies of the step times and window bounds.
private struct HistoryScratch {
    let events: UnsafeMutableBufferPointer<ProfileEvent>
    /// Per interaction rule, room for the times of every event (``ProfileEvaluation/LeafTimes``), and their counts.
    let leafTimes: UnsafeMutableBufferPointer<Int64>
    let leafCounts: UnsafeMutableBufferPointer<Int>
    /// Steps at which verdicts can change: two per event and atom, one more per event, and two more.
    let changes: UnsafeMutableBufferPointer<Int>
    let relevant: UnsafeMutableBufferPointer<Bool>
    let verdicts: UnsafeMutableBufferPointer<Bool>
    let seen: UnsafeMutableBufferPointer<UInt16>
    let times: UnsafeMutableBufferPointer<Int64>
    let lows: UnsafeMutableBufferPointer<Int64>
    let highs: UnsafeMutableBufferPointer<Int64>

    init(events most: Int, atoms: Int, leaves: Int, sequences: Int, times: [Int64], lows: [Int64], highs: [Int64]) {
        func zeroed<T>(_ count: Int, _ zero: T) -> UnsafeMutableBufferPointer<T> {
            let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: count)
            buffer.initialize(repeating: zero)
            return buffer
        }
        events = .allocate(capacity: most)
        leafTimes = zeroed(leaves * most, 0)
        leafCounts = zeroed(leaves, 0)
        changes = zeroed(2 + most * (1 + 2 * atoms), 0)
        relevant = zeroed(atoms, false)
        verdicts = zeroed(atoms, false)
        seen = zeroed(sequences, 0)
        (self.times, self.lows, self.highs) = (
            .allocate(copying: times), .allocate(copying: lows), .allocate(copying: highs)
        )
    }

    func deallocate() {
        events.deallocate()
        for buffer in [leafTimes, times, lows, highs] { buffer.deallocate() }
        leafCounts.deallocate()
        changes.deallocate()
        relevant.deallocate()
        verdicts.deallocate()
        seen.deallocate()
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
        func union(_ bounds: [(low: Int64, high: Int64)]) -> (Int64, Int64) {
            (bounds.map(\.low).min()!, bounds.map(\.high).max()!)
        }
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
            where interaction.matches(group.type) && Int(group.touchpoint) < allowed.count
                && allowed[Int(group.touchpoint)]
            {
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
