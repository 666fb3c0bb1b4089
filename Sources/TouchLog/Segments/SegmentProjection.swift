import TouchLogStorage

/// A segment's projection: the state its rules need, folded from a prefix of the log, independent of the
/// query time. Saved as a snapshot, it answers any query with T at or after its watermark and K at or after its
/// recorded time, after folding in only the log that follows it.
///
/// Per profile it keeps the time of the latest conversion and, for each interaction rule, what that rule's
/// timeframe needs at any later T:
/// - all time or `from`/`to`: the number of candidate events (type and touchpoint match, inside `from`/`to`) and
///   the first one's time — every such event is at or before any usable T, so all of them count;
/// - `last d`: the (profile, time) of each candidate event no older than watermark − d (older ones can never
///   fall inside a window ending at a T at or after the watermark).
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
    var leaves: [Leaf]

    /// One interaction rule's part: a summary per profile, or (for `last d`) the recent candidate events.
    struct Leaf: Equatable {
        var isRecent: Bool
        var counts: [UInt32] = []
        var firsts: [Int64] = []
        var recentProfiles: [UInt32] = []
        var recentTimes: [Int64] = []
    }

    let rules: [InteractionRule]

    init(definition: SegmentDefinition) {
        rules = CompiledSegment.interactionRules(of: definition)
        leaves = rules.map { rule in
            if case .last = rule.timeframe { return Leaf(isRecent: true) }
            return Leaf(isRecent: false)
        }
    }

    /// Folds in a whole block; the caller guarantees it directly follows ``endOffset``.
    mutating func fold(_ block: DecodedBlock, header: BlockHeader) {
        let events = block.events
        let global = profiles.internAll(events.profiles)
        let n = profiles.count
        if lastConversion.count < n {
            lastConversion.append(contentsOf: repeatElement(.min, count: n - lastConversion.count))
            for l in leaves.indices where !leaves[l].isRecent {
                leaves[l].counts.append(contentsOf: repeatElement(0, count: n - leaves[l].counts.count))
                leaves[l].firsts.append(contentsOf: repeatElement(.max, count: n - leaves[l].firsts.count))
            }
        }
        let allowed = rules.map { CompiledSegment.Leaf(rule: $0, window: nil).allowedTouchpoints(events.touchpoints) }
        let conversion = EventType.conversion.rawValue
        for i in 0..<events.count {
            let t = events.times[i]
            let g = global[Int(events.profileIDs[i])]
            let type = events.types[i]
            if type == conversion && t > lastConversion[Int(g)] { lastConversion[Int(g)] = t }
            let touchpoint = Int(events.touchpointIDs[i])
            for (l, rule) in rules.enumerated() where rule.interaction.matches(type) && allowed[l][touchpoint] {
                if leaves[l].isRecent {
                    leaves[l].recentProfiles.append(g)
                    leaves[l].recentTimes.append(t)
                    continue
                }
                if case .between(let from, let to) = rule.timeframe, t < (from ?? .min) || t > (to ?? .max) { continue }
                leaves[l].counts[Int(g)] += 1
                if t < leaves[l].firsts[Int(g)] { leaves[l].firsts[Int(g)] = t }
            }
        }
        endOffset = header.endOffset
        anchor = header.hash
        watermark = max(watermark, header.maxTime)
        recorded = max(recorded, header.maxRecorded)
    }

    /// Drops recent events that no window ending at or after the watermark can hold.
    mutating func prune() {
        for (l, rule) in rules.enumerated() {
            guard case .last(let d) = rule.timeframe else { continue }
            let oldest = watermark &- d
            var keptProfiles: [UInt32] = []
            var keptTimes: [Int64] = []
            for (p, t) in zip(leaves[l].recentProfiles, leaves[l].recentTimes) where t >= oldest {
                keptProfiles.append(p)
                keptTimes.append(t)
            }
            leaves[l].recentProfiles = keptProfiles
            leaves[l].recentTimes = keptTimes
        }
    }

    /// Query state at `segment`'s time, started from this projection (usable only when T ≥ watermark, K ≥ recorded).
    func queryState(_ segment: CompiledSegment) -> SegmentState {
        var state = SegmentState(leafCount: rules.count)
        state.profiles = profiles
        let n = profiles.count
        state.known = [Bool](repeating: true, count: n)
        state.lastConversion = lastConversion
        for (l, leaf) in leaves.enumerated() {
            guard leaf.isRecent else {
                state.counts[l] = leaf.counts
                state.firsts[l] = leaf.firsts
                continue
            }
            var counts = [UInt32](repeating: 0, count: n)
            var firsts = [Int64](repeating: .max, count: n)
            if let window = segment.leaves[l].window {
                for (p, t) in zip(leaf.recentProfiles, leaf.recentTimes) where window.contains(t) {
                    counts[Int(p)] += 1
                    if t < firsts[Int(p)] { firsts[Int(p)] = t }
                }
            }
            state.counts[l] = counts
            state.firsts[l] = firsts
        }
        return state
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
            }
        }
        definition.rules.forEach(walk)
        return result
    }
}
