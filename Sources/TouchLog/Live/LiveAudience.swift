import HeapModule
import TouchLogStorage

/// A segment's members as of a clock that only moves forward, kept current by re-checking only the profiles that can
/// have changed: those a new commit gave events, and those one of whose events enters or leaves a rule's window (or
/// T) at the new time. Each profile's next such time waits in a priority queue, so the cost of a step is what the
/// step changed, not the size of the audience. What ``SegmentWatch`` evaluates between its updates.
///
/// Membership at T is a function of a profile's events that a rule can count (its type and touchpoint match an
/// interaction rule or a sequence step, or it is a conversion and a rule asks about conversions) and of when the
/// profile was first seen: it changes only when an event's time passes T, enters or leaves a rule's window, or the
/// profile becomes known. Those events and that time are all a live audience keeps, per profile. Evaluation is
/// ``ProfileEvaluation``'s, as `explain` and `history` use it.
final class LiveAudience: @unchecked Sendable {
    // @unchecked: not thread-safe; a watch keeps its audience behind a lock (``LiveState``), one step at a time.
    let definition: SegmentDefinition
    /// ``definition`` with its references replaced by their rules: what is compiled at each step.
    private let expanded: SegmentDefinition
    private(set) var asOf: Int64 = .min
    /// Where the next read starts: every event before it has been taken in.
    private(set) var endOffset: UInt64 = 0
    /// How many erasures the log held when the audience was built: one more means it must be built again.
    let erasures: Int

    private var builder = ProfileEventBuilder()
    private var names: [String] = []
    private var ids: [String: Int] = [:]
    private var events: [[ProfileEvent]] = []
    private var firstTime: [Int64] = []
    private var isMember: [Bool] = []
    /// When each profile must next be evaluated (``Int64/max``: never unless it gets events).
    private var due: [Int64] = []
    private var queue = Heap<Due>()
    /// Per touchpoint id (0: none), which event types (bit per ``EventType`` raw value) a rule can count.
    private var relevantTypes: [UInt8] = []
    /// The rules' timeframes (interaction rules', then sequences'), compiled once, as a segment at any time.
    private let shape: CompiledSegment
    private let conversionsMatter: Bool
    /// Whether a known profile none of whose events a rule can count is a member (a negated rule makes it one): only
    /// then do such profiles, and when each was first seen, matter; otherwise their events are passed over.
    private let emptyProfileIsMember: Bool

    private struct Due: Comparable {
        var time: Int64
        var profile: Int
        static func < (a: Due, b: Due) -> Bool { (a.time, a.profile) < (b.time, b.profile) }
    }

    /// The members' names, sorted ascending by bytes.
    var members: [String] {
        names.indices.filter { isMember[$0] }.map { names[$0] }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// An audience of `definition` (references resolved) that has read nothing yet, for a log holding `erasures`.
    init(_ definition: SegmentDefinition, erasures: Int) {
        self.definition = definition
        self.erasures = erasures
        expanded = definition.expanded
        shape = CompiledSegment(expanded, at: QueryTime(asOf: 0))
        conversionsMatter = shape.leaves.contains { $0.rule.conversion != nil }
        // Without countable events every window is empty at every T, so the answer does not depend on T.
        let empty = ProfileEvaluation(segment: shape, matchers: RuleMatchers(shape, touchpoints: StringTable()))
        emptyProfileIsMember = empty.evaluate(empty.atoms([]))
    }

    /// Takes in the events `reader` holds past ``endOffset`` (erased profiles left out), moves the clock to `asOf`
    /// (never back), and returns who entered and who left, each sorted ascending by bytes.
    /// `blocks`: decoded blocks to take rather than decode again (shared by the store's watches).
    func advance(_ reader: StoreReader, to asOf: Int64, blocks: DecodedBlockCache? = nil) throws -> (
        entered: [String], exited: [String]
    ) {
        var touched: [Int] = []
        if reader.endOffset > endOffset {
            if let blocks {
                try blocks.forEachBlock(of: reader, from: endOffset, erasures: erasures) { block in
                    take(block, touched: &touched)
                }
            } else {
                try reader.forEachBlock(matching: ReplayFilter(fromOffset: endOffset)) { block in
                    take(block, touched: &touched)
                }
            }
            endOffset = reader.endOffset
        }
        self.asOf = max(self.asOf, asOf)
        let time = self.asOf
        var check = touched
        while let next = queue.min, next.time <= time {
            queue.removeMin()
            if due[next.profile] == next.time { check.append(next.profile) }
        }
        guard !check.isEmpty else { return ([], []) }
        let segment = CompiledSegment(expanded, at: QueryTime(asOf: time))
        let evaluation = ProfileEvaluation(
            segment: segment, matchers: RuleMatchers(segment, touchpoints: builder.touchpoints))
        var entered: [String] = []
        var exited: [String] = []
        var seen = Set<Int>()
        for p in check where seen.insert(p).inserted {
            let now = firstTime[p] <= time && evaluation.evaluate(evaluation.atoms(events[p]))
            if now != isMember[p] {
                isMember[p] = now
                if now { entered.append(names[p]) } else { exited.append(names[p]) }
            }
            let next = nextChange(of: p, after: time, matchers: evaluation.matchers)
            due[p] = next
            if next != .max { queue.insert(Due(time: next, profile: p)) }
        }
        let byBytes: (String, String) -> Bool = { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return (entered.sorted(by: byBytes), exited.sorted(by: byBytes))
    }

    /// Adds a block's events from ``endOffset`` on: each event is kept when a rule can count it, and its profile
    /// becomes known (or known earlier); events no rule can count are passed over unless ``emptyProfileIsMember``
    /// (then only when a profile was first seen matters of them). Strings are looked up once per block, through its
    /// own dictionaries.
    private func take(_ block: DecodedBlock, touched: inout [Int]) {
        let batch = block.events
        // Each of the block's touchpoints (0: none) once: its id in the builder's table and which types count.
        var touchpointIDs = [UInt32](repeating: 0, count: batch.touchpoints.count + 1)
        var masks = [UInt8](repeating: 0, count: batch.touchpoints.count + 1)
        for local in touchpointIDs.indices {
            let id = local == 0 ? 0 : builder.touchpoint(batch.touchpoints[local - 1])
            touchpointIDs[local] = id
            masks[local] = relevance(of: Int(id))
        }
        // A block no rule can count an event of changes nothing, unless profiles without such events can be members.
        let everyEvent = emptyProfileIsMember
        if !everyEvent && !masks.contains(where: { $0 != 0 }) { return }
        let erased = -2
        var profileIDs = [Int](repeating: -1, count: batch.profiles.count)
        let first = endOffset > block.firstOffset ? Int(endOffset - block.firstOffset) : 0
        for i in first..<batch.count {
            let localTouchpoint = Int(batch.touchpointIDs[i])
            let type = batch.types[i]
            let relevant = masks[localTouchpoint] & (1 << type) != 0
            if !relevant && !everyEvent { continue }
            let local = Int(batch.profileIDs[i])
            var p = profileIDs[local]
            if p == -1 {
                let bytes = batch.profiles[local]
                p = bytes.isEmpty ? erased : profile(named: String(decoding: bytes, as: UTF8.self))  // empty: erased
                profileIDs[local] = p
            }
            if p == erased { continue }
            let time = batch.times[i]
            firstTime[p] = min(firstTime[p], time)
            if relevant {
                events[p].append(
                    ProfileEvent(
                        time: time, offset: block.firstOffset + UInt64(i), type: type,
                        touchpoint: touchpointIDs[localTouchpoint], value: batch.values[i]))
            }
            touched.append(p)
        }
    }

    /// The number of the profile `name`, added when it is new.
    private func profile(named name: String) -> Int {
        if let known = ids[name] { return known }
        let p = names.count
        ids[name] = p
        names.append(name)
        events.append([])
        firstTime.append(.max)
        isMember.append(false)
        due.append(.max)
        return p
    }

    /// Which event types (a bit per raw value) with touchpoint `id` of the builder's table (0: none) a rule can count.
    private func relevance(of id: Int) -> UInt8 {
        while relevantTypes.count <= id {
            relevantTypes.append(relevance(ofTouchpoint: relevantTypes.count))
        }
        return relevantTypes[id]
    }

    /// Which event types with touchpoint `id` (0: none; else id − 1 in the builder's table) a rule can count.
    private func relevance(ofTouchpoint id: Int) -> UInt8 {
        let bytes: ArraySlice<UInt8>? = id == 0 ? nil : builder.touchpoints[id - 1]
        func accepts(_ rule: InteractionRule) -> UInt8 {
            guard let matcher = rule.touchpoint else { return typeMask(rule.interaction) }
            guard let bytes, matcher.matches(bytes) else { return 0 }
            return typeMask(rule.interaction)
        }
        var mask: UInt8 = conversionsMatter ? 1 << EventType.conversion.rawValue : 0
        for leaf in shape.leaves { mask |= accepts(leaf.rule) }
        for sequence in shape.sequences { for step in sequence.steps { mask |= accepts(step.rule) } }
        return mask
    }

    private func typeMask(_ interaction: InteractionRule.Interaction) -> UInt8 {
        EventType.allCases.reduce(0) { $0 | (interaction.matches($1.rawValue) ? 1 << $1.rawValue : 0) }
    }

    /// The earliest time after `time` at which profile `p`'s membership can change without new events: when it
    /// becomes known, when one of its events reaches T, or enters or leaves the window of a rule that can count it
    /// (`matchers`: which touchpoints each rule and step accepts, over the builder's table).
    private func nextChange(of p: Int, after time: Int64, matchers: RuleMatchers) -> Int64 {
        var next = Int64.max
        func consider(_ t: Int64?) {
            if let t, t > time, t < next { next = t }
        }
        consider(firstTime[p])
        for e in events[p] {
            consider(e.time)
            let touchpoint = Int(e.touchpoint)
            for (l, leaf) in shape.leaves.enumerated()
            where leaf.rule.interaction.matches(e.type) && matchers.leaves[l][touchpoint] {
                consider(leaf.rule.timeframe.nextChange(of: e.time, after: time))
            }
            for (s, sequence) in shape.sequences.enumerated()
            where sequence.steps.indices.contains(where: {
                sequence.steps[$0].rule.interaction.matches(e.type) && matchers.steps[s][$0][touchpoint]
            }) {
                consider(sequence.rule.timeframe.nextChange(of: e.time, after: time))
            }
        }
        return next
    }
}

extension InteractionRule.Timeframe {
    /// The earliest query time after `time` at which whether an event at `t` is inside the window (at or before T
    /// included) changes, or nil when it never does again.
    func nextChange(of t: Int64, after time: Int64) -> Int64? {
        func inside(_ asOf: Int64) -> Bool { window(asOf: asOf)?.contains(t) ?? false }
        switch self {
        case .allTime, .between:
            // The window's far end is T (or a fixed time before it): the event comes in when T reaches it.
            return time < t && inside(t) ? t : nil
        case .last(let d):
            if time < t { return t }
            let leaves = t &+ d &+ 1
            return time < leaves && leaves > t ? leaves : nil
        case .before(let d):
            let enters = t &+ d &+ 1
            return time < enters && enters > t ? enters : nil
        case .calendar(let calendar):
            if time < t { return t }
            guard calendar.start(asOf: time) <= t else { return nil }
            // The window's start only moves forward: bracket the first T at which it passes t, then halve.
            var low = time
            var high = time
            var step: Int64 = 86_400_000
            repeat {
                guard high < EventLimits.maxTime else { return nil }
                low = high
                high = min(high &+ step, EventLimits.maxTime)
                step = step &* 2
            } while calendar.start(asOf: high) <= t
            while high - low > 1 {
                let middle = low + (high - low) / 2
                if calendar.start(asOf: middle) > t { high = middle } else { low = middle }
            }
            return high
        }
    }
}
