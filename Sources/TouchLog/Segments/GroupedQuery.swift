import Dispatch
import Synchronization
import TouchLogStorage

/// How a query reads a format-2 log: for each interaction rule, only the (touchpoint, type) groups it can count, and
/// of those only the events inside its window; nothing else of any block.
///
/// Per rule and profile it counts the qualifying events and keeps the first one's time (for rules that ask about
/// conversions); per profile, the latest conversion at or before T from the earliest time any such rule's window
/// starts (a conversion before a rule's first qualifying event never counts for it); and, when the tree holds without events,
/// which profiles are known at T: every profile introduced by a block that lies wholly at or before T (its first
/// event is), plus the profiles of the events at or before T in the blocks from the first that does not. Blocks
/// recorded after K are never read (recorded times never decrease along the log).
struct GroupedQueryPlan {
    struct Rule {
        let leaf: CompiledSegment.Leaf
        /// Index `touchpoint id + 1` (0: none): whether the rule's touchpoint matcher accepts it.
        let touchpoints: [Bool]
        let wantsFirst: Bool
        /// It has a `value` condition: the values of its qualifying events are read and totalled.
        let wantsValues: Bool
        /// Its window stays put as T moves, so snapshots keep its counts (``GroupedSnapshot``).
        let kept: Bool
        /// Its window ends at T and moves with it, and it has no `value` condition: the snapshot at the end of the log
        /// may keep this many latest qualifying times per profile (`Int.max`: all in its window at the watermark;
        /// ``GroupedSnapshot/recentTimes(_:)``). Nil otherwise.
        let recentTimes: Int?
        /// It stands under an even number of negations (``CompiledSegment/positiveLeaves``).
        let positive: Bool
        /// Its counts take a byte per profile (``CountColumn/isNarrow(_:)``).
        let narrowCounts: Bool
    }

    /// A sequence: per step, its type and the touchpoints it accepts; its window at T.
    struct Sequence {
        let steps: [(interaction: InteractionRule.Interaction, touchpoints: [Bool])]
        let window: ClosedRange<Int64>?
        let rule: SequenceRule
        /// Its window stays put as T moves, so snapshots keep what can still decide it (``GroupedSnapshot``).
        let kept: Bool
    }

    let rules: [Rule]
    /// Per group key (touchpoint id + 1, times 3, plus the type): whether some rule with a window at T accepts that
    /// touchpoint and type. Most of a block's hundreds of groups are none of a query's business: the scan passes
    /// them over with one look here instead of asking every rule.
    let someRuleAccepts: [Bool]
    let sequences: [Sequence]
    /// The earliest time a conversion can matter (nil: no rule asks about conversions).
    let conversionsFrom: Int64?
    let needsUniverse: Bool
    let time: QueryTime

    init(_ segment: CompiledSegment, touchpoints: StringTable) {
        time = segment.time
        let positive = segment.positiveLeaves
        rules = segment.leaves.enumerated().map { i, leaf in
            var allowed = [leaf.rule.touchpoint == nil]
            for id in 0..<touchpoints.count { allowed.append(leaf.rule.touchpoint?.matches(touchpoints[id]) ?? true) }
            return Rule(
                leaf: leaf, touchpoints: allowed, wantsFirst: leaf.rule.conversion != nil,
                wantsValues: leaf.rule.value != nil,
                kept: GroupedSnapshot.isKept(leaf.rule), recentTimes: GroupedSnapshot.recentTimes(leaf.rule),
                positive: positive[i],
                narrowCounts: CountColumn.isNarrow(leaf.rule))
        }
        sequences = segment.sequences.map { sequence in
            Sequence(
                steps: sequence.steps.map { ($0.rule.interaction, $0.allowedTouchpoints(touchpoints)) },
                window: sequence.window,
                rule: sequence.rule, kept: sequence.rule.timeframe.isFixed)
        }
        var accepts = [Bool](repeating: false, count: (touchpoints.count + 1) * 3)
        for rule in rules where rule.leaf.window != nil {
            for (touchpoint, allowed) in rule.touchpoints.enumerated() where allowed {
                for type in 0..<3 where rule.leaf.rule.interaction.matches(UInt8(type)) {
                    accepts[touchpoint * 3 + type] = true
                }
            }
        }
        someRuleAccepts = accepts
        let starts = rules.filter(\.wantsFirst).compactMap { $0.leaf.window?.lowerBound }
        conversionsFrom = starts.min()
        needsUniverse = segment.holdsWithoutEvents
    }

    /// Whether some rule or sequence is kept in snapshots (as counts or latest times).
    var keepsAny: Bool {
        rules.contains { $0.kept || $0.recentTimes != nil } || sequences.contains(where: \.kept)
    }

    /// Whether a snapshot can be taken from this plan's scan: some rule or sequence is kept, and the latest
    /// conversions are gathered whenever a rule asks about conversions.
    var canSnapshot: Bool {
        keepsAny && (conversionsFrom != nil || !rules.contains(where: \.wantsFirst))
    }

    /// Whether a query saves snapshots by itself: only when a rule or sequence over a window that stays put is kept.
    /// Latest times are kept by `snapshot create`, and by a query that saves one at the end of the log: a query
    /// would otherwise read them again and again for a segment where they do not pay.
    var querySavesSnapshots: Bool {
        canSnapshot && (rules.contains(where: \.kept) || sequences.contains(where: \.kept))
    }

    /// Whether no rule can count an event of `group` (``someRuleAccepts``; its window aside).
    @inline(__always)
    func noRuleAccepts(_ group: BlockSummary.Group) -> Bool {
        let key = Int(group.touchpoint) * 3 + Int(group.type)
        return key >= someRuleAccepts.count || !someRuleAccepts[key]
    }

    /// Whether rule `r` takes events of `group`'s type and touchpoint (its window aside).
    @inline(__always)
    func takes(_ r: Int, _ group: BlockSummary.Group) -> Bool {
        let rule = rules[r]
        return rule.leaf.rule.interaction.matches(group.type) && Int(group.touchpoint) < rule.touchpoints.count
            && rule.touchpoints[Int(group.touchpoint)]
    }

    /// Whether rule `r` can count an event of `group`.
    @inline(__always)
    func wants(_ r: Int, _ group: BlockSummary.Group) -> Bool {
        guard let window = rules[r].leaf.window, takes(r, group) else { return false }
        return group.minTime <= window.upperBound && group.maxTime >= window.lowerBound
    }

    /// The steps of sequence `s` an event of `group` can take (bit k: step k); 0 when none or outside its window.
    @inline(__always)
    func steps(_ s: Int, _ group: BlockSummary.Group) -> UInt16 {
        let sequence = sequences[s]
        guard let window = sequence.window, group.minTime <= window.upperBound && group.maxTime >= window.lowerBound
        else { return 0 }
        var mask: UInt16 = 0
        for (k, step) in sequence.steps.enumerated()
        where step.interaction.matches(group.type) && Int(group.touchpoint) < step.touchpoints.count
            && step.touchpoints[Int(group.touchpoint)]
        {
            mask |= 1 << UInt16(k)
        }
        return mask
    }
}

extension CompiledSegment {
    /// Whether a profile none of whose events any rule counts is a member (the tree holds with every rule false):
    /// only then must the known profiles be found. Otherwise a member has a rule that holds, and every rule needs at
    /// least one event at or before T to hold (a count's `atLeast` is at least 1, a sequence needs its chain), so
    /// every member is known. ("In A and not in B" needs no universe; "not in B" does.)
    var holdsWithoutEvents: Bool { evaluate([Bool](repeating: false, count: atoms)) }

    /// Per interaction rule: whether it stands under an even number of negations, its own included. The tree can only
    /// gain from such a rule holding and lose from any other holding, so when it does not hold with every rule false
    /// (``holdsWithoutEvents``), it holds for no profile none of whose events such a rule counts: only those
    /// profiles can be members. (Each rule stands in the tree once.)
    var positiveLeaves: [Bool] {
        var positive = [Bool](repeating: false, count: leaves.count)
        func walk(_ node: Node, negated: Bool) {
            switch node {
            case .leaf(let i, let negate): positive[i] = negated == negate
            case .sequence: break
            case .group(_, let children, let negate): for child in children { walk(child, negated: negated != negate) }
            }
        }
        walk(root, negated: false)
        return positive
    }
}

/// What a format-2 query accumulates, per profile id, in zero-filled columns of its own (``ZeroedMemory``: 2 MiB
/// pages where the system allows, and pages a query never touches cost nothing), released with it. Every column's zero means "nothing yet", so nothing is filled
/// before the scan, and the scan writes through raw pointers: one update per qualifying event, with no
/// copy-on-write checks in between.
final class GroupedQueryState: @unchecked Sendable {
    // @unchecked: raw buffers; during a scan each worker writes only its own state, and the merge gives each worker
    // its own range of profile ids.
    let count: Int
    /// Per rule: qualifying events of each profile (``CountColumn``: a byte each where the rule's bounds allow).
    let counts: [CountColumn]
    /// Per rule that asks about conversions: the first qualifying time of each profile, as ``earliestKey(_:)``.
    let firsts: [UnsafeMutablePointer<UInt64>?]
    /// The latest conversion considered, as ``latestKey(_:)``, when some rule asks about conversions.
    let lastConversion: UnsafeMutablePointer<UInt64>?
    /// Known profiles (1), when the tree holds without events.
    let known: UnsafeMutablePointer<UInt8>?
    /// Per rule with a `value` condition (else nil): its value columns.
    let values: [ValueColumns?]
    /// Per sequence: the events this worker found that can take one of its steps.
    var sequenceEvents: [[SequenceEvent]]
    /// Per sequence: profiles a snapshot found matched (ascending).
    var sequenceMatched: [[UInt32]]
    /// Per sequence: the steps each profile's events found so far can take (bit k: step k). Only a profile whose
    /// events, across the workers, can take every step can match, so only its events are ever sorted.
    let sequenceSteps: [UnsafeMutablePointer<UInt8>]
    /// When every member must have an event some rule counts (no sequences, no universe): a bit per profile (bit
    /// `p & 63` of word `p >> 6`) set where a rule that stands under an even number of negations (``marking``)
    /// counted an event or a snapshot put its finding. Only those profiles can be members, so when few were marked,
    /// membership reads only theirs (``members(_:_:_:)``). Nil otherwise.
    let counted: UnsafeMutablePointer<UInt64>?
    /// Per rule: whether its counts mark ``counted`` (with ``counted``: the rules under an even number of negations).
    let marking: [Bool]
    /// With ``counted``, when some rule asks about conversions: a bit per profile whose latest conversion was set.
    let converted: UnsafeMutablePointer<UInt64>?
    /// Words of ``counted`` and ``converted``.
    let bitmapWords: Int
    /// Per rule: whether this state's scan, or the snapshot it was given, may have put anything in the rule's columns.
    /// Membership neither reads nor zeroes the columns of a rule that nothing was put in (a second worker's, for the
    /// rules a snapshot answers).
    var counting: [Bool]
    /// Whether a latest conversion may have been set.
    var converting = false
    /// Conversions a scan set aside (with ``counted``) instead of keeping each profile's latest: once every worker
    /// has scanned, only those of profiles some rule counted are kept (``keepConversions(_:)``).
    var setAside: [Conversion] = []

    /// A conversion set aside: its profile and time.
    struct Conversion {
        var profile: UInt32
        var time: Int64
    }

    /// What a rule with a `value` condition keeps of each profile's qualifying events that carry a value: how many,
    /// and what its aggregate needs of them: the sum in millionths (saturating; `sum`, `avg`), or the least or the
    /// greatest as ``earliestKey(_:)`` and ``latestKey(_:)`` keys (`min`, `max`). Columns an aggregate never reads are
    /// not allocated: a value rule over many profiles touches nearly every page of each column it has.
    struct ValueColumns {
        let counts: UnsafeMutablePointer<UInt32>
        let sums: UnsafeMutablePointer<Int64>?
        let least: UnsafeMutablePointer<UInt64>?
        let greatest: UnsafeMutablePointer<UInt64>?

        /// Which columns `aggregate` reads (besides the counts).
        static func needs(_ aggregate: InteractionRule.ValueCondition.Aggregate) -> (
            sums: Bool, least: Bool, greatest: Bool
        ) {
            (aggregate == .sum || aggregate == .avg, aggregate == .min, aggregate == .max)
        }

        /// Adds one value (in millionths) of profile `p`.
        @inline(__always)
        func add(_ micros: Int64, profile p: Int) {
            counts[p] &+= 1
            if let sums { sums[p] = InteractionRule.ValueCondition.add(sums[p], micros) }
            if let least { least[p] = max(least[p], GroupedQueryState.earliestKey(micros)) }
            if let greatest { greatest[p] = max(greatest[p], GroupedQueryState.latestKey(micros)) }
        }
    }

    /// An event that can take steps of a sequence: its profile, the steps (bit k: step k), time and offset.
    struct SequenceEvent: Sendable {
        var profile: UInt32
        var steps: UInt16
        var time: Int64
        var offset: UInt64
    }

    /// An order-reversing key of `t` (the earliest time has the largest key; 0 is later than any time).
    @inline(__always) static func earliestKey(_ t: Int64) -> UInt64 { ~(UInt64(bitPattern: t) ^ (1 << 63)) }
    /// An order-keeping key of `t` (0 is earlier than any time but `Int64.min`, which no event has).
    @inline(__always) static func latestKey(_ t: Int64) -> UInt64 { UInt64(bitPattern: t) ^ (1 << 63) }

    /// The memory behind the columns: one mapping for all of them (each column starting on a page of its own, so
    /// that pages a query never touches still cost nothing). One mapping, not one per column, because returning
    /// touched memory makes the kernel flush every core's address cache, which costs more than a small query.
    private let memory: ZeroedMemory
    /// Every column: where it starts, the bytes of one profile's entry, and whose it is (a rule's index; -1: the
    /// latest conversions; -2: known profiles or a sequence's steps).
    private let columns: [(start: UnsafeMutableRawPointer, stride: Int, owner: Int)]
    /// Set by ``members(_:_:_:)`` once it has made every column zero again: the memory then goes back to the pool
    /// for the next query (``ZeroedMemory/recycle()``), not to the kernel.
    private var zeroedAgain = false

    init(_ plan: GroupedQueryPlan, profiles n: Int) {
        count = n
        let page = 4096
        // Each column's bytes, in the order they are laid out.
        var sizes: [Int] = []
        func size<T>(_ type: T.Type) { sizes.append((max(1, n) * MemoryLayout<T>.stride + page - 1) / page * page) }
        for rule in plan.rules {
            if rule.narrowCounts { size(UInt8.self) } else { size(UInt32.self) }
        }
        for rule in plan.rules where rule.wantsFirst { size(UInt64.self) }
        if plan.conversionsFrom != nil { size(UInt64.self) }
        if plan.needsUniverse { size(UInt8.self) }
        for rule in plan.rules {
            guard let condition = rule.leaf.rule.value else { continue }
            let needs = ValueColumns.needs(condition.aggregate)
            size(UInt32.self)
            if needs.sums { size(Int64.self) }
            if needs.least { size(UInt64.self) }
            if needs.greatest { size(UInt64.self) }
        }
        for _ in plan.sequences { size(UInt8.self) }
        let marks = plan.sequences.isEmpty && !plan.needsUniverse
        let words = (max(1, n) + 63) / 64
        let bitmapBytes = (words * MemoryLayout<UInt64>.stride + page - 1) / page * page
        let bitmaps = marks ? (plan.conversionsFrom != nil ? 2 : 1) : 0
        let columnBytes = sizes.reduce(0, +)
        let memory = ZeroedMemory(bytes: columnBytes + bitmaps * bitmapBytes)
        var next = 0
        var offset = 0
        var layout: [(start: UnsafeMutableRawPointer, stride: Int, owner: Int)] = []
        func zeroed<T>(_ type: T.Type, of owner: Int = -2) -> UnsafeMutablePointer<T> {
            let column = (memory.base + offset).bindMemory(to: T.self, capacity: max(1, n))
            layout.append((memory.base + offset, MemoryLayout<T>.stride, owner))
            offset += sizes[next]
            next += 1
            return column
        }
        counts = plan.rules.indices.map { r in
            plan.rules[r].narrowCounts
                ? CountColumn(narrow: zeroed(UInt8.self, of: r)) : CountColumn(wide: zeroed(UInt32.self, of: r))
        }
        firsts = plan.rules.indices.map { plan.rules[$0].wantsFirst ? zeroed(UInt64.self, of: $0) : nil }
        lastConversion = plan.conversionsFrom.map { _ in zeroed(UInt64.self, of: -1) }
        known = plan.needsUniverse ? zeroed(UInt8.self) : nil
        values = plan.rules.indices.map { r in
            guard let condition = plan.rules[r].leaf.rule.value else { return nil }
            let needs = ValueColumns.needs(condition.aggregate)
            return ValueColumns(
                counts: zeroed(UInt32.self, of: r), sums: needs.sums ? zeroed(Int64.self, of: r) : nil,
                least: needs.least ? zeroed(UInt64.self, of: r) : nil,
                greatest: needs.greatest ? zeroed(UInt64.self, of: r) : nil)
        }
        sequenceSteps = plan.sequences.map { _ in zeroed(UInt8.self) }
        precondition(next == sizes.count)
        // (The bitmaps are not columns: they are zeroed whole, not by profile range.)
        func bitmap(_ k: Int) -> UnsafeMutablePointer<UInt64>? {
            k < bitmaps
                ? (memory.base + columnBytes + k * bitmapBytes).bindMemory(to: UInt64.self, capacity: words) : nil
        }
        counted = bitmap(0)
        converted = bitmap(1)
        marking = plan.rules.map { marks && $0.positive }
        bitmapWords = words
        counting = plan.rules.map { _ in false }
        sequenceEvents = plan.sequences.map { _ in [] }
        sequenceMatched = plan.sequences.map { _ in [] }
        self.memory = memory
        columns = layout
    }

    deinit {
        if zeroedAgain { memory.recycle() } else { memory.release() }
    }

    /// Keeps, of the conversions this state's scan set aside, those of profiles that some rule counted in any of
    /// `states` (a conversion decides nothing for a profile no rule counted): a look at a bitmap per conversion
    /// instead of a cache miss into the latest conversions of a million profiles. After every worker has scanned.
    func keepConversions(_ states: [GroupedQueryState]) {
        guard let last = lastConversion, !setAside.isEmpty else { return }
        let bitmaps = states.map { $0.counted! }
        for conversion in setAside {
            let p = Int(conversion.profile)
            let bit = UInt64(1) << UInt64(p & 63)
            guard bitmaps.contains(where: { $0[p >> 6] & bit != 0 }) else { continue }
            let key = Self.latestKey(conversion.time)
            if key > last[p] {
                last[p] = key
                Self.mark(converted, p)
                converting = true
            }
        }
        setAside.removeAll(keepingCapacity: true)
    }

    /// Zeroes the entries of profiles `range` in every column.
    private func zero(_ range: Range<Int>) {
        for column in columns where filled(column.owner) {
            (column.start + range.lowerBound * column.stride).initializeMemory(
                as: UInt8.self, repeating: 0, count: range.count * column.stride)
        }
    }

    /// Zeroes the entries of profiles `range` in the columns of rules that do not mark ``counted`` (written for any
    /// profile, so zeroed whole).
    private func zeroUnmarked(_ range: Range<Int>) {
        for column in columns where isFilledRuleColumn(column.owner, marking: false) {
            (column.start + range.lowerBound * column.stride).initializeMemory(
                as: UInt8.self, repeating: 0, count: range.count * column.stride)
        }
    }

    /// Zeroes the entries of profiles `ids` in the columns of rules that mark ``counted`` (a state that marks has no
    /// other columns but the latest conversions).
    private func zeroFindings(of ids: UnsafeBufferPointer<Int>) {
        for column in columns where isFilledRuleColumn(column.owner, marking: true) {
            switch column.stride {
            case 8:
                let entries = column.start.assumingMemoryBound(to: UInt64.self)
                for p in ids { entries[p] = 0 }
            case 4:
                let entries = column.start.assumingMemoryBound(to: UInt32.self)
                for p in ids { entries[p] = 0 }
            case 1:
                let entries = column.start.assumingMemoryBound(to: UInt8.self)
                for p in ids { entries[p] = 0 }
            default:
                for p in ids {
                    (column.start + p * column.stride).initializeMemory(
                        as: UInt8.self, repeating: 0, count: column.stride)
                }
            }
        }
    }

    /// Whether anything may have been put in the columns of `owner` (see ``columns``).
    @inline(__always)
    private func filled(_ owner: Int) -> Bool {
        owner >= 0 ? counting[owner] : owner == -1 ? converting : true
    }

    /// Whether `owner` is a rule that something was put in and whose counts mark ``counted`` or (`marking` false)
    /// do not.
    private func isFilledRuleColumn(_ owner: Int, marking: Bool) -> Bool {
        owner >= 0 && counting[owner] && self.marking[owner] == marking
    }

    /// Marks profile `p` in `bitmap` (``counted``, ``converted``).
    @inline(__always)
    static func mark(_ bitmap: UnsafeMutablePointer<UInt64>?, _ p: Int) {
        bitmap?[p >> 6] |= 1 << UInt64(p & 63)
    }

    /// Ids of the profiles for which the segment holds, ascending, from the findings of every worker's state
    /// (combined as they are read: counts add up, the earliest first time and the latest conversion win).
    ///
    /// When every member must have an event some rule counts and few profiles have one (see ``counted``), only
    /// theirs are read (``fewMembers(_:_:_:)``). Otherwise a chunk of profiles at a time, so that everything but the
    /// columns themselves stays in the cache: each rule's verdicts on the chunk, then the segment's tree over them,
    /// then the members appended. The profiles are split into one contiguous part per core (a million of them took
    /// a tenth of a query on one core), and the parts' members joined in order.
    /// `fromMarks` tells whether only the marked profiles were read.
    static func members(_ states: [GroupedQueryState], _ plan: GroupedQueryPlan, _ segment: CompiledSegment) -> (
        ids: [Int], fromMarks: Bool
    ) {
        let n = states[0].count
        if let found = fewMembers(states, plan, segment) { return (found, true) }
        let sequenceHolds = plan.sequences.indices.map { sequenceVerdicts(states, plan, $0, profiles: n) }
        let chunks = (n + Self.chunkSize - 1) / Self.chunkSize
        let parts = max(1, min(StoreReader.queryThreads, chunks / 2))
        let found = Mutex([[Int]](repeating: [], count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let range = (chunks * part / parts * Self.chunkSize)..<min(n, chunks * (part + 1) / parts * Self.chunkSize)
            let members = Self.members(states, plan, segment, profiles: range, sequenceHolds: sequenceHolds)
            found.withLock { $0[part] = members }
        }
        for state in states {
            state.counted?.update(repeating: 0, count: state.bitmapWords)
            state.converted?.update(repeating: 0, count: state.bitmapWords)
        }
        if n > 0 { for state in states { state.zeroedAgain = true } }
        return (found.withLock { $0.flatMap { $0 } }, false)
    }

    /// Profiles whose membership is decided together (see ``members(_:_:_:)``).
    private static let chunkSize = 4096

    /// Membership reads only the marked profiles when they are at most one in this many of all: each costs a few
    /// scattered cache lines per worker, where the chunked sweep streams 4–20 bytes of every profile per worker.
    private static let fewShare = 8

    /// ``members(_:_:_:)`` from the profiles ``counted`` marks (nil, with nothing read or zeroed, when the states do
    /// not mark or more than one in ``fewShare`` profiles is marked): ascending by the bitmaps, in one part of the
    /// bitmaps' words per core; each part then zeroes every entry its marks name, and its words of the bitmaps.
    private static func fewMembers(
        _ states: [GroupedQueryState], _ plan: GroupedQueryPlan, _ segment: CompiledSegment
    ) -> [Int]? {
        guard states.allSatisfy({ $0.counted != nil }) else { return nil }
        let words = states[0].bitmapWords
        var marked = 0
        for w in 0..<words {
            var any: UInt64 = 0
            for state in states {
                any |= state.counted![w]
                marked += (state.converted?[w] ?? 0).nonzeroBitCount
            }
            marked += any.nonzeroBitCount
        }
        guard marked <= states[0].count / Self.fewShare else { return nil }
        let parts = max(1, min(StoreReader.queryThreads, marked / Self.chunkSize))
        let found = Mutex([[Int]](repeating: [], count: parts))
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let range = (words * part / parts)..<(words * (part + 1) / parts)
            let members = Self.fewMembers(states, plan, segment, words: range)
            found.withLock { $0[part] = members }
        }
        for state in states { state.zeroedAgain = true }
        return found.withLock { $0.flatMap { $0 } }
    }

    /// ``fewMembers(_:_:_:)`` of the profiles marked in bitmap words `words`.
    private static func fewMembers(
        _ states: [GroupedQueryState], _ plan: GroupedQueryPlan, _ segment: CompiledSegment, words: Range<Int>
    ) -> [Int] {
        var decider = Decider(plan.rules.count)
        defer { decider.deallocate() }
        var result: [Int] = []
        var ids: [Int] = []
        ids.reserveCapacity(Self.chunkSize)
        func decide() {
            ids.withUnsafeBufferPointer { ids in
                decider.decide(states, plan, chunk: 0, ids: ids, count: ids.count)
                let verdicts = segment.evaluate(decider.holds, count: ids.count)
                for (g, verdict) in verdicts.enumerated() where verdict { result.append(ids[g]) }
                // Zeroed while the entries just read are in the cache.
                for state in states { state.zeroFindings(of: ids) }
            }
            ids.removeAll(keepingCapacity: true)
        }
        for w in words {
            var bits: UInt64 = 0
            for state in states { bits |= state.counted![w] }
            while bits != 0 {
                ids.append(w << 6 | bits.trailingZeroBitCount)
                bits &= bits &- 1
                if ids.count == Self.chunkSize { decide() }
            }
        }
        if !ids.isEmpty { decide() }
        // Every other nonzero entry is a latest conversion, marked where it was set, or a rule's that marks nothing.
        let profiles = (words.lowerBound * 64)..<min(states[0].count, words.upperBound * 64)
        for state in states {
            if !profiles.isEmpty { state.zeroUnmarked(profiles) }
            (state.counted! + words.lowerBound).update(repeating: 0, count: words.count)
            guard let converted = state.converted, let last = state.lastConversion else { continue }
            for w in words {
                var bits = converted[w]
                converted[w] = 0
                while bits != 0 {
                    last[w << 6 | bits.trailingZeroBitCount] = 0
                    bits &= bits &- 1
                }
            }
        }
        return result
    }

    /// Each rule's verdicts on up to ``chunkSize`` profiles at a time (``holds``), from every worker's findings
    /// combined in scratch buffers of its own.
    private struct Decider {
        /// Per rule, then per sequence: its verdict on each profile of the chunk.
        var holds: [[Bool]]
        /// Each profile's combined count, first time and latest conversion (as the states keep them).
        let counts = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: GroupedQueryState.chunkSize)
        let firsts = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: GroupedQueryState.chunkSize)
        let last = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: GroupedQueryState.chunkSize)

        init(_ atoms: Int) {
            holds = [[Bool]](repeating: [Bool](repeating: false, count: GroupedQueryState.chunkSize), count: atoms)
        }

        /// Adds the entries of `column` for `m` profiles (those of `ids` when given, else `chunk..<(chunk + m)`) to
        /// `counts`.
        @inline(__always)
        private static func add<Entry: UnsignedInteger & FixedWidthInteger>(
            _ column: UnsafeMutablePointer<Entry>, _ ids: UnsafeBufferPointer<Int>?, _ chunk: Int, _ m: Int,
            into counts: UnsafeMutableBufferPointer<UInt32>
        ) {
            if let ids {
                for g in 0..<m { counts[g] &+= UInt32(column[ids[g]]) }
            } else {
                let c = column + chunk
                for g in 0..<m { counts[g] &+= UInt32(c[g]) }
            }
        }

        func deallocate() {
            counts.deallocate()
            firsts.deallocate()
            last.deallocate()
        }

        /// Fills the rules' ``holds`` for `m` profiles: those of `ids` when given, else `chunk..<(chunk + m)`.
        mutating func decide(
            _ states: [GroupedQueryState], _ plan: GroupedQueryPlan, chunk: Int, ids: UnsafeBufferPointer<Int>?,
            count m: Int
        ) {
            let counts = counts
            let firsts = firsts
            let last = last
            for (r, rule) in plan.rules.enumerated() {
                let low = UInt32(clamping: rule.leaf.rule.atLeast)
                let high = UInt32(clamping: rule.leaf.rule.atMost ?? Int(UInt32.max))
                let converted = rule.leaf.rule.conversion == .converted
                // (A rule whose window is empty at T counts nothing and has no conversions to compare.)
                let comparesConversions = rule.wantsFirst && states[0].lastConversion != nil
                counts.update(repeating: 0)
                for state in states where state.counting[r] {
                    let column = state.counts[r]
                    if column.narrow {
                        Self.add(column.start.assumingMemoryBound(to: UInt8.self), ids, chunk, m, into: counts)
                    } else {
                        Self.add(column.start.assumingMemoryBound(to: UInt32.self), ids, chunk, m, into: counts)
                    }
                }
                if comparesConversions {
                    firsts.update(repeating: 0)
                    last.update(repeating: 0)
                    // (A state's first times are zero where it counted nothing; its latest conversions, where it set none.)
                    for state in states where state.counting[r] || state.converting {
                        let f = state.firsts[r]!
                        let l = state.lastConversion!
                        if let ids {
                            for g in 0..<m {
                                firsts[g] = max(firsts[g], f[ids[g]])
                                last[g] = max(last[g], l[ids[g]])
                            }
                        } else {
                            let f = f + chunk
                            let l = l + chunk
                            for g in 0..<m {
                                firsts[g] = max(firsts[g], f[g])
                                last[g] = max(last[g], l[g])
                            }
                        }
                    }
                }
                if let condition = rule.leaf.rule.value {
                    // The values of each profile's qualifying events, merged across the states.
                    let valueColumns = states.compactMap { $0.values[r] }
                    holds[r].withUnsafeMutableBufferPointer { out in
                        for g in 0..<m {
                            let c = counts[g]
                            // Most profiles have no qualifying event: their values are never looked at.
                            guard c >= low && c <= high && c > 0 else {
                                out[g] = false
                                continue
                            }
                            let p = ids?[g] ?? chunk + g
                            var totals = ValueTotals()
                            for columns in valueColumns { totals.merge(columns, profile: p) }
                            var verdict = totals.satisfy(condition)
                            if comparesConversions {
                                verdict = verdict && (c > 0 && last[g] >= ~firsts[g]) == converted
                            }
                            out[g] = verdict
                        }
                    }
                    continue
                }
                holds[r].withUnsafeMutableBufferPointer { out in
                    guard comparesConversions else {
                        // low ≤ c ≤ high as one unsigned comparison (none holds when low > high).
                        let span = high &- low
                        if low > high {
                            out.update(repeating: false)
                        } else {
                            for g in 0..<m { out[g] = counts[g] &- low <= span }
                        }
                        return
                    }
                    // Converted: a conversion at or after the first qualifying event (both keys in time order).
                    for g in 0..<m {
                        let c = counts[g]
                        out[g] = c >= low && c <= high && (c > 0 && last[g] >= ~firsts[g]) == converted
                    }
                }
            }
        }
    }

    /// ``members(_:_:_:)`` of the profiles of `range` (whole chunks from its start), whose entries it zeroes in every
    /// column once they are read.
    private static func members(
        _ states: [GroupedQueryState], _ plan: GroupedQueryPlan, _ segment: CompiledSegment, profiles: Range<Int>,
        sequenceHolds: [[Bool]]
    ) -> [Int] {
        var decider = Decider(plan.rules.count + plan.sequences.count)
        defer { decider.deallocate() }
        var result: [Int] = []
        for chunk in stride(from: profiles.lowerBound, to: profiles.upperBound, by: Self.chunkSize) {
            let m = min(Self.chunkSize, profiles.upperBound - chunk)
            decider.decide(states, plan, chunk: chunk, ids: nil, count: m)
            for (s, verdicts) in sequenceHolds.enumerated() {
                decider.holds[plan.rules.count + s].withUnsafeMutableBufferPointer { out in
                    verdicts.withUnsafeBufferPointer { _ = out.update(fromContentsOf: $0[chunk..<(chunk + m)]) }
                }
            }
            let verdicts = segment.evaluate(decider.holds, count: m)
            verdicts.withUnsafeBufferPointer { verdicts in
                let raw = UnsafeRawPointer(verdicts.baseAddress!)
                var g = 0
                while g < m {
                    // Most profiles are not members: eight verdicts at once, skipped when all are false.
                    if g + 8 <= m && raw.loadUnaligned(fromByteOffset: g, as: UInt64.self) == 0 {
                        g += 8
                        continue
                    }
                    // When the tree holds without events, members must be known profiles.
                    if verdicts[g] && (!plan.needsUniverse || states.contains(where: { $0.known![chunk + g] != 0 })) {
                        result.append(chunk + g)
                    }
                    g += 1
                }
            }
            // Everything of this chunk is read: zeroed now, while it is in the cache, the columns are zero again
            // when the query ends, and the next one reuses them as they are.
            for state in states { state.zero(chunk..<(chunk + m)) }
        }
        return result
    }
}

/// The first events of one group (those a scan reached, in the group's order), with their offsets and values when
/// a rule needs them.
struct GroupEvents {
    var times: [Int64] = []
    var profiles: [Int] = []
    var offsets: [UInt64] = []
    var values: [Double] = []

    mutating func removeAll() {
        times.removeAll(keepingCapacity: true)
        profiles.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
    }

    mutating func append(_ t: Int64, _ p: Int) {
        times.append(t)
        profiles.append(p)
    }

    static func corrupt(_ what: String) -> TouchLogError {
        TouchLogError(code: .corrupt, message: "a block's group has \(what)")
    }

    /// The offsets of the events, from the block's positions (``StoreReader/readPositions(of:_:times:reader:stored:section:into:)``)
    /// and its first offset.
    mutating func decodePositions(_ group: BlockSummary.Group, _ positions: [UInt32], first: UInt64) {
        for k in 0..<times.count { offsets.append(first + UInt64(positions[group.firstEvent + k])) }
    }

    /// The values of the events (NaN: none), from the group's part of the values section: a bitmap of which events
    /// carry one when some but not all do, then the values as little-endian doubles.
    mutating func decodeValues(_ group: BlockSummary.Group, _ section: [UInt8]) throws(TouchLogError) {
        let range = group.values
        guard range.upperBound <= section.count else { throw Self.corrupt("values that run past its section") }
        let partial = group.valueCount > 0 && group.valueCount < group.count
        var at = range.lowerBound + (partial ? (group.count + 7) / 8 : 0)
        for k in 0..<times.count {
            let carries =
                group.valueCount == group.count
                || (partial && section[range.lowerBound + k >> 3] & (1 << UInt8(k & 7)) != 0)
            guard carries else {
                values.append(.nan)
                continue
            }
            guard at + 8 <= range.upperBound else { throw Self.corrupt("fewer values than its bitmap names") }
            let bits = section.withUnsafeBytes {
                UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            }
            values.append(Double(bitPattern: bits))
            at += 8
        }
    }
}

extension ValueTotals {
    /// Adds what a worker's value columns hold for profile `p` (workers' findings combine exactly); what the
    /// columns do not keep stays as it is.
    @inline(__always)
    mutating func merge(_ columns: GroupedQueryState.ValueColumns, profile p: Int) {
        count += Int(columns.counts[p])
        if let sums = columns.sums { sum = InteractionRule.ValueCondition.add(sum, sums[p]) }
        if let least = columns.least { self.least = min(self.least, Int64(bitPattern: ~least[p] ^ (1 << 63))) }
        if let greatest = columns.greatest {
            self.greatest = max(self.greatest, Int64(bitPattern: greatest[p] ^ (1 << 63)))
        }
    }
}

extension GroupedQueryState {
    /// Whether sequence `s` holds for each of `n` profiles, from the candidate events every worker found: sorted by
    /// (profile, time, offset), each profile's run is tested in order (``SequenceMatcher``); and for the profiles a
    /// snapshot found matched.
    static func sequenceVerdicts(_ states: [GroupedQueryState], _ plan: GroupedQueryPlan, _ s: Int, profiles n: Int)
        -> [Bool]
    {
        let rule = plan.sequences[s].rule
        // Most candidates belong to profiles whose events cannot take every step: they are dropped before the sort.
        let every = UInt8(truncatingIfNeeded: (1 << rule.steps.count) - 1)
        let seen =
            states.count == 1 ? states[0].sequenceSteps[s] : UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, n))
        defer { if states.count > 1 { seen.deallocate() } }
        if states.count > 1 {
            seen.initialize(repeating: 0, count: max(1, n))
            for state in states {
                for event in state.sequenceEvents[s] {
                    seen[Int(event.profile)] = state.sequenceSteps[s][Int(event.profile)] | seen[Int(event.profile)]
                }
            }
        }
        var events: [SequenceEvent] = []
        for state in states {
            events.append(contentsOf: state.sequenceEvents[s].lazy.filter { seen[Int($0.profile)] == every })
        }
        events.sort { ($0.profile, $0.time, $0.offset) < ($1.profile, $1.time, $1.offset) }
        var verdicts = [Bool](repeating: false, count: n)
        var start = 0
        while start < events.count {
            let profile = events[start].profile
            var end = start + 1
            while end < events.count && events[end].profile == profile { end += 1 }
            verdicts[Int(profile)] = SequenceMatcher.matches(
                events[start..<end].lazy.map { ($0.time, $0.steps) }, steps: rule.steps.count,
                within: rule.within)
            start = end
        }
        for state in states {
            for id in state.sequenceMatched[s] where Int(id) < n { verdicts[Int(id)] = true }
        }
        return verdicts
    }
}

/// A rule's count of each profile's qualifying events (``GroupedQueryState/counts``): a byte per profile that stops
/// at 255 when the rule's bounds cannot tell 255 from more (``isNarrow(_:)``), else 4 bytes. A scan adds to a
/// random profile's entry per event, so a column a quarter the size stays in a core's cache four times as often.
struct CountColumn {
    /// Where entry 0 is; entries are `UInt8` when ``narrow``, else `UInt32`.
    let start: UnsafeMutableRawPointer
    let narrow: Bool

    init(narrow column: UnsafeMutablePointer<UInt8>) {
        start = UnsafeMutableRawPointer(column)
        narrow = true
    }

    init(wide column: UnsafeMutablePointer<UInt32>) {
        start = UnsafeMutableRawPointer(column)
        narrow = false
    }

    /// Where a narrow entry stops growing.
    static let cap: UInt32 = 255

    /// Whether `rule`'s count bounds decide the same of ``cap`` as of any larger count: `atLeast` at most the cap,
    /// and `atMost` below it or none. Counts that stopped at the cap, and sums of such counts across workers, then
    /// give every verdict an exact count would.
    static func isNarrow(_ rule: InteractionRule) -> Bool {
        rule.atLeast <= Int(cap) && (rule.atMost ?? 0) < Int(cap)
    }

    /// Bytes of one entry.
    var stride: Int { narrow ? 1 : 4 }

    /// Adds one qualifying event of profile `p`.
    @inline(__always)
    func add(_ p: Int) {
        if narrow {
            let entries = start.assumingMemoryBound(to: UInt8.self)
            let c = entries[p]
            entries[p] = c &+ (c == UInt8(Self.cap) ? 0 : 1)
        } else {
            start.assumingMemoryBound(to: UInt32.self)[p] &+= 1
        }
    }

    /// Profile `p`'s entry; setting it keeps at most ``cap`` in a narrow column.
    @inline(__always)
    subscript(p: Int) -> UInt32 {
        get {
            narrow
                ? UInt32(start.assumingMemoryBound(to: UInt8.self)[p]) : start.assumingMemoryBound(to: UInt32.self)[p]
        }
        nonmutating set {
            if narrow {
                start.assumingMemoryBound(to: UInt8.self)[p] = UInt8(min(newValue, Self.cap))
            } else {
                start.assumingMemoryBound(to: UInt32.self)[p] = newValue
            }
        }
    }
}

/// One rule's share of a group's events: counted when inside [low, high].
private struct GroupTarget {
    let counts: CountColumn
    let firsts: UnsafeMutablePointer<UInt64>?
    /// The state's ``GroupedQueryState/counted`` bitmap, when it keeps one.
    let counted: UnsafeMutablePointer<UInt64>?
    let low: Int64
    let high: Int64
    /// For a rule with a `value` condition: its value columns.
    var values: GroupedQueryState.ValueColumns?

    /// Counts an event of profile `p` at time `t` when inside the rule's window.
    @inline(__always)
    func count(_ t: Int64, _ p: Int) {
        guard t >= low && t <= high else { return }
        counts.add(p)
        GroupedQueryState.mark(counted, p)
        if let firsts {
            let key = GroupedQueryState.earliestKey(t)
            if key > firsts[p] { firsts[p] = key }
        }
    }

    /// ``count(_:_:)``, with the event's value (in millionths) added when it carries one: `value` is nil or NaN when
    /// it does not.
    func count(_ t: Int64, _ p: Int, value: Double?) {
        count(t, p)
        guard t >= low && t <= high, let values, let value, !value.isNaN else { return }
        values.add(InteractionRule.ValueCondition.micros(value), profile: p)
    }
}

extension StoreReader {
    /// The members of `definition` at `time` in a format-2 store, sorted ascending by bytes (see ``GroupedQueryPlan``).
    ///
    /// Rules whose window stays put (all time, `from`/`to`) start from the newest usable snapshot (``GroupedSnapshot``);
    /// when the blocks wholly at or before T reach ``snapshotInterval`` events past it, the query saves one where they
    /// end, keeping at most ``maxSnapshotsPerSegment`` spread along the log.
    func groupedMembers(of definition: SegmentDefinition, at time: QueryTime) throws -> [String] {
        let (ids, summaries) = try groupedMemberIDs(of: definition, at: time)
        let end = summaries.count
        guard end > 0 else { return [] }
        if dictionary.profileBlocks >= end || groupedQueries > 1 {
            // A reader that answers again (a store's pooled one) keeps the whole dictionary.
            try loadDictionary(through: end - 1)
            // Copied out in id order (front to back through the table of every profile), then put in byte order.
            let strings = dictionary.profiles.strings(ids)
            return dictionary.profiles.byteOrder(of: ids).map { strings[$0] }
        }
        // One query (a CLI process): only the members' strings, copied out of the blocks that introduced them.
        let strings = try profileStrings(ids, summaries: summaries)
        var order = Array(0..<strings.count)
        strings.sortByBytes(&order)
        return strings.strings(order)
    }

    /// The store-wide ids of the members of `definition` at `time`, ascending, and the summaries of the blocks
    /// recorded by K (see ``groupedMembers(of:at:)``).
    func groupedMemberIDs(of definition: SegmentDefinition, at time: QueryTime) throws(TouchLogError) -> (
        ids: [Int], summaries: BlockSummaries
    ) {
        let segment = CompiledSegment(definition, at: time)
        var report = QueryReport()
        let end = blocksRecorded(by: time.knownAt)
        guard end > 0 else {
            lastQuery = report
            return ([], BlockSummaries())
        }
        try loadTouchpoints(through: end - 1)
        let plan = GroupedQueryPlan(segment, touchpoints: dictionary.touchpoints)
        let summaries = try summaries(through: end)
        let states = try groupedScan(
            definition, plan, blocks: end, summaries: summaries, saveEvery: snapshotInterval, report: &report)
        var (ids, fromMarks) = GroupedQueryState.members(states, plan, segment)
        report.membersFromMarks = fromMarks
        if !erasures.profiles.isEmpty { ids.removeAll { erasures.profiles.contains($0) } }
        groupedQueries += 1
        lastQuery = report
        return (ids, summaries)
    }

    /// The blocks recorded by `knownAt` (all when nil): a prefix of the log, as recorded times never decrease.
    func blocksRecorded(by knownAt: Int64?) -> Int {
        var end = log.blocks.count
        if let knownAt {
            var low = 0
            while low < end {
                let mid = (low + end) / 2
                if log.blocks[mid].header.maxRecorded <= knownAt { low = mid + 1 } else { end = mid }
            }
        }
        return end
    }

    /// Scans the first `end` blocks for `plan` on every core; returns the workers' states. Kept rules start from the
    /// newest usable snapshot; one is saved where the blocks wholly at or before T end when that is at least
    /// `interval` events past where the kept rules started. With `along` (`snapshot create`), one is also saved every
    /// `interval` events before that point, and one always at it.
    func groupedScan(
        _ definition: SegmentDefinition, _ plan: GroupedQueryPlan, blocks end: Int, summaries: BlockSummaries,
        saveEvery interval: UInt64?, along: Bool = false, report: inout QueryReport
    ) throws(TouchLogError) -> [GroupedQueryState] {
        let asOf = plan.time.asOf
        let last = summaries[end - 1]
        let n = Int(last.firstNewProfile) + last.newProfiles
        let locations = log.blocks
        // The first block that reaches past T: every block before it lies wholly at or before T.
        let straddle = locations[..<end].firstIndex { $0.header.maxTime > asOf } ?? end
        // Known profiles: those introduced before it, and the events at or before T after it.
        let knownBefore = straddle == end ? n : Int(summaries[straddle].firstNewProfile)

        let start =
            plan.keepsAny
            ? newestUsableGroupedSnapshot(definition, at: plan.time, blocks: end, summaries: summaries, report: &report)
            : nil
        let snapshot = start?.snapshot
        let keptFrom = start?.blocks ?? 0
        report.snapshotOffset = snapshot?.endOffset ?? 0
        func events(before b: Int) -> UInt64 { b == 0 ? 0 : locations[b - 1].header.endOffset }
        var saveAts: [Int] = []
        if let interval, along ? plan.canSnapshot : plan.querySavesSnapshots, straddle > keptFrom {
            let step = max(1, interval)
            var last = events(before: keptFrom)
            for b in (keptFrom + 1)..<straddle where along && events(before: b) - last >= step {
                saveAts.append(b)
                last = events(before: b)
            }
            if along || events(before: straddle) - last >= step { saveAts.append(straddle) }
        }

        // Per rule: whether the snapshot answers it for the blocks before `keptFrom` (one of layout 4 or older keeps
        // no rule over the last N days).
        let fromSnapshot = plan.rules.indices.map { snapshot?.rules[$0] != nil }
        // A block before the snapshot's end is read only for a rule or sequence the snapshot does not answer whose
        // window meets the block's times: with one that answers every rule, none of them is even looked into.
        let windows =
            plan.rules.indices.compactMap { fromSnapshot[$0] ? nil : plan.rules[$0].leaf.window }
            + plan.sequences.compactMap { $0.kept && snapshot != nil ? nil : $0.window }
        let reading = (0..<end).filter { b in
            let header = locations[b].header
            return header.minTime <= asOf
                && (b >= keptFrom
                    || windows.contains { $0.lowerBound <= header.maxTime && $0.upperBound >= header.minTime })
        }
        let workers = max(1, min(Self.queryThreads, reading.count / 4))
        let states = (0..<workers).map { _ in GroupedQueryState(plan, profiles: n) }
        // The buffers an earlier query set conversions aside in: a fresh one of a megabyte or more is new memory
        // from the kernel, a page fault per 4 KiB, each time it grows.
        for (state, buffer) in zip(states, conversionBuffers) { state.setAside = buffer }
        conversionBuffers = []
        if let snapshot { snapshot.load(into: states[0], plan) }
        if plan.needsUniverse { states[0].known?.update(repeating: 1, count: knownBefore) }
        let readers = (0..<workers).map { _ in log.bodyReader() }
        let read = Mutex(UInt64(0))
        let sectionCache = sectionCache
        // Reads the blocks of `range` worth reading, shared out among the cores in turn (so each gets a share of every period).
        func scan(_ range: Range<Int>, conversionsFrom: Int64?, settingAside: Bool = false) throws(TouchLogError) {
            let blocks = reading.filter { range.contains($0) }
            try Self.onEveryWorker(readers) { w, reader throws(TouchLogError) in
                let eventsRead = try Self.scan(
                    blocks: stride(from: w, to: blocks.count, by: workers).map { blocks[$0] }, locations: locations,
                    summaries: summaries, plan: plan, straddle: straddle, keptFrom: keptFrom,
                    fromSnapshot: fromSnapshot, conversionsFrom: conversionsFrom, settingAside: settingAside,
                    profiles: n, into: states[w],
                    reader: reader, sections: sectionCache)
                read.withLock { $0 += eventsRead }
            }
        }
        // The blocks before each save point first, with every conversion (a snapshot serves any later T), then the rest.
        var from = 0
        for saveAt in saveAts {
            try scan(from..<saveAt, conversionsFrom: plan.conversionsFrom.map { _ in .min })
            let through = summaries[saveAt - 1]
            var taken = GroupedSnapshot.taking(
                states, plan, profiles: Int(through.firstNewProfile) + through.newProfiles)
            let header = locations[saveAt - 1].header
            taken.endOffset = header.endOffset
            taken.anchor = header.hash
            taken.watermark = locations[..<saveAt].lazy.map(\.header.maxTime).max()!
            taken.recorded = header.maxRecorded
            // Latest times only in a snapshot at the end: it serves the questions about now, which read nothing after
            // it. A question about a past T starts from one along the log, where decoding latest times took as long
            // as reading the blocks they spare.
            let atWatermark = CompiledSegment(definition, at: QueryTime(asOf: taken.watermark)).leaves
            if saveAt == end {
                for (r, entries) in try recentEntries(
                    atWatermark, plan, blocks: saveAt, watermark: taken.watermark, summaries: summaries,
                    profiles: taken.profiles)
                {
                    taken.rules[r] = entries
                }
            }
            taken.keepConversions(from: GroupedSnapshot.conversionsFloor(atWatermark))
            if !taken.keepsAny {
                report.snapshotsNotWorthKeeping += 1
            } else if saveGroupedSnapshot(taken, definition: definition) {
                report.snapshotsWritten += 1
            }
            from = saveAt
        }
        try scan(from..<end, conversionsFrom: plan.conversionsFrom, settingAside: true)
        DispatchQueue.concurrentPerform(iterations: states.count) { w in states[w].keepConversions(states) }
        conversionBuffers = states.compactMap { state in
            var buffer: [GroupedQueryState.Conversion] = []
            swap(&buffer, &state.setAside)
            buffer.removeAll(keepingCapacity: true)
            return buffer.capacity <= Self.keptConversionBuffer ? buffer : nil
        }
        report.eventsRead = read.withLock { $0 }
        return states
    }

    /// The strings of profiles `ids` (ascending), in that order, read from the new-profile sections of the blocks
    /// that introduced them without building the rest. Each block's section is walked on its own, on every core.
    func profileStrings(_ ids: [Int], summaries: BlockSummaries) throws(TouchLogError) -> StringTable {
        // The blocks that introduced some of `ids`, each with the part of `ids` it did.
        var found: [(block: Int, ids: Range<Int>)] = []
        var next = 0
        for (b, summary) in summaries.enumerated() where next < ids.count {
            let end = Int(summary.firstNewProfile) + summary.newProfiles
            let first = next
            while next < ids.count && ids[next] < end { next += 1 }
            if next > first { found.append((b, first..<next)) }
        }
        let parts = found
        guard next == ids.count else {
            throw TouchLogError(code: .corrupt, message: "profile id \(ids[next]) is introduced by no block")
        }
        let workers = max(1, min(Self.queryThreads, parts.count / 4))
        let tables = Mutex([StringTable](repeating: StringTable(), count: parts.count))
        let blocks = log.blocks
        let keys = formatVersion >= 3 ? try profileKeys() : nil
        let erased = erasures.profiles
        try Self.onEveryWorker((0..<workers).map { _ in log.bodyReader() }) { w, reader throws(TouchLogError) in
            var stored: [UInt8] = []
            var raw: [UInt8] = []
            for k in stride(from: w, to: parts.count, by: workers) {
                let (b, range) = parts[k]
                let summary = summaries[b]
                let first = Int(summary.firstNewProfile)
                var strings = StringTable()
                try Self.readSection(.newProfiles, of: blocks[b], summary, reader: reader, stored: &stored, into: &raw)
                do {
                    if let keys, blocks[b].header.version >= 3 {
                        // Sealed: only the wanted identifiers are opened.
                        try keys.copy(raw, summary, wanted: ids[range], erased: erased, into: &strings)
                    } else {
                        try raw.withDecodedBytes { section throws(DecodeError) in
                            try StoreDictionary.copy(
                                section, entries: first..<(first + summary.newProfiles), wanted: ids[range],
                                into: &strings)
                        }
                    }
                } catch {
                    throw TouchLogError(
                        code: .corrupt, message: "\(reader.location(of: blocks[b])): bad block dictionary: \(error)")
                }
                tables.withLock { $0[k] = strings }
            }
        }
        var strings = StringTable()
        for table in tables.withLock({ $0 }) {
            for i in 0..<table.count { strings.append(table[i]) }
        }
        guard strings.count == ids.count else {
            throw TouchLogError(code: .corrupt, message: "a block's dictionary lacks profiles it introduced")
        }
        return strings
    }

    /// Runs `body` once on each of as many threads as there are `readers`, with the worker's number and reader (a
    /// reader is used by one thread only); throws the first error any of them threw, after all have returned.
    static func onEveryWorker(
        _ readers: [BlockBodyReader], _ body: @Sendable (Int, BlockBodyReader) throws(TouchLogError) -> Void
    ) throws(TouchLogError) {
        let failure = Mutex<TouchLogError?>(nil)
        DispatchQueue.concurrentPerform(iterations: readers.count) { w in
            do throws(TouchLogError) { try body(w, readers[w]) } catch { failure.withLock { $0 = $0 ?? error } }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// The most conversions a buffer kept for the next query holds (16 MiB).
    static let keptConversionBuffer = 1 << 20

    /// Threads a format-2 query scans on: the cores.
    static let queryThreads = Platform.processorCount

    /// One worker's part of a format-2 query: scans `blocks` into `state`; returns the events of the blocks it read.
    /// Rules the snapshot answers (`fromSnapshot`) and kept sequences, and conversions, count only from block
    /// `keptFrom` on (a snapshot holds what comes before it);
    /// conversions count from `conversionsFrom` (the plan's, or every one when a snapshot is being taken). With
    /// `settingAside` (the last scan before membership, in a state that marks ``GroupedQueryState/counted``), they
    /// are set aside in ``GroupedQueryState/setAside`` rather than kept per profile.
    private static func scan(
        blocks: [Int], locations: [BlockLocation], summaries: BlockSummaries, plan: GroupedQueryPlan,
        straddle: Int, keptFrom: Int, fromSnapshot: [Bool], conversionsFrom: Int64?, settingAside: Bool,
        profiles n: Int,
        into state: GroupedQueryState,
        reader: BlockBodyReader, sections: SectionCache?
    ) throws(TouchLogError) -> UInt64 {
        let asOf = plan.time.asOf
        var targets: [GroupTarget] = []
        var times: [UInt8] = []
        var profiles: [UInt8] = []
        var positionsSection: [UInt8] = []
        var positions: [UInt32] = []
        var values: [UInt8] = []
        var stored: [UInt8] = []
        var eventsRead: UInt64 = 0
        // Conversions set aside (see `settingAside`), in the state's buffer, moved here while the scan appends.
        var setAside: [GroupedQueryState.Conversion] = []
        swap(&setAside, &state.setAside)
        defer { swap(&setAside, &state.setAside) }
        // A group's events, for rules that need more than times and profiles (values, sequences).
        var detail = GroupEvents()
        var sequenceSteps: [(s: Int, steps: UInt16)] = []
        for b in blocks {
            let summary = summaries[b]
            var sectionsRead = false
            var positionsRead = false
            var valuesRead = false
            for group in summary.groups {
                // (A group no rule or sequence takes, of no conversions or universe the query needs.)
                if plan.noRuleAccepts(group) && plan.sequences.isEmpty && !plan.needsUniverse
                    && (conversionsFrom == nil || group.type != EventType.conversion.rawValue)
                {
                    continue
                }
                targets.removeAll(keepingCapacity: true)
                sequenceSteps.removeAll(keepingCapacity: true)
                var upper = Int64.min
                var wantsValues = false
                for r in plan.rules.indices where plan.wants(r, group) && (b >= keptFrom || !fromSnapshot[r]) {
                    let window = plan.rules[r].leaf.window!
                    var target = GroupTarget(
                        counts: state.counts[r], firsts: state.firsts[r],
                        counted: state.marking[r] ? state.counted : nil,
                        low: window.lowerBound,
                        high: window.upperBound)
                    if let values = state.values[r] {
                        target.values = values
                        wantsValues = true
                    }
                    targets.append(target)
                    state.counting[r] = true
                    upper = max(upper, window.upperBound)
                }
                for q in plan.sequences.indices where b >= keptFrom || !plan.sequences[q].kept {
                    let steps = plan.steps(q, group)
                    guard steps != 0 else { continue }
                    sequenceSteps.append((q, steps))
                    upper = max(upper, plan.sequences[q].window!.upperBound)
                }
                let conversions =
                    b >= keptFrom
                    && conversionsFrom.map { from in
                        group.type == EventType.conversion.rawValue && group.minTime <= asOf && group.maxTime >= from
                    } ?? false
                let universe = plan.needsUniverse && b >= straddle && group.minTime <= asOf
                if conversions || universe { upper = asOf }
                if targets.isEmpty && sequenceSteps.isEmpty && !conversions && !universe { continue }
                if !sectionsRead {
                    try readTimesAndProfiles(
                        of: locations[b], summary, reader: reader, cache: sections, stored: &stored, times: &times,
                        profiles: &profiles)
                    sectionsRead = true
                    eventsRead += UInt64(summary.count)
                }
                let conversionsFrom = conversions ? conversionsFrom! : .max
                let last = state.lastConversion
                let converted = state.converted
                let known = universe ? state.known : nil
                let setsAside = settingAside && state.counted != nil
                if conversions && !setsAside { state.converting = true }
                // What every event of the group adds besides its rules' counts: the latest conversion, known profiles.
                @inline(__always) func note(_ t: Int64, _ p: Int) {
                    if t >= conversionsFrom {
                        if setsAside {
                            setAside.append(
                                GroupedQueryState.Conversion(profile: UInt32(truncatingIfNeeded: p), time: t))
                        } else {
                            let key = GroupedQueryState.latestKey(t)
                            if key > last![p] {
                                last![p] = key
                                GroupedQueryState.mark(converted, p)
                            }
                        }
                    }
                    known?[p] = 1
                }
                if wantsValues || !sequenceSteps.isEmpty {
                    if !sequenceSteps.isEmpty && !positionsRead {
                        try readPositions(
                            of: locations[b], summary, times: times, reader: reader, stored: &stored,
                            section: &positionsSection, into: &positions)
                        positionsRead = true
                    }
                    if wantsValues && !valuesRead {
                        try readSection(
                            .values, of: locations[b], summary, reader: reader, stored: &stored, into: &values)
                        valuesRead = true
                    }
                    detail.removeAll()
                    try scan(group, summary, times: times, profiles: profiles, upTo: upper, limit: n) { t, p in
                        detail.append(t, p)
                    }
                    if !sequenceSteps.isEmpty {
                        detail.decodePositions(group, positions, first: locations[b].header.firstOffset)
                    }
                    if wantsValues { try detail.decodeValues(group, values) }
                    for k in 0..<detail.times.count {
                        let t = detail.times[k]
                        let p = detail.profiles[k]
                        for target in targets { target.count(t, p, value: wantsValues ? detail.values[k] : nil) }
                        for (q, steps) in sequenceSteps where plan.sequences[q].window!.contains(t) {
                            state.sequenceEvents[q].append(
                                GroupedQueryState.SequenceEvent(
                                    profile: UInt32(p), steps: steps, time: t, offset: detail.offsets[k]))
                            state.sequenceSteps[q][p] |= UInt8(truncatingIfNeeded: steps)
                        }
                        note(t, p)
                    }
                    continue
                }
                // The per-profile column each event of the group touches first: a cache miss per event unless
                // prefetched (the latest conversions for a conversion group, else the first rule's counts).
                // (Conversions set aside touch no column; a rule's first times are a column of their own.)
                var column: (UnsafeRawPointer, Int)? = nil
                var second: (UnsafeRawPointer, Int)? = nil
                if conversions && !setsAside, let last {
                    column = (UnsafeRawPointer(last), MemoryLayout<UInt64>.stride)
                } else if let first = targets.first {
                    column = (UnsafeRawPointer(first.counts.start), first.counts.stride)
                    second = first.firsts.map { (UnsafeRawPointer($0), MemoryLayout<UInt64>.stride) }
                }
                try targets.withUnsafeBufferPointer { targets throws(TouchLogError) in
                    try scan(
                        group, summary, times: times, profiles: profiles, upTo: upper, limit: n,
                        prefetching: column, and: second
                    ) { t, p in
                        for target in targets { target.count(t, p) }
                        note(t, p)
                    }
                }
            }
        }
        return eventsRead
    }

    /// Reads one section of a format-2 block (checked against its checksum, decompressed) into `raw`; `stored` is
    /// scratch for its stored bytes.
    static func readSection(
        _ kind: BlockSummary.SectionKind, of location: BlockLocation, _ summary: BlockSummary,
        reader: some BlockBodyReading, stored: inout [UInt8], into raw: inout [UInt8]
    ) throws(TouchLogError) {
        let info = summary[kind]
        // Room past the bytes for what a scan appends (8 bytes after the profile ids), so that a section handed over
        // as it was read is not copied again to grow.
        stored.reserveCapacity(max(info.storedLength, info.rawLength) + 8)
        raw.reserveCapacity(info.rawLength + 8)
        try storage { () throws(StorageError) in
            try reader.readBody(of: location, at: info.start, count: info.storedLength, into: &stored)
        }
        do {
            try GroupedBlockCodec.section(kind, info, taking: &stored, into: &raw)
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(reader.location(of: location)): bad block: \(error)")
        }
    }

    /// ``readSection(_:of:_:reader:stored:into:)`` through `cache` (when given), with `padding` zero bytes after the
    /// section's, kept with it. A section read goes to the cache: it is read into an array of its own, not into
    /// `raw`'s, which the cache may hold (a write would copy it first).
    static func readSection(
        _ kind: BlockSummary.SectionKind, of location: BlockLocation, _ summary: BlockSummary,
        reader: some BlockBodyReading, cache: SectionCache?, padding: Int = 0, stored: inout [UInt8],
        into raw: inout [UInt8]
    ) throws(TouchLogError) {
        let hash = location.header.hash
        if let kept = cache?.section(kind, of: hash) {
            raw = kept
            return
        }
        if cache != nil { raw = [] }
        try readSection(kind, of: location, summary, reader: reader, stored: &stored, into: &raw)
        raw.append(contentsOf: repeatElement(0, count: padding))
        cache?.keep(raw, kind, of: hash)
    }

    /// The times and profiles sections of block `location`, as ``scan(_:_:times:profiles:upTo:limit:prefetching:and:_:)``
    /// reads them (the profiles with room for the last value's 8-byte load), through `cache` when given.
    static func readTimesAndProfiles(
        of location: BlockLocation, _ summary: BlockSummary, reader: some BlockBodyReading, cache: SectionCache?,
        stored: inout [UInt8], times: inout [UInt8], profiles: inout [UInt8]
    ) throws(TouchLogError) {
        try readSection(.times, of: location, summary, reader: reader, cache: cache, stored: &stored, into: &times)
        try readSection(
            .profiles, of: location, summary, reader: reader, cache: cache, padding: 8, stored: &stored,
            into: &profiles)
    }

    /// Each event's position in block `location`, by its index in grouped order
    /// (``GroupedBlockCodec/positions(_:times:positions:into:)``), read through `section`; `times` is the block's raw
    /// times section.
    static func readPositions(
        of location: BlockLocation, _ summary: BlockSummary, times: [UInt8], reader: some BlockBodyReading,
        stored: inout [UInt8], section: inout [UInt8], into positions: inout [UInt32]
    ) throws(TouchLogError) {
        try readSection(.positions, of: location, summary, reader: reader, stored: &stored, into: &section)
        do {
            try times.withDecodedBytes { times throws(DecodeError) in
                try section.withDecodedBytes { section throws(DecodeError) in
                    try GroupedBlockCodec.positions(summary, times: times, positions: section, into: &positions)
                }
            }
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(reader.location(of: location)): bad block: \(error)")
        }
    }

    /// Calls `body` with the time and profile id of each event of `group` up to time `upper`, in time order.
    /// `profiles` must have 8 bytes of room past its packed ids.
    ///
    /// With `prefetching` (a per-profile column's start and element size), the column's entry of the profile 8
    /// events ahead is prefetched before each event is handed to `body`, so that the cache misses of a group's events
    /// into a column of a million profiles overlap; with `and`, a second column's too (a rule's first times).
    @inline(__always)
    static func scan(
        _ group: BlockSummary.Group, _ summary: BlockSummary, times: [UInt8], profiles: [UInt8], upTo upper: Int64,
        limit: Int, prefetching column: (start: UnsafeRawPointer, stride: Int)? = nil,
        and second: (start: UnsafeRawPointer, stride: Int)? = nil, _ body: (Int64, Int) -> Void
    ) throws(TouchLogError) {
        let width = summary.profileWidth
        let mask = width == 64 ? UInt64.max : (UInt64(1) << UInt64(width)) - 1
        let base = Int(summary.profileBase)
        var bad = false
        times.withUnsafeBytes { times in
            profiles.withUnsafeBytes { profiles in
                var at = group.times.lowerBound
                let end = group.times.upperBound
                var t = group.minTime
                var bit = group.firstEvent * width
                for k in 0..<group.count {
                    if k > 0 {
                        // A varint, within the group's bytes (the section was checked, but stay inside it regardless).
                        var delta: UInt64 = 0
                        var shift: UInt64 = 0
                        while true {
                            guard at < end, shift < 64 else {
                                bad = true
                                return
                            }
                            let byte = times[at]
                            at += 1
                            delta |= UInt64(byte & 0x7f) << shift
                            if byte & 0x80 == 0 { break }
                            shift += 7
                        }
                        t &+= Int64(bitPattern: delta)
                    }
                    if t > upper { return }
                    let word = profiles.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self)
                    let p = base + Int((UInt64(littleEndian: word) >> UInt64(bit & 7)) & mask)
                    guard p < limit else {
                        bad = true
                        return
                    }
                    if let column, k + 8 < group.count {
                        let ahead = bit + 8 * width
                        let word = profiles.loadUnaligned(fromByteOffset: ahead >> 3, as: UInt64.self)
                        let q = base + Int((UInt64(littleEndian: word) >> UInt64(ahead & 7)) & mask)
                        if q < limit {
                            Cache.prefetch(column.start + q * column.stride)
                            if let second { Cache.prefetch(second.start + q * second.stride) }
                        }
                    }
                    bit += width
                    body(t, p)
                }
            }
        }
        if bad {
            throw TouchLogError(
                code: .corrupt, message: "a block's group runs past its section, or names a profile the store lacks")
        }
    }
}
