import TouchLogStorage

/// A segment's projection: the state its rules need, folded from a prefix of the log, independent of the
/// query time. Saved as a snapshot, it answers any query with T at or after its watermark and K at or after its
/// recorded time, after folding in only the log that follows it.
///
/// Per profile it keeps the time of the latest conversion and, for each interaction rule, what that rule's
/// timeframe needs at any later T:
/// - all time or `from`/`to`: the number of candidate events (type and touchpoint match, inside `from`/`to`) and,
///   when the rule asks about conversions, the first one's time — every such event is at or before any usable T,
///   so all of them count;
/// - `last d`: the (profile, time) of each candidate event no older than watermark − d (older ones can never
///   fall inside a window ending at a T at or after the watermark).
///
/// A query at T folds the blocks after the projection that lie wholly at or before T (the projection stays a
/// projection of a longer prefix), then ``add(_:upTo:)``s the events at or before T of later blocks (late
/// arrivals). The latter is exact for every rule at T: summary rules count any candidate event at or before T,
/// and `last d` windows are applied when membership is evaluated. After it the projection is no longer a prefix
/// projection, so it is not saved.
struct SegmentProjection {
    /// Offset after the last folded event.
    var endOffset: UInt64 = 0
    /// Hash of the last folded block (the chain anchor that ties a snapshot to this log).
    var anchor = BlockHash.zero
    /// Latest event time folded in.
    var watermark: Int64 = .min
    /// Latest recorded time folded in.
    var recorded: Int64 = .min
    var profiles = StringTable()
    var lastConversion: [Int64] = []
    /// Counts of the summary rules (all but `last d`), profile-major: `summaryCounts[profile * S + s]`.
    var summaryCounts: [UInt32] = []
    /// First candidate times of the summary rules that ask about conversions, profile-major likewise.
    var summaryFirsts: [Int64] = []
    /// The candidate events of each `last d` rule.
    var recent: [RecentEvents]

    struct RecentEvents: Equatable {
        var profiles: [UInt32] = []
        var times: [Int64] = []
    }

    /// Every interaction rule, numbered as ``CompiledSegment`` numbers them.
    let rules: [InteractionRule]
    /// Rule numbers of the summary rules, of the `last d` rules, and of the summary rules that keep first times.
    let summaryRules: [Int]
    let recentRules: [Int]
    let firstRules: [Int]
    /// For each rule: its summary slot, or −1 − its recent list.
    private let slot: [Int]
    /// For each rule: its first-time slot, or −1.
    private let firstSlot: [Int]
    /// For each rule: the event times a summary rule counts (`from`/`to`, else everything).
    private let bounds: [ClosedRange<Int64>]

    init(definition: SegmentDefinition) {
        let rules = CompiledSegment.interactionRules(of: definition)
        let recentRules = rules.indices.filter {
            if case .last = rules[$0].timeframe { return true } else { return false }
        }
        let summaryRules = rules.indices.filter { !recentRules.contains($0) }
        let firstRules = summaryRules.filter { rules[$0].conversion != nil }
        self.rules = rules
        self.recentRules = recentRules
        self.summaryRules = summaryRules
        self.firstRules = firstRules
        recent = Array(repeating: RecentEvents(), count: recentRules.count)
        var slot = [Int](repeating: 0, count: rules.count)
        var firstSlot = [Int](repeating: -1, count: rules.count)
        for (s, l) in summaryRules.enumerated() { slot[l] = s }
        for (r, l) in recentRules.enumerated() { slot[l] = -1 - r }
        for (f, l) in firstRules.enumerated() { firstSlot[l] = f }
        self.slot = slot
        self.firstSlot = firstSlot
        bounds = rules.map { rule in
            if case .between(let from, let to) = rule.timeframe { return (from ?? .min)...(to ?? .max) }
            return Int64.min...Int64.max
        }
    }

    /// Makes room for every profile in ``profiles``.
    private mutating func grow() {
        let n = profiles.count
        guard lastConversion.count < n else { return }
        let added = n - lastConversion.count
        lastConversion.append(contentsOf: repeatElement(.min, count: added))
        summaryCounts.append(contentsOf: repeatElement(0, count: added * summaryRules.count))
        summaryFirsts.append(contentsOf: repeatElement(.max, count: added * firstRules.count))
    }

    /// Folds in a whole block; the caller guarantees it directly follows ``endOffset``.
    mutating func fold(_ block: DecodedBlock, header: BlockHeader) {
        let global = profiles.internAll(block.events.profiles)
        grow()
        count(block.events, upTo: nil) { global[$0] }
        endOffset = header.endOffset
        anchor = header.hash
        watermark = max(watermark, header.maxTime)
        recorded = max(recorded, header.maxRecorded)
    }

    /// Adds the events of a block that lie at or before `asOf` (the query's T), looking up only their profiles.
    mutating func add(_ block: DecodedBlock, upTo asOf: Int64) {
        let events = block.events
        var needed = [Bool](repeating: false, count: events.profiles.count)
        for i in 0..<events.count where events.times[i] <= asOf { needed[Int(events.profileIDs[i])] = true }
        let global = profiles.internAll(events.profiles, only: needed)
        grow()
        count(events, upTo: asOf) { global[$0] }
    }

    /// Counts `events` (those at or before `asOf` when given) for each rule they are candidates of.
    private mutating func count(_ events: EventBatch, upTo asOf: Int64?, _ global: (Int) -> UInt32) {
        let routing = LeafRouting(rules, touchpoints: events.touchpoints)
        let conversion = EventType.conversion.rawValue
        let summaryWidth = summaryRules.count
        let firstWidth = firstRules.count
        let limit = asOf ?? .max
        for i in 0..<events.count {
            let t = events.times[i]
            if t > limit { continue }
            let g = global(Int(events.profileIDs[i]))
            let gi = Int(g)
            let type = events.types[i]
            if type == conversion && t > lastConversion[gi] { lastConversion[gi] = t }
            routing.forEachLeaf(touchpoint: events.touchpointIDs[i], type: type) { l in
                let s = slot[l]
                if s < 0 {
                    recent[-1 - s].profiles.append(g)
                    recent[-1 - s].times.append(t)
                    return
                }
                guard bounds[l].contains(t) else { return }
                summaryCounts[gi * summaryWidth + s] += 1
                let f = firstSlot[l]
                if f >= 0 && t < summaryFirsts[gi * firstWidth + f] { summaryFirsts[gi * firstWidth + f] = t }
            }
        }
    }

    /// Drops recent events that no window ending at or after the watermark can hold.
    mutating func prune() {
        for (r, l) in recentRules.enumerated() {
            guard case .last(let d) = rules[l].timeframe else { continue }
            let oldest = watermark &- d
            var kept = RecentEvents()
            for (p, t) in zip(recent[r].profiles, recent[r].times) where t >= oldest {
                kept.profiles.append(p)
                kept.times.append(t)
            }
            recent[r] = kept
        }
    }

    /// The same projection with its profiles in ascending byte order (how snapshots store them, so that a query
    /// from a snapshot lists its members without sorting).
    func sortedByProfile() -> SegmentProjection {
        let n = profiles.count
        var order = Array(0..<n)
        profiles.sortByBytes(&order)
        var sorted = self
        if order.elementsEqual(0..<n) {
            sorted.profiles.markSorted()
            return sorted
        }
        var position = [UInt32](repeating: 0, count: n)
        for (new, old) in order.enumerated() { position[old] = UInt32(new) }
        sorted.profiles = profiles.permuted(order)
        sorted.profiles.markSorted()
        sorted.lastConversion = order.map { lastConversion[$0] }
        sorted.summaryCounts = Self.permute(summaryCounts, order, stride: summaryRules.count)
        sorted.summaryFirsts = Self.permute(summaryFirsts, order, stride: firstRules.count)
        for r in recent.indices { sorted.recent[r].profiles = recent[r].profiles.map { position[Int($0)] } }
        return sorted
    }

    private static func permute<T>(_ values: [T], _ order: [Int], stride: Int) -> [T] {
        var result: [T] = []
        result.reserveCapacity(values.count)
        for old in order { result.append(contentsOf: values[(old * stride)..<(old * stride + stride)]) }
        return result
    }

    /// The members at `segment`'s time (usable only when T ≥ watermark and K ≥ recorded, or after ``add(_:upTo:)``
    /// with T), as profile ids sorted by the profiles' bytes.
    func memberIDs(_ segment: CompiledSegment) -> [Int] {
        let n = profiles.count
        let summaryWidth = summaryRules.count
        let firstWidth = firstRules.count
        var holds = [[Bool]](repeating: [], count: rules.count)
        lastConversion.withUnsafeBufferPointer { lastConversion in
            for (s, l) in summaryRules.enumerated() {
                // Without a conversion clause the first time is never read (and the rule has no first-time slot).
                let f = max(0, firstSlot[l])
                holds[l] = summaryCounts.withUnsafeBufferPointer { counts in
                    summaryFirsts.withUnsafeBufferPointer { firsts in
                        segment.leaves[l].holds(
                            n, counts: counts, at: s, stride: summaryWidth, firsts: firsts, at: f,
                            stride: max(firstWidth, 1),
                            lastConversion: lastConversion)
                    }
                }
            }
            for (r, l) in recentRules.enumerated() {
                var counts = largeArray(repeating: UInt32(0), count: n)
                var firsts = largeArray(repeating: Int64.max, count: n)
                if let window = segment.leaves[l].window {
                    for (p, t) in zip(recent[r].profiles, recent[r].times) where window.contains(t) {
                        counts[Int(p)] += 1
                        if t < firsts[Int(p)] { firsts[Int(p)] = t }
                    }
                }
                holds[l] = counts.withUnsafeBufferPointer { counts in
                    firsts.withUnsafeBufferPointer { firsts in
                        segment.leaves[l].holds(
                            n, counts: counts, at: 0, stride: 1, firsts: firsts, at: 0, stride: 1,
                            lastConversion: lastConversion)
                    }
                }
            }
        }
        var ids = segment.evaluate(holds, count: n).indicesOfTrue()
        profiles.sortByBytes(&ids)
        return ids
    }
}

extension CompiledSegment {
    /// The interaction rules of a definition in the order ``CompiledSegment`` numbers them (depth first).
    static func interactionRules(of definition: SegmentDefinition) -> [InteractionRule] {
        var result: [InteractionRule] = []
        func walk(_ rule: SegmentDefinition.Rule) {
            switch rule {
            case .interaction(let r, _): result.append(r)
            case .group(_, let rules, _): rules.forEach(walk)
            // Answered by ``ProfileEvaluation`` (see ``CompiledSegment/usesSecondGrammar``).
            case .sequence, .segment: break
            }
        }
        definition.rules.forEach(walk)
        return result
    }
}
