import TouchLogStorage

/// A format-2 segment snapshot: for the segment's rules whose window does not move with T (all time, `from`/`to`),
/// what a ``GroupedQueryState`` holds after the blocks before ``endOffset``: each profile's qualifying events and,
/// for rules that ask about conversions, its first qualifying time; and each profile's latest conversion (of any
/// time) when a rule asks about conversions.
///
/// A rule whose window ends at T and moves with it (`last`, `calendar`), without a `value` condition, is kept as each
/// profile's latest qualifying times (``recentTimes(_:)``): at any T at or after the watermark its window starts at
/// or after where it started at the watermark, so the events of the snapshot's blocks it counts are among the latest
/// ones at or after that start. Only those are kept: as many per profile as its count bounds can tell apart when that
/// is at most ``maxRecentTimes`` and it asks nothing about conversions, else all of them (the earliest inside the
/// window at T is its first qualifying time), unless there are more than ``maxKeptTimes``: then that snapshot does
/// not keep the rule. Only a snapshot at the end of the log keeps latest times (the one questions about now start
/// from), and only where they pay (``StoreReader/recentEntries(_:_:blocks:watermark:summaries:profiles:)``).
///
/// For a sequence whose window does not move, it keeps what can still decide it: the profiles whose events already
/// match (a match stays a match as events are added), and every candidate event of the others (a late event can
/// land before, between or after them, so none can be dropped).
///
/// It is usable at T when every event before ``endOffset`` is at or before T (``watermark`` ≤ T: then its counts
/// are exactly what a scan of those blocks would count at T) and at K when they were recorded by K. A query that
/// starts from it reads those rules' groups only in the blocks after it. Profiles are the store's dense ids.
struct GroupedSnapshot: Sendable {
    /// One kept rule's non-zero entries, ascending by profile id.
    struct Entries: Sendable {
        var ids: [UInt32] = []
        var counts: [UInt32] = []
        /// First qualifying times (only for rules with a conversion clause).
        var firsts: [Int64] = []
        /// For a rule kept as latest times (``recentTimes(_:)``): each profile's ``counts`` latest qualifying times,
        /// newest first, one profile after another (all of them since the window's start at the watermark, when the
        /// rule keeps every one).
        var recent: [Int64] = []
        /// For rules with a `value` condition: how many of each profile's qualifying events carry a value, their sum,
        /// least and greatest (millionths; Int64.max and Int64.min when none does).
        var valueCounts: [UInt32] = []
        var valueSums: [Int64] = []
        var valueLeast: [Int64] = []
        var valueGreatest: [Int64] = []
    }

    var endOffset: UInt64 = 0
    var anchor = BlockHash.zero
    /// The latest event time in the blocks before ``endOffset``.
    var watermark: Int64 = .min
    var recorded: Int64 = .min
    /// The profile ids the blocks before ``endOffset`` introduced: 0..<profiles.
    var profiles = 0
    /// Per leaf of the compiled definition (nil: a rule whose window moves with T).
    var rules: [Entries?] = []
    /// Latest conversion per profile (ids and times), when a rule asks about conversions.
    var conversions: (ids: [UInt32], times: [Int64])?
    /// Per sequence of the compiled definition (nil: one whose window moves with T).
    var sequences: [SequenceEntries?] = []

    /// One kept sequence: the profiles its chain already matches, and the candidate events of the others (those
    /// that can take one of its steps), sorted by (profile, time, offset).
    struct SequenceEntries: Sendable {
        var matched: [UInt32] = []
        var candidates: [GroupedQueryState.SequenceEvent] = []
    }

    /// Snapshot body layout 5 (format-2 stores; after the ``DurableFile`` header). Integers are varints, times
    /// zigzag varints; a column is (element count, stored length, LZ4 block of the little-endian elements) as in
    /// layout 2; an id list is a column of bytes holding the ids' varint deltas (the first from 0):
    /// 1. layout byte (5), definition JSON (length, bytes)
    /// 2. end offset, anchor (32 bytes), watermark, recorded time
    /// 3. profile count n, leaf count L, then per leaf a byte: 0 (window moves with T, not kept), 1 (kept), 2 (kept,
    ///    with first times), plus 4 when the rule has a `value` condition (5, 6); 8 (kept as latest times; such a
    ///    rule is 0 in a snapshot that does not keep it)
    /// 4. per kept leaf: its ids, their counts (UInt32 column; for a rule whose bounds cannot tell 255 from more, a
    ///    count may stop anywhere from 255 up: ``CountColumn``), for kind 2 (and 6) their first times (Int64 column),
    ///    and with 4 the value totals: counts (UInt32 column), sums, least and greatest (Int64 columns, millionths).
    ///    For kind 8 the counts are how many latest times each profile has kept (1 to ``recentTimes(_:)``), and its
    ///    times follow (Int64 column; per profile newest first, none before the rule's window at the watermark, in
    ///    all at most ``maxKeptTimes``)
    /// 5. a byte: 1 when conversions follow, then their ids and times (Int64 column)
    /// 6. sequence count S, then per sequence a byte: 0 (window moves with T) or 1 (kept); per kept sequence: the
    ///    matched profiles' ids; the ids of the profiles with candidates, how many each has (UInt32 column), and the
    ///    candidates' times (Int64 column), offsets (UInt64 column) and step masks (UInt8 column, bit k: step k)
    ///
    /// Layout 4 is layout 5 without kind 8 (its rules over the last N days are 0); layout 3 is layout 4 without part
    /// 6, read for definitions without a kept sequence.
    static let layoutVersion: UInt8 = 5

    /// The layouts read.
    static let layouts: ClosedRange<UInt8> = 3...5

    /// The most latest times kept per profile for a rule whose count bounds a few decide (``recentTimes(_:)``).
    static let maxRecentTimes = 8

    /// The most latest times a snapshot keeps for one rule, all profiles together (some 16 MB decoded).
    static let maxKeptTimes = 1 << 21

    /// How many latest qualifying times per profile decide `rule` at any T at or after a snapshot's watermark, when
    /// its window ends at T and its start never moves back as T grows (`last`, `calendar`) and it has no `value`
    /// condition: for one that asks only how many events it has, `atLeast` a needs the a-th latest, `atMost` m the
    /// (m+1)-th, when that is at most ``maxRecentTimes``; otherwise every one (`Int.max`: then the earliest inside
    /// the window at T is also its first qualifying time, which a `conversion` clause asks about). Nil for any other
    /// rule.
    static func recentTimes(_ rule: InteractionRule) -> Int? {
        guard rule.value == nil else { return nil }
        switch rule.timeframe {
        case .last, .calendar: break
        case .allTime, .between, .before: return nil
        }
        let needed = max(rule.atLeast, (rule.atMost ?? 0) + 1, 1)
        return rule.conversion == nil && needed <= maxRecentTimes ? needed : .max
    }

    /// Whether it keeps any rule or sequence.
    var keepsAny: Bool { rules.contains { $0 != nil } || sequences.contains { $0 != nil } }

    /// The earliest conversion a snapshot needs, from its definition's `leaves` compiled at its watermark: any, when
    /// a rule over a window that stays put asks about conversions; else the earliest start of the windows of the
    /// rules that do, at the watermark (at any later T their first qualifying times, which a conversion must not
    /// precede, are no earlier). `Int64.max` when no rule asks.
    static func conversionsFloor(_ leaves: [CompiledSegment.Leaf]) -> Int64 {
        var floor = Int64.max
        for leaf in leaves where leaf.rule.conversion != nil {
            floor = min(floor, isKept(leaf.rule) ? .min : leaf.window?.lowerBound ?? .max)
        }
        return floor
    }

    /// Drops the kept conversions before `floor` (``conversionsFloor(_:)``).
    mutating func keepConversions(from floor: Int64) {
        guard let kept = conversions, floor > .min else { return }
        var ids: [UInt32] = []
        var times: [Int64] = []
        for (id, time) in zip(kept.ids, kept.times) where time >= floor {
            ids.append(id)
            times.append(time)
        }
        conversions = (ids, times)
    }

    /// Per sequence of `segment`: 1 when it is kept (its window stays put as T moves), else 0.
    static func sequenceKinds(_ segment: CompiledSegment) -> [UInt8] {
        segment.sequences.map { $0.rule.timeframe.isFixed ? 1 : 0 }
    }

    /// Whether a leaf's window stays put as T moves (so a snapshot can keep its counts and value totals).
    static func isKept(_ rule: InteractionRule) -> Bool {
        rule.timeframe.isFixed
    }

    /// Per leaf of `segment`: 0 (its window moves with T), 1 (kept), 2 (kept, with first times), plus 4 with
    /// value totals; 8 (kept as latest times, or 0 in a snapshot that does not keep it) from layout 5 on.
    static func kinds(_ segment: CompiledSegment, layout: UInt8 = layoutVersion) -> [UInt8] {
        segment.leaves.map { leaf in
            guard isKept(leaf.rule) else { return layout >= 5 && recentTimes(leaf.rule) != nil ? 8 : 0 }
            return (leaf.rule.conversion == nil ? 1 : 2) | (leaf.rule.value == nil ? 0 : 4)
        }
    }

    func encode(definition: SegmentDefinition) -> [UInt8] {
        var out = ByteWriter()
        out.byte(Self.layoutVersion)
        let json = Array(definition.json.utf8)
        out.varint(json.count)
        out.raw(json)
        out.varint(endOffset)
        out.raw(anchor.bytes)
        out.zigzag(watermark)
        out.zigzag(recorded)
        out.varint(profiles)
        // (Which rules and sequences are kept depends on the definition only, not on T.)
        let segment = CompiledSegment(definition, at: QueryTime(asOf: .max))
        let kinds = Self.kinds(segment)
        precondition(kinds.count == rules.count, "a snapshot of another definition")
        out.varint(kinds.count)
        let stored = zip(kinds, rules).map { kind, rule in rule == nil ? 0 : kind }
        for kind in stored { out.byte(kind) }
        for (kind, rule) in zip(stored, rules) where kind != 0 {
            out.ids(rule!.ids)
            out.column(rule!.counts)
            if kind == 8 { out.column(rule!.recent) }
            if kind & 3 == 2 { out.column(rule!.firsts) }
            if kind & 4 != 0 {
                out.column(rule!.valueCounts)
                out.column(rule!.valueSums)
                out.column(rule!.valueLeast)
                out.column(rule!.valueGreatest)
            }
        }
        if let conversions {
            out.byte(1)
            out.ids(conversions.ids)
            out.column(conversions.times)
        } else {
            out.byte(0)
        }
        let sequenceKinds = Self.sequenceKinds(segment)
        precondition(sequenceKinds.count == sequences.count, "a snapshot of another definition")
        out.varint(sequenceKinds.count)
        for kind in sequenceKinds { out.byte(kind) }
        for case let entries? in sequences {
            out.ids(entries.matched)
            var ids: [UInt32] = []
            var counts: [UInt32] = []
            for event in entries.candidates {
                if ids.last == event.profile {
                    counts[counts.count - 1] += 1
                } else {
                    ids.append(event.profile)
                    counts.append(1)
                }
            }
            out.ids(ids)
            out.column(counts)
            out.column(entries.candidates.map(\.time))
            out.column(entries.candidates.map(\.offset))
            out.column(entries.candidates.map { UInt8(truncatingIfNeeded: $0.steps) })
        }
        return out.bytes
    }

    /// Decodes a checked body; `definition` nil: the one recorded in it (verify), else it must be that one.
    static func decode(_ body: [UInt8], definition: SegmentDefinition?) throws(DecodeError) -> GroupedSnapshot {
        try body.withDecodedBytes { raw throws(DecodeError) in
            var input = PayloadCursor(raw)
            let layout = try input.byte()
            guard layouts.contains(layout) else { throw input.fail("not a format-2 snapshot") }
            let jsonLength = try input.count(max: input.size, "definition length")
            let json = String(
                decoding: UnsafeBufferPointer(start: try input.take(jsonLength), count: jsonLength), as: UTF8.self)
            let recorded: SegmentDefinition
            do { recorded = try SegmentDefinition(json: json) } catch { throw input.fail("bad definition: \(error)") }
            if let definition, definition.json != json { throw input.fail("snapshot of another definition") }
            var s = GroupedSnapshot()
            s.endOffset = try input.varint()
            s.anchor = BlockHash(bytes: Array(UnsafeBufferPointer(start: try input.take(32), count: 32)))
            s.watermark = try input.zigzag()
            s.recorded = try input.zigzag()
            s.profiles = try input.count(max: Int(UInt32.max), "profile count")
            let segment = CompiledSegment(recorded, at: QueryTime(asOf: .max))
            let kinds = Self.kinds(segment, layout: layout)
            guard try input.varint() == UInt64(kinds.count) else {
                throw input.fail("rule count differs from the definition")
            }
            var stored: [UInt8] = []
            for kind in kinds {
                let byte = try input.byte()
                guard byte == kind || (kind == 8 && byte == 0) else {
                    throw input.fail("rule kinds differ from the definition")
                }
                stored.append(byte)
            }
            for (r, kind) in stored.enumerated() {
                guard kind != 0 else {
                    s.rules.append(nil)
                    continue
                }
                var entries = Entries()
                entries.ids = try input.ids(below: s.profiles, "kept rule's profiles")
                entries.counts = try input.column(count: entries.ids.count, "kept rule's counts")
                guard !entries.counts.contains(0) else { throw input.fail("a kept rule's count is 0") }
                if kind == 8 {
                    let keeps = recentTimes(segment.leaves[r].rule) ?? 0
                    let total = entries.counts.reduce(0) { $0 + Int($1) }
                    guard entries.counts.allSatisfy({ Int($0) <= keeps }), total <= maxKeptTimes else {
                        throw input.fail("more latest times than a rule keeps")
                    }
                    entries.recent = try input.column(count: total, "kept rule's latest times")
                    var k = 0
                    for c in entries.counts {
                        for i in 1..<Int(c) where entries.recent[k + i] > entries.recent[k + i - 1] {
                            throw input.fail("latest times not newest first")
                        }
                        k += Int(c)
                    }
                    guard entries.recent.allSatisfy({ $0 <= s.watermark }) else {
                        throw input.fail("a latest time after the watermark")
                    }
                }
                if kind & 3 == 2 {
                    entries.firsts = try input.column(count: entries.ids.count, "kept rule's first times")
                }
                if kind & 4 != 0 {
                    entries.valueCounts = try input.column(count: entries.ids.count, "kept rule's value counts")
                    entries.valueSums = try input.column(count: entries.ids.count, "kept rule's value sums")
                    entries.valueLeast = try input.column(count: entries.ids.count, "kept rule's least values")
                    entries.valueGreatest = try input.column(count: entries.ids.count, "kept rule's greatest values")
                }
                s.rules.append(entries)
            }
            if try input.byte() == 1 {
                let ids = try input.ids(below: s.profiles, "converted profiles")
                s.conversions = (ids, try input.column(count: ids.count, "latest conversions"))
            }
            let sequenceRules = segment.sequences.map(\.rule)
            let sequenceKinds = Self.sequenceKinds(segment)
            guard layout >= 4 else {
                // Layout 3 kept no sequence: it serves only definitions that keep none.
                guard !sequenceKinds.contains(1) else { throw input.fail("layout 3 keeps no sequences") }
                s.sequences = sequenceKinds.map { _ in nil }
                guard input.isAtEnd else { throw input.fail("bytes after the last column") }
                return s
            }
            guard try input.varint() == UInt64(sequenceKinds.count) else {
                throw input.fail("sequence count differs from the definition")
            }
            for kind in sequenceKinds {
                guard try input.byte() == kind else { throw input.fail("sequence kinds differ from the definition") }
            }
            for kind in sequenceKinds {
                guard kind == 1 else {
                    s.sequences.append(nil)
                    continue
                }
                var entries = SequenceEntries()
                entries.matched = try input.ids(below: s.profiles, "matched profiles")
                let ids = try input.ids(below: s.profiles, "profiles with candidates")
                let counts: [UInt32] = try input.column(count: ids.count, "candidates per profile")
                var total = 0
                for c in counts {
                    guard c > 0 else { throw input.fail("a profile with no candidates") }
                    total += Int(c)
                }
                let times: [Int64] = try input.column(count: total, "candidates' times")
                let offsets: [UInt64] = try input.column(count: total, "candidates' offsets")
                let steps: [UInt8] = try input.column(count: total, "candidates' steps")
                let every = (1 << sequenceRules[s.sequences.count].steps.count) - 1
                entries.candidates.reserveCapacity(total)
                var k = 0
                for (id, c) in zip(ids, counts) {
                    for _ in 0..<Int(c) {
                        guard steps[k] != 0 && Int(steps[k]) & ~every == 0 else {
                            throw input.fail("a candidate's steps are not the sequence's")
                        }
                        entries.candidates.append(
                            GroupedQueryState.SequenceEvent(
                                profile: id, steps: UInt16(steps[k]), time: times[k], offset: offsets[k]))
                        k += 1
                    }
                }
                s.sequences.append(entries)
            }
            guard input.isAtEnd else { throw input.fail("bytes after the last column") }
            return s
        }
    }

    /// Adds the snapshot's findings to `state` (a query's first worker's columns, all zero before) for `plan` (at a T
    /// at or after the watermark). A rule kept as latest times counts those inside its window at T.
    func load(into state: GroupedQueryState, _ plan: GroupedQueryPlan) {
        for (r, entries) in rules.enumerated() {
            guard let entries else { continue }
            state.counting[r] = true
            let counts = state.counts[r]
            if plan.rules[r].recentTimes != nil {
                guard let window = plan.rules[r].leaf.window else { continue }
                let firsts = state.firsts[r]
                var k = 0
                for (i, id) in entries.ids.enumerated() {
                    let kept = Int(entries.counts[i])
                    var inside: UInt32 = 0
                    var first = Int64.max
                    for t in entries.recent[k..<(k + kept)] where window.contains(t) {
                        inside += 1
                        first = t
                    }
                    k += kept
                    guard inside > 0 else { continue }
                    counts[Int(id)] = inside
                    firsts?[Int(id)] = GroupedQueryState.earliestKey(first)
                    if state.marking[r] { GroupedQueryState.mark(state.counted, Int(id)) }
                }
                continue
            }
            for (i, id) in entries.ids.enumerated() {
                counts[Int(id)] = entries.counts[i]
                if state.marking[r] { GroupedQueryState.mark(state.counted, Int(id)) }
            }
            if let firsts = state.firsts[r] {
                for (i, id) in entries.ids.enumerated() {
                    firsts[Int(id)] = GroupedQueryState.earliestKey(entries.firsts[i])
                }
            }
            if let values = state.values[r] {
                // (Columns the rule's aggregate never reads are kept in the file, neutral, and not loaded.)
                for (i, id) in entries.ids.enumerated() {
                    values.counts[Int(id)] = entries.valueCounts[i]
                    values.sums?[Int(id)] = entries.valueSums[i]
                    values.least?[Int(id)] = GroupedQueryState.earliestKey(entries.valueLeast[i])
                    values.greatest?[Int(id)] = GroupedQueryState.latestKey(entries.valueGreatest[i])
                }
            }
        }
        if let conversions, let last = state.lastConversion {
            state.converting = true
            for (i, id) in conversions.ids.enumerated() {
                last[Int(id)] = GroupedQueryState.latestKey(conversions.times[i])
                GroupedQueryState.mark(state.converted, Int(id))
            }
        }
        for (q, entries) in sequences.enumerated() {
            guard let entries else { continue }
            state.sequenceMatched[q] = entries.matched
            state.sequenceEvents[q] = entries.candidates
            let seen = state.sequenceSteps[q]
            for event in entries.candidates { seen[Int(event.profile)] |= UInt8(truncatingIfNeeded: event.steps) }
        }
    }

    /// The snapshot of the kept rules in `states` (the workers' columns after scanning every block before
    /// `endOffset` with nothing past T among them), for the first `profiles` ids.
    static func taking(_ states: [GroupedQueryState], _ plan: GroupedQueryPlan, profiles n: Int) -> GroupedSnapshot {
        var s = GroupedSnapshot()
        s.profiles = n
        for (r, rule) in plan.rules.enumerated() {
            // (Rules kept as latest times are read from the log by ``StoreReader/recentEntries(_:_:blocks:watermark:summaries:profiles:)``.)
            guard rule.kept else {
                s.rules.append(nil)
                continue
            }
            var entries = Entries()
            for p in 0..<n {
                var count: UInt32 = 0
                for state in states { count &+= state.counts[r][p] }
                guard count > 0 else { continue }
                entries.ids.append(UInt32(p))
                entries.counts.append(count)
                if rule.wantsFirst {
                    var key: UInt64 = 0
                    for state in states { key = max(key, state.firsts[r]![p]) }
                    entries.firsts.append(Int64(bitPattern: ~key ^ (1 << 63)))
                }
                if rule.wantsValues {
                    var totals = ValueTotals()
                    for state in states { totals.merge(state.values[r]!, profile: p) }
                    entries.valueCounts.append(UInt32(truncatingIfNeeded: totals.count))
                    entries.valueSums.append(totals.sum)
                    entries.valueLeast.append(totals.least)
                    entries.valueGreatest.append(totals.greatest)
                }
            }
            s.rules.append(entries)
        }
        if states[0].lastConversion != nil {
            var ids: [UInt32] = []
            var times: [Int64] = []
            for p in 0..<n {
                var key: UInt64 = 0
                for state in states { key = max(key, state.lastConversion![p]) }
                guard key != 0 else { continue }
                ids.append(UInt32(p))
                times.append(Int64(bitPattern: key ^ (1 << 63)))
            }
            s.conversions = (ids, times)
        }
        for (q, sequence) in plan.sequences.enumerated() {
            guard sequence.kept else {
                s.sequences.append(nil)
                continue
            }
            // (Every candidate in the states comes from the blocks before the snapshot's end: ids below n.)
            let verdicts = GroupedQueryState.sequenceVerdicts(states, plan, q, profiles: n)
            var entries = SequenceEntries()
            entries.matched = verdicts.indices.lazy.filter { verdicts[$0] }.map { UInt32($0) }
            for state in states {
                entries.candidates.append(
                    contentsOf: state.sequenceEvents[q].lazy.filter { !verdicts[Int($0.profile)] })
            }
            entries.candidates.sort { ($0.profile, $0.time, $0.offset) < ($1.profile, $1.time, $1.offset) }
            s.sequences.append(entries)
        }
        return s
    }
}

extension ByteWriter {
    /// Ascending ids as a column of their varint deltas.
    mutating func ids(_ ids: [UInt32]) {
        var deltas = ByteWriter()
        var previous: UInt32 = 0
        for id in ids {
            deltas.varint(UInt64(id &- previous))
            previous = id
        }
        column(deltas.bytes)
    }
}

extension PayloadCursor {
    /// Reads ids written by ``ByteWriter/ids(_:)``: strictly ascending (after the first) and below `limit`.
    mutating func ids(below limit: Int, _ what: @autoclosure () -> String) throws(DecodeError) -> [UInt32] {
        let deltas: [UInt8] = try column(count: nil, what())
        var ids: [UInt32] = []
        ids.reserveCapacity(deltas.count)
        var next: UInt64 = 0
        try deltas.withDecodedBytes { raw throws(DecodeError) in
            var cursor = PayloadCursor(raw)
            while !cursor.isAtEnd {
                let delta = try cursor.varint()
                guard ids.isEmpty || delta > 0 else { throw fail("\(what()): ids not ascending") }
                next += delta
                guard next < UInt64(limit) else { throw fail("\(what()): id \(next) out of range (\(limit) profiles)") }
                ids.append(UInt32(next))
            }
        }
        return ids
    }
}

extension StoreReader {
    /// The newest format-2 snapshot of `definition` usable at `time` within the first `end` blocks (watermark ≤ T,
    /// recorded ≤ K, ending at a block boundary whose hash is its anchor, with that block's profile count), and how
    /// many blocks lie before it. Damaged or foreign ones are skipped and counted in the report.
    func newestUsableGroupedSnapshot(
        _ definition: SegmentDefinition, at time: QueryTime, blocks end: Int, summaries: BlockSummaries,
        report: inout QueryReport
    ) -> (snapshot: GroupedSnapshot, blocks: Int)? {
        guard usesSnapshots else { return nil }
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        for info in store.candidates(of: definition, at: time, after: 0, through: log.blocks[end - 1].header.endOffset)
        {
            let cached = snapshotCache.snapshot(at: info.path)
            guard
                let snapshot = cached
                    ?? (try? DurableFile.read(directory + "/" + info.path, kind: "snapshot")).flatMap({ body in
                        try? store.loadGrouped(info, body: body, definition: definition)
                    }),
                let index = anchoredBlock(endingAt: snapshot.endOffset, hash: snapshot.anchor),
                snapshot.profiles == Int(summaries[index].firstNewProfile) + summaries[index].newProfiles
            else {
                report.snapshotsIgnored += 1
                continue
            }
            if cached == nil { snapshotCache.keep(snapshot, at: info.path) }
            return (snapshot, index + 1)
        }
        return nil
    }

    /// Saves `snapshot` and thins the segment's snapshots; false when it could not be written (it is only an optimisation).
    func saveGroupedSnapshot(_ snapshot: GroupedSnapshot, definition: SegmentDefinition) -> Bool {
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        let name = SnapshotStore.fileName(
            endOffset: snapshot.endOffset, watermark: snapshot.watermark, recorded: snapshot.recorded)
        guard store.save(snapshot.encode(definition: definition), definition: definition, name: name) == nil else {
            return false
        }
        store.thin(definition, keep: Self.maxSnapshotsPerSegment)
        return true
    }

    /// For each rule of `plan` kept as latest times (``GroupedSnapshot/recentTimes(_:)``), its entries in a snapshot
    /// of the first `end` blocks with `watermark` (`leaves`: the definition's, compiled at the watermark): each
    /// profile's latest qualifying times at or after the start of
    /// the rule's window at the watermark, at most as many as the rule keeps. Read from those blocks' groups that the
    /// rule takes and that reach that start: the query's own scan counted its window at T, not these.
    ///
    /// A rule is left out (the snapshot does not keep it, and queries read it from the log) when it would keep more
    /// than ``GroupedSnapshot/maxKeptTimes``, or more than an eighth (``latestTimesShare``) of the events of the
    /// blocks its window meets at the watermark: a query reads those blocks' times and profiles sections whole, and decoding the snapshot's
    /// times would cost about as much as that.
    func recentEntries(
        _ leaves: [CompiledSegment.Leaf], _ plan: GroupedQueryPlan, blocks end: Int, watermark: Int64,
        summaries: BlockSummaries, profiles n: Int
    ) throws(TouchLogError) -> [(rule: Int, entries: GroupedSnapshot.Entries)] {
        let wanted = plan.rules.indices.filter { plan.rules[$0].recentTimes != nil }
        guard !wanted.isEmpty else { return [] }
        // Per wanted rule: where its window starts at the watermark (nil: empty there, so nothing counts later).
        let starts = wanted.map { leaves[$0].window?.lowerBound }
        var found = wanted.map { _ in [(profile: UInt32, time: Int64)]() }
        // Per wanted rule: the events of the blocks its window at the watermark meets.
        var windowEvents = wanted.map { _ in 0 }
        let earliest = starts.compactMap { $0 }.min() ?? .max
        let reader = log.bodyReader()
        var times: [UInt8] = []
        var profiles: [UInt8] = []
        var stored: [UInt8] = []
        for b in 0..<end where log.blocks[b].header.maxTime >= earliest {
            let summary = summaries[b]
            for k in wanted.indices where starts[k].map({ log.blocks[b].header.maxTime >= $0 }) ?? false {
                windowEvents[k] += summary.count
            }
            var sectionsRead = false
            for group in summary.groups {
                for (k, r) in wanted.enumerated() {
                    guard let start = starts[k], group.maxTime >= start, plan.takes(r, group),
                        found[k].count <= GroupedSnapshot.maxKeptTimes
                    else { continue }
                    if !sectionsRead {
                        try Self.readTimesAndProfiles(
                            of: log.blocks[b], summary, reader: reader, cache: sectionCache, stored: &stored,
                            times: &times, profiles: &profiles)
                        sectionsRead = true
                    }
                    try Self.scan(group, summary, times: times, profiles: profiles, upTo: watermark, limit: n) {
                        t, p in
                        if t >= start { found[k].append((UInt32(truncatingIfNeeded: p), t)) }
                    }
                }
            }
        }
        return wanted.indices.compactMap { k in
            let keep = plan.rules[wanted[k]].recentTimes!
            guard found[k].count <= GroupedSnapshot.maxKeptTimes else { return nil }
            var events = found[k]
            events.sort { ($0.profile, $1.time) < ($1.profile, $0.time) }
            var entries = GroupedSnapshot.Entries()
            for event in events {
                if entries.ids.last == event.profile {
                    guard entries.counts[entries.counts.count - 1] < keep else { continue }
                    entries.counts[entries.counts.count - 1] += 1
                } else {
                    entries.ids.append(event.profile)
                    entries.counts.append(1)
                }
                entries.recent.append(event.time)
            }
            // (No more than were found: at most ``GroupedSnapshot/maxKeptTimes``.)
            return entries.recent.count * latestTimesShare <= windowEvents[k] ? (wanted[k], entries) : nil
        }
    }

    /// Whether snapshots of `definition` can speed its queries: in format 2, rules and sequences whose window stays
    /// put as T moves (all time, `from`/`to`), and rules over the last N days or calendar units without a `value`
    /// condition (``GroupedSnapshot/recentTimes(_:)``).
    package func snapshotsHelp(_ definition: SegmentDefinition) -> Bool {
        let segment = CompiledSegment((try? prepared(definition)) ?? definition, at: QueryTime(asOf: .max))
        guard formatVersion >= 2 else { return !segment.usesSecondGrammar }
        return segment.leaves.contains {
            GroupedSnapshot.isKept($0.rule) || GroupedSnapshot.recentTimes($0.rule) != nil
        }
            || segment.sequences.contains { $0.rule.timeframe.isFixed }
    }

    /// Format 2's `createSnapshot(of:)`: a snapshot at the end of the log, from the newest one before it, and on the way
    /// one every ``snapshotInterval`` events (so that a query at any past T finds one near it; they are thinned to
    /// ``maxSnapshotsPerSegment`` spread along the log). Returns the one at the end.
    func createGroupedSnapshot(of definition: SegmentDefinition) throws(TouchLogError) -> SnapshotInfo? {
        // (What an earlier creation found must not be taken for this one's: a caller tells "nothing worth keeping"
        // from "already there" by it.)
        lastQuery = QueryReport()
        let end = log.blocks.count
        guard end > 0 else { return nil }
        let key = SnapshotStore.key(definition)
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        guard !store.all().contains(where: { $0.key == key && $0.endOffset == endOffset }) else { return nil }
        try loadTouchpoints(through: end - 1)
        let plan = GroupedQueryPlan(
            CompiledSegment(definition, at: QueryTime(asOf: .max)), touchpoints: dictionary.touchpoints)
        guard plan.canSnapshot else { return nil }
        let summaries = try summaries(through: end)
        var report = QueryReport()
        _ = try groupedScan(
            definition, plan, blocks: end, summaries: summaries, saveEvery: snapshotInterval ?? .max, along: true,
            report: &report)
        lastQuery = report
        if report.snapshotsWritten == 0 && report.snapshotsNotWorthKeeping > 0 { return nil }
        guard report.snapshotsWritten >= 1 else {
            throw TouchLogError(
                code: .io, message: "cannot write the snapshot of \(definition.name) under \(directory)/snapshots")
        }
        return store.all().first { $0.key == key && $0.endOffset == endOffset }
    }
}
