/// One event of one profile, as the per-profile evaluation reads it.
struct ProfileEvent {
    var time: Int64
    var offset: UInt64
    var type: UInt8
    /// Touchpoint id + 1 in the evaluator's table, or 0 for none.
    var touchpoint: UInt32
    /// NaN when the event carries none.
    var value: Double
}

/// Stored events as ``ProfileEvent``s, with touchpoint ids in a table of their own (for evaluations that read
/// decoded events rather than a format-2 store's groups).
struct ProfileEventBuilder {
    private(set) var touchpoints = StringTable()
    private var ids: [String: UInt32] = [:]

    mutating func event(_ stored: StoredEvent) -> ProfileEvent {
        let e = stored.event
        let id = e.touchpoint.map { touchpoint(Array($0.utf8)[...]) } ?? 0
        return ProfileEvent(
            time: e.time, offset: stored.offset, type: e.type.rawValue, touchpoint: id, value: e.value ?? .nan)
    }

    /// The id (+ 1 in ``touchpoints``) of the touchpoint with these bytes, added when it is new.
    mutating func touchpoint(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        let text = String(decoding: bytes, as: UTF8.self)
        if let known = ids[text] { return known }
        touchpoints.append(Array(bytes))
        let id = UInt32(touchpoints.count)
        ids[text] = id
        return id
    }
}

/// Which touchpoints (ids + 1 of one table; 0 = none) each interaction rule and each sequence step of a compiled
/// definition accepts. The leaves are numbered the same at every T, so one set serves every query time.
struct RuleMatchers {
    let leaves: [[Bool]]
    let steps: [[[Bool]]]

    init(_ segment: CompiledSegment, touchpoints: StringTable) {
        leaves = segment.leaves.map { $0.allowedTouchpoints(touchpoints) }
        steps = segment.sequences.map { $0.steps.map { $0.allowedTouchpoints(touchpoints) } }
    }

    /// Per interaction rule, then per sequence and step, whether it accepts each touchpoint id.
    init(leaves: [[Bool]], steps: [[[Bool]]]) {
        self.leaves = leaves
        self.steps = steps
    }
}

/// The membership of one profile from its own events: the evaluation every other follows, used where one profile
/// (or a few) is asked about at many times (`explain`, `history`), and by format-1 stores for the rules their
/// projection does not keep. The caller gives the events recorded by K (any order of offsets; times ≤ T or later);
/// only those at or before the compiled segment's T count.
final class ProfileEvaluation: @unchecked Sendable {
    // A class: history keeps one per step and asks it for many profiles; a struct holding a compiled segment would
    // be copied (its arrays retained and released) at every ask. @unchecked: nothing in it changes after init (a
    // compiled segment is not declared Sendable); history's workers each make their own.
    let segment: CompiledSegment
    let matchers: RuleMatchers
    /// Per interaction rule, what ``atoms(_:)`` tests, in values that copy without reference counting (reading a
    /// leaf's rule retains and releases its strings and arrays), and each rule's accepted touchpoints in one buffer.
    /// (Buffers of its own rather than arrays, so that reading them changes no reference count either.)
    private let tests: UnsafeMutableBufferPointer<LeafTest>
    private let accepted: UnsafeMutableBufferPointer<Bool>
    /// The rule tree in postfix order, as values that copy without reference counting (walking the tree's nodes
    /// retains and releases their child arrays at every step).
    private let program: UnsafeMutableBufferPointer<TreeStep>

    private enum TreeStep {
        /// Atom i's verdict, negated or not.
        case atom(Int, negate: Bool)
        /// The last `count` verdicts combined (all or any), negated or not.
        case group(all: Bool, count: Int, negate: Bool)
    }

    private struct LeafTest {
        let low: Int64
        let high: Int64
        let interaction: InteractionRule.Interaction
        let atLeast: Int
        let atMost: Int
        let conversion: InteractionRule.Conversion?
        let value: InteractionRule.ValueCondition?
        /// Where the rule's touchpoints start in ``accepted``, and how many there are.
        let touchpoints: Int
        let touchpointCount: Int
    }

    init(segment: CompiledSegment, matchers: RuleMatchers) {
        self.segment = segment
        self.matchers = matchers
        var tests: [LeafTest] = []
        var accepted: [Bool] = []
        for (l, leaf) in segment.leaves.enumerated() {
            let rule = leaf.rule
            tests.append(
                LeafTest(
                    low: leaf.window?.lowerBound ?? 1, high: leaf.window?.upperBound ?? 0,
                    interaction: rule.interaction,
                    atLeast: rule.atLeast, atMost: rule.atMost ?? .max, conversion: rule.conversion, value: rule.value,
                    touchpoints: accepted.count, touchpointCount: matchers.leaves[l].count))
            accepted += matchers.leaves[l]
        }
        self.tests = .allocate(copying: tests)
        self.accepted = .allocate(copying: accepted)
        var program: [TreeStep] = []
        func add(_ node: CompiledSegment.Node) {
            switch node {
            case .leaf(let i, let negate): program.append(.atom(i, negate: negate))
            case .sequence(let i, let negate): program.append(.atom(segment.leaves.count + i, negate: negate))
            case .group(let match, let children, let negate):
                children.forEach(add)
                program.append(.group(all: match == .all, count: children.count, negate: negate))
            }
        }
        add(segment.root)
        self.program = .allocate(copying: program)
    }

    deinit {
        tests.deallocate()
        accepted.deallocate()
        program.deallocate()
    }

    /// Whether the rule tree holds, given each atom's verdict (as ``CompiledSegment/evaluate(_:)``).
    func evaluate(_ atoms: [Bool]) -> Bool { atoms.withUnsafeBufferPointer { evaluate($0) } }

    func evaluate(_ atoms: UnsafeBufferPointer<Bool>) -> Bool {
        withUnsafeTemporaryAllocation(of: Bool.self, capacity: program.count) { stack in
            var top = 0
            for step in program {
                switch step {
                case .atom(let i, let negate):
                    stack[top] = atoms[i] != negate
                    top += 1
                case .group(let all, let count, let negate):
                    var value = all
                    for k in (top - count)..<top { value = all ? value && stack[k] : value || stack[k] }
                    top -= count
                    stack[top] = value != negate
                    top += 1
                }
            }
            return stack[0]
        }
    }

    /// What one interaction rule found: its qualifying events (indices into the events given), the value totals,
    /// and the profile's latest conversion at or before T.
    struct LeafFinding {
        var qualifying: [Int] = []
        var first: Int64 = .max
        var values = ValueTotals()
    }

    /// Whether the event at `i` qualifies for leaf `l` (its touchpoint and type, inside the window).
    @inline(__always)
    func qualifies(_ e: ProfileEvent, leaf l: Int) -> Bool {
        let leaf = segment.leaves[l]
        guard let window = leaf.window, window.contains(e.time), leaf.rule.interaction.matches(e.type) else {
            return false
        }
        let allowed = matchers.leaves[l]
        return Int(e.touchpoint) < allowed.count && allowed[Int(e.touchpoint)]
    }

    func findings(_ events: [ProfileEvent]) -> (leaves: [LeafFinding], lastConversion: Int64) {
        let asOf = segment.time.asOf
        var lastConversion = Int64.min
        var found = [LeafFinding](repeating: LeafFinding(), count: segment.leaves.count)
        for (i, e) in events.enumerated() where e.time <= asOf {
            if e.type == EventType.conversion.rawValue { lastConversion = max(lastConversion, e.time) }
            for l in segment.leaves.indices where qualifies(e, leaf: l) {
                found[l].qualifying.append(i)
                found[l].first = min(found[l].first, e.time)
                if segment.leaves[l].rule.value != nil { found[l].values.add(e.value) }
            }
        }
        return (found, lastConversion)
    }

    /// The events of `events` that could take each step of sequence `s` (indices), in (time, offset) order.
    func sequenceCandidates<Events: RandomAccessCollection<ProfileEvent>>(_ events: Events, _ s: Int) -> [(
        index: Int, steps: UInt16
    )]
    where Events.Index == Int {
        guard let window = segment.sequences[s].window else { return [] }
        var candidates: [(index: Int, steps: UInt16)] = []
        for (i, e) in events.enumerated() where window.contains(e.time) {
            var mask: UInt16 = 0
            for (k, step) in segment.sequences[s].rule.steps.enumerated() where step.interaction.matches(e.type) {
                let allowed = matchers.steps[s][k]
                if Int(e.touchpoint) < allowed.count && allowed[Int(e.touchpoint)] { mask |= 1 << UInt16(k) }
            }
            if mask != 0 { candidates.append((i, mask)) }
        }
        // (Already in order when the events are: history gives them sorted by time and offset.)
        let inOrder = zip(candidates, candidates.dropFirst()).allSatisfy { a, b in
            (events[a.index].time, events[a.index].offset) < (events[b.index].time, events[b.index].offset)
        }
        if !inOrder {
            candidates.sort {
                (events[$0.index].time, events[$0.index].offset) < (events[$1.index].time, events[$1.index].offset)
            }
        }
        return candidates
    }

    /// Whether sequence `s` matches `events`: a chain e1…en in strictly increasing (time, offset) order with
    /// en.time − e1.time ≤ within. Per step it keeps only the latest first-step time of a chain that reached it,
    /// which is all a later step needs (the latest start gives the shortest span).
    func sequenceHolds<Events: RandomAccessCollection<ProfileEvent>>(_ events: Events, _ s: Int) -> Bool
    where Events.Index == Int {
        let rule = segment.sequences[s].rule
        return SequenceMatcher.matches(
            sequenceCandidates(events, s).lazy.map { (events[$0.index].time, $0.steps) }, steps: rule.steps.count,
            within: rule.within)
    }

    /// The chain that shows sequence `s` holds (indices into `events`), or nil: from the earliest first step that
    /// completes within the limit, each next step's earliest event.
    func sequenceChain(_ events: [ProfileEvent], _ s: Int) -> [Int]? {
        let rule = segment.sequences[s].rule
        let candidates = sequenceCandidates(events, s)
        for (startAt, start) in candidates.enumerated() where start.steps & 1 != 0 {
            var chain = [start.index]
            var at = startAt + 1
            while chain.count < rule.steps.count, at < candidates.count {
                if candidates[at].steps & (1 << UInt16(chain.count)) != 0 { chain.append(candidates[at].index) }
                at += 1
            }
            guard chain.count == rule.steps.count else { break }  // a later start cannot complete either
            if rule.within.map({ events[chain.last!].time - events[chain[0]].time <= $0 }) ?? true { return chain }
        }
        return nil
    }

    /// Per interaction rule, the times of a profile's events of the rule's type and touchpoints, ascending: rule
    /// l's at `times[l * stride ..< l * stride + counts[l]]`. (History, which asks at many T, gives them: a rule that
    /// asks neither about values nor conversions then counts its events in the window by two binary searches
    /// instead of a pass over all the events.)
    struct LeafTimes {
        let times: UnsafeBufferPointer<Int64>
        let stride: Int
        let counts: UnsafeBufferPointer<Int>
    }

    /// Each atom's verdict (interaction rules, then sequences), before negation. (What ``findings(_:)`` finds,
    /// without collecting the events.)
    func atoms(_ events: [ProfileEvent]) -> [Bool] {
        [Bool](unsafeUninitializedCapacity: segment.atoms) { buffer, count in
            buffer.initialize(repeating: false)
            events.withUnsafeBufferPointer { atoms($0, leafTimes: nil, into: buffer) }
            count = segment.atoms
        }
    }

    /// Each atom's verdict into `verdicts` (one per atom), without allocating: history asks this many times per
    /// profile.
    func atoms(
        _ events: UnsafeBufferPointer<ProfileEvent>, leafTimes: LeafTimes?,
        into verdicts: UnsafeMutableBufferPointer<Bool>
    ) {
        let asOf = segment.time.asOf
        var lastConversion = Int64.min
        for e in events where e.time <= asOf && e.type == EventType.conversion.rawValue {
            lastConversion = max(lastConversion, e.time)
        }
        for (l, test) in tests.enumerated() {
            if let leafTimes, test.value == nil, test.conversion == nil {
                let (low, high) = (test.low, min(test.high, asOf))
                var count = 0
                if low <= high {
                    let times = UnsafeBufferPointer(
                        rebasing: leafTimes.times[(l * leafTimes.stride)..<(l * leafTimes.stride + leafTimes.counts[l])]
                    )
                    count = times.partitioningIndex { $0 > high } - times.partitioningIndex { $0 >= low }
                }
                verdicts[l] = count >= test.atLeast && count <= test.atMost
                continue
            }
            var count = 0
            var first = Int64.max
            var values = ValueTotals()
            for e in events
            where e.time <= asOf && e.time >= test.low && e.time <= test.high && test.interaction.matches(e.type)
                && Int(e.touchpoint) < test.touchpointCount && accepted[test.touchpoints + Int(e.touchpoint)]
            {
                count += 1
                first = min(first, e.time)
                if test.value != nil { values.add(e.value) }
            }
            // (As ``CompiledSegment/Leaf/holds(count:first:lastConversion:values:)``.)
            var holds = count >= test.atLeast && count <= test.atMost
            if holds, let value = test.value { holds = values.satisfy(value) }
            if holds, let conversion = test.conversion {
                holds = (lastConversion >= first) == (conversion == .converted)
            }
            verdicts[l] = holds
        }
        for s in segment.sequences.indices { verdicts[tests.count + s] = sequenceHolds(events, s) }
    }

    /// Whether the profile is a member: known at T (an event at or before it) and the tree holds.
    func isMember(_ events: [ProfileEvent]) -> Bool {
        let asOf = segment.time.asOf
        guard events.contains(where: { $0.time <= asOf }) else { return false }
        return evaluate(atoms(events))
    }
}

/// The streaming test of a sequence over one profile's candidate events in (time, offset) order.
enum SequenceMatcher {
    /// `events`: each candidate's time and the steps it can take (bit k: step k). Processing an event's steps from
    /// the last down keeps it from taking two steps of one chain.
    static func matches(_ events: some Sequence<(Int64, UInt16)>, steps n: Int, within: Int64?) -> Bool {
        // started[k]: the latest first-step time of a chain through step k (Int64.min: none yet).
        var started = [Int64](repeating: .min, count: n)
        let limit = within ?? .max
        for (time, mask) in events {
            var k = n - 1
            while k >= 0 {
                if mask & (1 << UInt16(k)) != 0 {
                    if k == 0 {
                        started[0] = time
                    } else if started[k - 1] != .min {
                        if k == n - 1 {
                            if time &- started[k - 1] <= limit { return true }
                        } else {
                            started[k] = max(started[k], started[k - 1])
                        }
                    }
                }
                k -= 1
            }
        }
        return false
    }
}
