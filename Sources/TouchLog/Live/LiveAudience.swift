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
    /// The store's ``ChangeSignal/generation`` read before the last read of the log (a live query's own): while it
    /// has not moved, no commit has been made since, and a step needs no reader.
    var generation: UInt64 = .max

    private var builder = ProfileEventBuilder()
    private var names: [String] = []
    /// The profile of each name (format-1 blocks, which name profiles by string).
    private var ids: [String: Int] = [:]
    /// The profile of each store-wide id (format 2 and later; -1: not met yet; -2: erased).
    private var byStoreID: [Int32] = []
    private var events: [[ProfileEvent]] = []
    private var firstTime: [Int64] = []
    private var isMember: [Bool] = []
    /// When each profile must next be evaluated (``Int64/max``: never unless it gets events).
    private var due: [Int64] = []
    /// The number of the last step that checked each profile: a profile is checked once per step.
    private var checkedIn: [UInt64] = []
    private var steps: UInt64 = 0
    private var queue = Heap<Due>()
    /// Per touchpoint id of the builder's table (0: none), its class: touchpoints that every rule and sequence step
    /// accepts alike share one, and kept events carry their class, so that what a step compiles is the size of the
    /// classes, not of the store's touchpoints (a store can have one per campaign, request or message).
    private var classOf: [UInt32] = []
    /// Per class, whether each interaction rule, then each sequence step, accepts its touchpoints.
    private var classAccepts: [[Bool]] = []
    private var classByAccepts: [[Bool]: UInt32] = [:]
    /// Per class, which event types (bit per ``EventType`` raw value) a rule can count.
    private var classTypes: [UInt8] = []
    /// Which classes each rule and step accepts (indexed by class): rebuilt when a class is added.
    private var matchers: RuleMatchers
    /// The time of the step being taken: events that no rule can count from then on are not kept.
    private var horizonTime: Int64 = .min
    /// ``horizon(_:_:)``'s per class and type (class × 8 + type), as of `horizonsAt`.
    private var horizons: [Int64] = []
    private var horizonsAt: Int64 = .min
    /// ``compiled(at:)``'s last.
    private var lastCompiled: (time: Int64, segment: CompiledSegment)?
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

    /// How many members there are.
    private(set) var memberCount = 0
    /// How many times a profile has been re-checked, over all steps (for tests).
    private(set) var checks = 0
    /// How many next-change times wait in the queue, some of them no longer a profile's own (for tests).
    var queuedChanges: Int { queue.count }
    /// ``members`` as last listed (nil: never listed).
    private var listed: [String]?
    /// The profiles whose membership changed since ``listed`` was made, with their membership then; merged into it at
    /// the next listing (a repeated query's). A watch lists only at its first step: past a quarter of the list, the
    /// list is forgotten, so steps that are never listed cost no more than their changes.
    private var changedSinceListing: [Int: Bool] = [:]

    /// The members' names, sorted ascending by bytes.
    var members: [String] {
        if let old = listed {
            var entering: [String] = []
            var leaving: [String] = []
            for (p, was) in changedSinceListing where was != isMember[p] {
                if isMember[p] { entering.append(names[p]) } else { leaving.append(names[p]) }
            }
            changedSinceListing = [:]
            guard !(entering.isEmpty && leaving.isEmpty) else { return old }
            let merged = Self.merge(old, entering: Self.sortedByBytes(entering), leaving: Self.sortedByBytes(leaving))
            listed = merged
            return merged
        }
        let sorted = Self.sortedByBytes(names.indices.filter { isMember[$0] }.map { names[$0] })
        listed = sorted
        changedSinceListing = [:]
        return sorted
    }

    private static func byBytes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// `names` sorted ascending by bytes: by their first 8 bytes as a big-endian integer (a radix sort), then only
    /// the runs that share those by all their bytes.
    static func sortedByBytes(_ names: [String]) -> [String] {
        guard names.count > 1 else { return names }
        var keys = names.map { name -> UInt64 in
            var name = name
            return name.withUTF8 { StringTable.sortKey(UnsafeRawBufferPointer($0)) }
        }
        var order = Array(names.indices)
        sortByPrefixKeys(&keys, values: &order) { byBytes(names[$0], names[$1]) }
        return order.map { names[$0] }
    }

    /// An audience of `definition` (references resolved) that has read nothing yet, for a log holding `erasures`.
    init(_ definition: SegmentDefinition, erasures: Int) {
        self.definition = definition
        self.erasures = erasures
        expanded = definition.expanded
        shape = CompiledSegment(expanded, at: QueryTime(asOf: 0))
        conversionsMatter = shape.leaves.contains { $0.rule.conversion != nil }
        matchers = RuleMatchers(
            leaves: shape.leaves.map { _ in [] }, steps: shape.sequences.map { $0.steps.map { _ in [] } })
        // Without countable events every window is empty at every T, so the answer does not depend on T.
        let empty = ProfileEvaluation(segment: shape, matchers: RuleMatchers(shape, touchpoints: StringTable()))
        emptyProfileIsMember = empty.evaluate(empty.atoms([]))
        _ = touchpointClass(of: 0)  // class 0: events without a touchpoint
    }

    /// Takes in the events `reader` holds past ``endOffset`` (erased profiles left out), moves the clock to `asOf`
    /// (never back), and returns who entered and who left, each sorted ascending by bytes.
    /// `blocks`: decoded blocks to take rather than decode again (shared by the store's watches).
    func advance(_ reader: StoreReader, to asOf: Int64, blocks: DecodedBlockCache? = nil) throws -> (
        entered: [String], exited: [String]
    ) {
        var touched: [Int] = []
        let time = max(self.asOf, asOf)
        horizonTime = time
        if reader.endOffset > endOffset {
            // (Without a cache to share, one that keeps nothing: blocks are decoded the same way, by store-wide ids.)
            let source = blocks ?? DecodedBlockCache(capacity: 0)
            try source.forEachBlock(of: reader, from: endOffset, erasures: erasures) { block in
                take(block, names: reader.dictionary.profiles, touched: &touched)
            }
            endOffset = reader.endOffset
        }
        return step(to: time, touched: touched)
    }

    /// Moves the clock to `asOf` (never back) without reading: what ``advance(_:to:blocks:)`` does when the log has
    /// not grown since the last step.
    func advance(to asOf: Int64) -> (entered: [String], exited: [String]) {
        let time = max(self.asOf, asOf)
        horizonTime = time
        return step(to: time, touched: [])
    }

    /// Re-checks the profiles `touched` and those due at or before `time`, and moves the clock there.
    private func step(to time: Int64, touched: [Int]) -> (entered: [String], exited: [String]) {
        self.asOf = time
        var check = touched
        while let next = queue.min, next.time <= time {
            queue.removeMin()
            if due[next.profile] == next.time { check.append(next.profile) }
        }
        guard !check.isEmpty else { return ([], []) }
        let segment = compiled(at: time)
        let evaluation = ProfileEvaluation(segment: segment, matchers: matchers)
        var entered: [String] = []
        var exited: [String] = []
        steps += 1
        for p in check where checkedIn[p] != steps {
            checkedIn[p] = steps
            checks += 1
            let now = firstTime[p] <= time && evaluation.evaluate(evaluation.atoms(events[p]))
            if now != isMember[p] {
                if let old = listed, changedSinceListing[p] == nil {
                    changedSinceListing[p] = isMember[p]
                    // Past a quarter of the list, sorting anew is as cheap as merging: forget the list.
                    if changedSinceListing.count > old.count / 4 + 16 {
                        listed = nil
                        changedSinceListing = [:]
                    }
                }
                isMember[p] = now
                memberCount += now ? 1 : -1
                if now { entered.append(names[p]) } else { exited.append(names[p]) }
            }
            compact(p, at: time)
            let next = nextChange(of: p, after: time, matchers: evaluation.matchers)
            // (Unchanged: its entry is still queued. An entry whose time is no longer the profile's is passed over.)
            if next != due[p] {
                due[p] = next
                if next != .max { queue.insert(Due(time: next, profile: p)) }
            }
        }
        return (Self.sortedByBytes(entered), Self.sortedByBytes(exited))
    }

    /// `list` without `leaving` and with `entering`, all three sorted by bytes (`leaving` a part of `list`, `entering`
    /// none of it), in one pass.
    static func merge(_ list: [String], entering: [String], leaving: [String]) -> [String] {
        var merged: [String] = []
        merged.reserveCapacity(list.count + entering.count - leaving.count)
        var (e, l) = (0, 0)
        for name in list {
            if l < leaving.count && leaving[l] == name {
                l += 1
                continue
            }
            while e < entering.count && byBytes(entering[e], name) {
                merged.append(entering[e])
                e += 1
            }
            merged.append(name)
        }
        merged.append(contentsOf: entering[e...])
        return merged
    }

    /// Adds a block's events from ``endOffset`` on: each event is kept when a rule can count it, and its profile
    /// becomes known (or known earlier); events no rule can count are passed over unless ``emptyProfileIsMember``
    /// (then only when a profile was first seen matters of them). Strings are looked up once per block, through its
    /// own dictionaries; a block decoded without profile strings (``DecodedBlock/storeProfileIDs``) names its profiles
    /// by store-wide id, and only a profile met for the first time is looked up, in `names` (the store dictionary's).
    private func take(_ block: DecodedBlock, names storeNames: StringTable, touched: inout [Int]) {
        let batch = block.events
        // Each of the block's touchpoints (0: none) once: its class and which types count.
        var touchpointIDs = [UInt32](repeating: 0, count: batch.touchpoints.count + 1)
        var masks = [UInt8](repeating: 0, count: batch.touchpoints.count + 1)
        for local in touchpointIDs.indices {
            let id = local == 0 ? 0 : builder.touchpoint(batch.touchpoints[local - 1])
            let touchpointClass = touchpointClass(of: Int(id))
            touchpointIDs[local] = touchpointClass
            masks[local] = classTypes[Int(touchpointClass)]
        }
        // A block no rule can count an event of changes nothing, unless profiles without such events can be members.
        let everyEvent = emptyProfileIsMember
        if !everyEvent && !masks.contains(where: { $0 != 0 }) { return }
        let erased = -2
        let conversion = conversionsMatter ? EventType.conversion.rawValue : UInt8.max
        var profileIDs = [Int](repeating: -1, count: batch.profiles.count)
        // (Every store-wide id a block names is in `storeNames`, loaded through the reader's last block.)
        if block.storeProfileIDs != nil && byStoreID.count < storeNames.count {
            byStoreID.append(contentsOf: repeatElement(-1, count: storeNames.count - byStoreID.count))
        }
        let first = endOffset > block.firstOffset ? Int(endOffset - block.firstOffset) : 0
        for i in first..<batch.count {
            let localTouchpoint = Int(batch.touchpointIDs[i])
            let type = batch.types[i]
            let relevant = masks[localTouchpoint] & (1 << type) != 0
            if !relevant && !everyEvent { continue }
            var p: Int
            if let storeIDs = block.storeProfileIDs {
                let id = Int(storeIDs[i])
                p = Int(byStoreID[id])
                if p == -1 {
                    // (A store's blocks are all of one format: a profile named by id is never named otherwise.)
                    let bytes = storeNames[id]  // (empty: erased)
                    p = bytes.isEmpty ? erased : newProfile(String(decoding: bytes, as: UTF8.self))
                    byStoreID[id] = Int32(p)
                }
            } else {
                let local = Int(batch.profileIDs[i])
                p = profileIDs[local]
                if p == -1 {
                    let bytes = batch.profiles[local]  // (empty: erased)
                    p = bytes.isEmpty ? erased : profile(named: String(decoding: bytes, as: UTF8.self))
                    profileIDs[local] = p
                }
            }
            if p == erased { continue }
            let time = batch.times[i]
            firstTime[p] = min(firstTime[p], time)
            // (An event no rule can count at T or later is passed over; conversions wait for ``compact(_:at:)``.)
            if relevant
                && (time > horizonTime || time >= horizon(touchpointIDs[localTouchpoint], type) || type == conversion)
            {
                events[p].append(
                    ProfileEvent(
                        time: time, offset: block.firstOffset + UInt64(i), type: type,
                        touchpoint: touchpointIDs[localTouchpoint], value: batch.values[i]))
            } else if !everyEvent {
                // Passed over, and only a profile's events decide (an empty one is no member): its verdict, and when
                // it can next change, stay as they were (being known earlier matters only with a kept event at or
                // before T, which made it known by then).
                continue
            }
            touched.append(p)
        }
    }

    /// Drops the events of profile `p` that can no longer change its membership at `time` or later: those at or
    /// before `time` that no rule can count from `time` on (a window's start only moves forward with T), except its
    /// latest conversion at or before `time` (what conversion conditions compare with).
    private func compact(_ p: Int, at time: Int64) {
        func gone(_ e: ProfileEvent) -> Bool { e.time <= time && e.time < horizon(e.touchpoint, e.type) }
        guard events[p].contains(where: gone) else { return }
        var latestConversion = Int64.min
        if conversionsMatter {
            for e in events[p] where e.time <= time && e.type == EventType.conversion.rawValue {
                latestConversion = max(latestConversion, e.time)
            }
        }
        events[p].removeAll { gone($0) && !($0.type == EventType.conversion.rawValue && $0.time == latestConversion) }
    }

    /// The earliest event time a rule can count of events of touchpoint class `touchpointClass` and `type`, as of
    /// ``horizonTime`` or any later time (``Int64/max``: none can).
    private func horizon(_ touchpointClass: UInt32, _ type: UInt8) -> Int64 {
        let index = Int(touchpointClass) * 8 + Int(type)
        if horizonsAt != horizonTime || index >= horizons.count {
            let segment = compiled(at: horizonTime)
            horizons = [Int64](repeating: .max, count: classAccepts.count * 8)
            func lower(_ window: ClosedRange<Int64>?, _ interaction: InteractionRule.Interaction, _ k: Int) {
                // (No window at T: a fixed range that starts later; any time may count then.)
                let low = window?.lowerBound ?? .min
                for (c, accepts) in classAccepts.enumerated() where accepts[k] {
                    for type in EventType.allCases where interaction.matches(type.rawValue) {
                        horizons[c * 8 + Int(type.rawValue)] = min(horizons[c * 8 + Int(type.rawValue)], low)
                    }
                }
            }
            var k = 0
            for leaf in segment.leaves {
                lower(leaf.window, leaf.rule.interaction, k)
                k += 1
            }
            for sequence in segment.sequences {
                for step in sequence.steps {
                    lower(sequence.window, step.rule.interaction, k)
                    k += 1
                }
            }
            horizonsAt = horizonTime
        }
        return horizons[index]
    }

    /// The definition compiled at `time` (kept for the step at that time: its evaluation and its horizons).
    private func compiled(at time: Int64) -> CompiledSegment {
        if let last = lastCompiled, last.time == time { return last.segment }
        let segment = CompiledSegment(expanded, at: QueryTime(asOf: time))
        lastCompiled = (time, segment)
        return segment
    }

    /// The number of the profile `name`, added when it is new.
    private func profile(named name: String) -> Int {
        if let known = ids[name] { return known }
        let p = newProfile(name)
        ids[name] = p
        return p
    }

    /// Adds a profile not seen before.
    private func newProfile(_ name: String) -> Int {
        let p = names.count
        names.append(name)
        events.append([])
        firstTime.append(.max)
        isMember.append(false)
        due.append(.max)
        checkedIn.append(0)
        return p
    }

    /// The class of touchpoint `id` of the builder's table (0: none), added when no class accepts alike.
    private func touchpointClass(of id: Int) -> UInt32 {
        while classOf.count <= id {
            let bytes: ArraySlice<UInt8>? = classOf.isEmpty ? nil : builder.touchpoints[classOf.count - 1]
            func accepts(_ rule: InteractionRule) -> Bool {
                guard let matcher = rule.touchpoint else { return true }
                return bytes.map { matcher.matches($0) } ?? false
            }
            let accepted =
                shape.leaves.map { accepts($0.rule) } + shape.sequences.flatMap { $0.steps.map { accepts($0.rule) } }
            if let known = classByAccepts[accepted] {
                classOf.append(known)
                continue
            }
            let added = UInt32(classAccepts.count)
            classByAccepts[accepted] = added
            classAccepts.append(accepted)
            let rules = shape.leaves.map(\.rule) + shape.sequences.flatMap { $0.steps.map(\.rule) }
            var types: UInt8 = conversionsMatter ? 1 << EventType.conversion.rawValue : 0
            for (rule, accepts) in zip(rules, accepted) where accepts { types |= typeMask(rule.interaction) }
            classTypes.append(types)
            classOf.append(added)
            // Which classes each rule and step accepts.
            var leaves: [[Bool]] = []
            var steps: [[[Bool]]] = []
            var k = 0
            for _ in shape.leaves {
                leaves.append(classAccepts.map { $0[k] })
                k += 1
            }
            for sequence in shape.sequences {
                var accepting: [[Bool]] = []
                for _ in sequence.steps {
                    accepting.append(classAccepts.map { $0[k] })
                    k += 1
                }
                steps.append(accepting)
            }
            matchers = RuleMatchers(leaves: leaves, steps: steps)
        }
        return classOf[id]
    }

    private func typeMask(_ interaction: InteractionRule.Interaction) -> UInt8 {
        EventType.allCases.reduce(0) { $0 | (interaction.matches($1.rawValue) ? 1 << $1.rawValue : 0) }
    }

    /// The earliest time after `time` at which profile `p`'s membership can change without new events: when it
    /// becomes known, when one of its events reaches T, or enters or leaves the window of a rule that can count it
    /// (`matchers`: which touchpoint classes each rule and step accepts).
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
