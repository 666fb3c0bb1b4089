import Foundation
import Testing
import TouchLogStorage

@testable import TouchLog

/// The engine against SQL: generated events with late arrivals and several commits (so known-at matters),
/// hundreds of random rule trees drawn from the whole grammar, random as-of and known-at times.
@Suite struct SegmentDifferentialTests {
    /// 2022-09-19T00:00:00Z: the 60 days include the ends of summer time in Europe (30 October) and the US (6 November).
    static let start: Int64 = 1_663_545_600_000
    static let span: Int64 = 60 * 86_400_000
    static let touchpoints = [
        "summer-2022-collection", "summer-2022-sale", "summer-2023", "discount-notification", "discount-iphone",
        "iphone-13", "iphone-interest", "store-location", "store", "é-vente", "日本-banner",
    ]

    struct Dataset {
        var events: [(event: Event, recorded: Int64)] = []
        var commitTimes: [Int64] = []
    }

    /// Events appended in 8 commits, each recorded an hour after the last; event times are not in log order.
    static func dataset(seed: UInt64, store directory: String, formatVersion: UInt16 = 1) async throws -> Dataset {
        var random = TestRandom(seed: seed)
        let profiles = (0..<50).map { "p-\($0)" } + ["é-1", "Z-2", "p", "p-1-x"]
        let clock = ManualClock()
        let store = try TouchLogStore(
            directory: directory, options: LogOptions(clock: { clock.read() }, formatVersion: formatVersion),
            blockEvents: 64)
        var data = Dataset()
        for commit in 0..<8 {
            let recorded = start + span + Int64(commit) * 3_600_000
            clock.set(recorded)
            data.commitTimes.append(recorded)
            var events: [Event] = []
            for _ in 0..<(60 + random.below(80)) {
                let roll = random.below(100)
                let type: EventType = roll < 50 ? .view : roll < 85 ? .click : .conversion
                let touchpoint: String? =
                    type == .conversion && random.chance(0.5) ? nil : touchpoints[random.below(touchpoints.count)]
                // Mostly clustered by commit, with late arrivals anywhere in the span.
                let base = start + span * Int64(commit) / 8
                // Late arrivals: an event time anywhere before this commit's period.
                var time =
                    random.chance(0.15)
                    ? start + Int64(random.below(Int(max(1, base - start + 1))))
                    : base + Int64(random.below(Int(span / 6)))
                // Most times on a 6-hour grid, so that ties (a conversion at the same instant as a click, an event
                // exactly at T − 30d or at a from/to bound) happen often and the inclusive bounds are exercised.
                if random.chance(0.6) { time -= (time - start) % 21_600_000 }
                // Conversions carry a value (in cents) most of the time, views and clicks now and then.
                let valued = random.chance(type == .conversion ? 0.8 : 0.2)
                events.append(
                    Event(
                        time: time, profile: profiles[random.below(profiles.count)], type: type, touchpoint: touchpoint,
                        value: valued ? Double(random.below(10_000)) / 100 : nil))
            }
            try await store.append(events)
            data.events += events.map { ($0, recorded) }
        }
        return data
    }

    static func randomOperand(_ random: inout TestRandom) -> String {
        let touchpoint = Array(touchpoints[random.below(touchpoints.count)])
        let length = 1 + random.below(touchpoint.count)
        let from = random.below(touchpoint.count - length + 1)
        return String(touchpoint[from..<(from + length)])
    }

    static func randomTime(_ random: inout TestRandom) -> Int64 {
        let time = start - 2 * 86_400_000 + Int64(random.below(Int(span + 4 * 86_400_000)))
        return random.chance(0.5) ? time - (time - start) % 21_600_000 : time
    }

    static func randomTouchpoint(_ random: inout TestRandom) -> InteractionRule.TouchpointMatch {
        var match: InteractionRule.TouchpointMatch
        switch random.below(5) {
        case 0: match = .exactly(Array(touchpoints[random.below(touchpoints.count)].utf8))
        case 1: match = .contains(Array(randomOperand(&random).utf8))
        case 2:
            match = .startsWith(Array(touchpoints[random.below(touchpoints.count)].utf8.prefix(1 + random.below(10))))
        case 3: match = .endsWith(Array(touchpoints[random.below(touchpoints.count)].utf8.suffix(1 + random.below(10))))
        default:
            match = .oneOf(
                (0..<(1 + random.below(3))).map { _ in Array(touchpoints[random.below(touchpoints.count)].utf8) })
        }
        // Byte-level prefixes and suffixes can cut a UTF-8 sequence; definitions are text, so keep only valid ones.
        if case .startsWith(let s) = match, String(validating: s, as: UTF8.self) == nil {
            match = .exactly(Array("store".utf8))
        }
        if case .endsWith(let s) = match, String(validating: s, as: UTF8.self) == nil {
            match = .exactly(Array("store".utf8))
        }
        return match
    }

    /// Time zones the reference has the rules of (``SQLiteReference/offset(_:_:)``): two with summer time, one with a
    /// half-hour offset.
    static let zones = ["UTC", "Europe/Amsterdam", "America/New_York", "Asia/Kolkata"]

    static func randomTimeframe(_ random: inout TestRandom, second: Bool = true) -> InteractionRule.Timeframe {
        switch random.below(20) {
        case 11..<16 where !second: return .allTime
        case 0..<7: return .allTime
        case 7..<11:
            return .last(
                milliseconds: [
                    3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000, Int64(1 + random.below(Int(span))),
                ][random.below(5)])
        case 11..<13:
            return .before(
                milliseconds: [86_400_000, 7 * 86_400_000, 30 * 86_400_000, Int64(1 + random.below(Int(span)))][
                    random.below(4)])
        case 13..<16:
            let unit = CalendarWindow.Unit.allCases[random.below(3)]
            return .calendar(
                CalendarWindow(
                    unit: unit, count: 1 + random.below(unit == .day ? 10 : 3),
                    timeZone: zones[random.below(zones.count)]))
        default:
            var from: Int64? = random.chance(0.7) ? randomTime(&random) : nil
            var to: Int64? = random.chance(0.7) ? randomTime(&random) : nil
            if let f = from, let t = to, f > t { (from, to) = (t, f) }
            if from == nil && to == nil { from = randomTime(&random) }
            return .between(from: from, to: to)
        }
    }

    /// A random rule of the whole grammar (`second` false: of its first part only); `names`: segments it may refer to.
    static func randomRule(_ random: inout TestRandom, depth: Int, names: [String] = [], second: Bool = true)
        -> SegmentDefinition.Rule
    {
        let negate = random.chance(0.2)
        if depth < 3 && random.chance(0.25) {
            return .group(
                random.chance(0.5) ? .all : .any,
                (0..<(1 + random.below(3))).map { _ in
                    randomRule(&random, depth: depth + 1, names: names, second: second)
                },
                negate: negate)
        }
        if second && !names.isEmpty && random.chance(0.08) {
            return .segment(names[random.below(names.count)], negate: negate)
        }
        let interactions: [InteractionRule.Interaction] = [.view, .click, .any, .conversion]
        if second && random.chance(0.1) {
            let steps = (0..<(2 + random.below(3))).map { _ in
                let interaction = interactions[random.below(4)]
                return SequenceRule.Step(
                    interaction: interaction,
                    touchpoint: interaction != .conversion || random.chance(0.5) ? randomTouchpoint(&random) : nil)
            }
            let within: Int64? =
                random.chance(0.6)
                ? [3_600_000, 86_400_000, 7 * 86_400_000, Int64(random.below(Int(span)))][random.below(4)] : nil
            return .sequence(
                SequenceRule(
                    steps: steps, within: within, timeframe: random.chance(0.5) ? .allTime : randomTimeframe(&random)),
                negate: negate)
        }
        var rule = InteractionRule(interaction: interactions[random.below(4)])
        if rule.interaction != .conversion || random.chance(0.5) { rule.touchpoint = randomTouchpoint(&random) }
        rule.timeframe = randomTimeframe(&random, second: second)
        if second && random.chance(0.2) {
            let aggregate = InteractionRule.ValueCondition.Aggregate.allCases[random.below(4)]
            let bound = { (random: inout TestRandom) in Double(random.below(aggregate == .sum ? 20_000 : 10_000)) / 100
            }
            switch random.below(3) {
            case 0: rule.value = .init(aggregate, atLeast: bound(&random))
            case 1: rule.value = .init(aggregate, atMost: bound(&random))
            default:
                let (a, b) = (bound(&random), bound(&random))
                rule.value = .init(aggregate, atLeast: min(a, b), atMost: max(a, b))
            }
        }
        switch random.below(6) {
        case 0: rule.atLeast = 1 + random.below(3)
        case 1: rule.atMost = 1 + random.below(3)
        case 2:
            rule.atLeast = 1 + random.below(3)
            rule.atMost = rule.atLeast + random.below(3)
        default: break
        }
        if rule.interaction != .conversion {
            switch random.below(10) {
            case 0..<3: rule.conversion = .converted
            case 3..<6: rule.conversion = .notConverted
            default: break
            }
        }
        return .interaction(rule, negate: negate)
    }

    static func randomDefinition(_ random: inout TestRandom, index: Int, names: [String] = [], second: Bool = true)
        -> SegmentDefinition
    {
        SegmentDefinition(
            name: "random-\(index)", match: random.chance(0.5) ? .all : .any,
            rules: (0..<(1 + random.below(3))).map { _ in randomRule(&random, depth: 1, names: names, second: second) })
    }

    /// The random definitions a test has stored in its store's catalog (so that later ones can refer to them): their
    /// names, and those without references of their own (which later ones refer to, keeping chains short).
    struct Catalog {
        var definitions: [String: SegmentDefinition] = [:]
        var referable: [String] = []

        /// A random definition that may refer to earlier ones, stored in the catalog of the store at `directory`.
        mutating func next(_ random: inout TestRandom, index: Int, store directory: String, second: Bool = true) throws
            -> SegmentDefinition
        {
            let definition = SegmentDifferentialTests.randomDefinition(
                &random, index: index, names: referable, second: second)
            _ = try SegmentCatalog(layout: StoreLayout(root: directory)).put(definition)
            definitions[definition.name] = definition
            if definition.references.isEmpty { referable.append(definition.name) }
            return definition
        }
    }

    static func randomQueryTime(_ random: inout TestRandom, _ data: Dataset) -> QueryTime {
        var asOf = randomTime(&random)
        if random.chance(0.3) {
            // On or just before an event's time: the inclusive bounds must agree exactly.
            asOf = data.events[random.below(data.events.count)].event.time - Int64(random.below(2))
        }
        var knownAt: Int64?
        switch random.below(10) {
        case 0..<4: knownAt = nil
        case 4..<8: knownAt = data.commitTimes[random.below(data.commitTimes.count)] - Int64(random.below(2))
        default: knownAt = data.commitTimes[0] + Int64(random.below(8 * 3_600_000))
        }
        return QueryTime(asOf: asOf, knownAt: knownAt)
    }

    /// Compares the engine's answer with SQL's (and every sixth time, `explain`'s verdict for a random profile with the
    /// answer), counting the case; false when they differ.
    /// `erased`: profiles erased from the store (format 3), which no answer may list; their events stay, anonymous.
    static func check(
        _ engine: [String], _ definition: SegmentDefinition, _ time: QueryTime, _ reader: StoreReader,
        _ reference: SQLiteReference, _ data: Dataset, _ random: inout TestRandom, _ cases: inout Int,
        _ nonEmpty: inout Int, erased: Set<String> = [], segments: [String: SegmentDefinition] = [:]
    ) throws -> Bool {
        let sql = reference.members(definition, at: time, segments: segments).filter { !erased.contains($0) }
        #expect(engine == sql, "\(definition.json) as of \(time.asOf) known at \(String(describing: time.knownAt))")
        cases += 1
        if !sql.isEmpty { nonEmpty += 1 }
        if cases % 6 == 0 {
            let profile = data.events[random.below(data.events.count)].event.profile
            let explanation = try reader.explain(definition, profile: profile, at: time)
            #expect(
                explanation.isMember == engine.contains(profile),
                "explain disagrees for \(profile) in \(definition.json)")
        }
        return engine == sql
    }

    /// A history of `definition` over a random range and step (4–16 points, by a random K) against SQL's count at each
    /// of its times; false when they differ.
    static func checkHistory(
        _ definition: SegmentDefinition, _ reader: StoreReader, _ reference: SQLiteReference, _ data: Dataset,
        _ random: inout TestRandom, erased: Set<String> = [], segments: [String: SegmentDefinition]
    ) throws -> Bool {
        let from = randomTime(&random)
        let steps: [Int64] = [
            3_600_000, 21_600_000, 86_400_000, 3 * 86_400_000, Int64(1 + random.below(Int(span / 4))),
        ]
        let step = steps[random.below(steps.count)]
        let to: Int64 = from + step * Int64(3 + random.below(13)) + Int64(random.below(2))
        let knownAt = randomQueryTime(&random, data).knownAt
        let history = try reader.history(of: definition, from: from, to: to, step: step, knownAt: knownAt)
        let times: [Int64] = Array(stride(from: from, through: to, by: Int(step)))
        var expected: [Int] = []
        for t in times {
            let members = reference.members(definition, at: QueryTime(asOf: t, knownAt: knownAt), segments: segments)
            expected.append(members.filter { !erased.contains($0) }.count)
        }
        let counts = history.points.map { $0.count }
        #expect(
            counts == expected,
            "history of \(definition.json) from \(from) to \(to) by \(step) known at \(String(describing: knownAt))")
        #expect(history.points.map { $0.time } == times)
        return counts == expected
    }

    /// Seeds 1–3 replay the log for every query; seeds 4–6 let queries save snapshots every 100 events, so most
    /// answers start from a snapshot taken at some earlier query's position and watermark; seeds 7–8 keep
    /// projections in memory across queries (as a ``TouchLogStore`` does), 8 with snapshots too.
    @Test(arguments: [
        (UInt64(1), UInt64?.none, false), (2, nil, false), (3, nil, false), (4, 100, false), (5, 100, false),
        (6, 100, false),
        (7, nil, true), (8, 100, true),
    ])
    func everyAnswerEqualsThePlainSQLEvaluation(seed: UInt64, snapshotEvery: UInt64?, inMemory: Bool) async throws {
        let dir = TemporaryDirectory()
        let data = try await Self.dataset(seed: seed, store: dir.path + "/s")
        let reference = SQLiteReference(events: data.events)
        let reader = try StoreReader(directory: dir.path + "/s")
        reader.snapshotInterval = snapshotEvery
        if inMemory { reader.projectionCache = ProjectionCache(capacity: 2) }
        var random = TestRandom(seed: seed &* 1_000_003)
        var cases = 0
        var nonEmpty = 0
        var fromSnapshot = 0
        var fromMemory = 0
        // Queries of definitions the format-1 projection keeps (the rest are answered from each profile's events).
        var projected = 0
        var catalog = Catalog()
        for index in 0..<60 {
            // Every other definition of the first grammar only, which the format-1 projection (and its snapshots) keeps.
            let definition = try catalog.next(&random, index: index, store: dir.path + "/s", second: index % 2 == 1)
            #expect(try SegmentDefinition(json: definition.json) == definition, "JSON round trip of \(definition.json)")
            if reader.snapshotsHelp(definition) { projected += 30 }
            if try !Self.checkHistory(definition, reader, reference, data, &random, segments: catalog.definitions) {
                return
            }
            for _ in 0..<30 {
                var time = Self.randomQueryTime(&random, data)
                if snapshotEvery != nil, random.chance(0.3),
                    let snapshot = reader.snapshots().filter({
                        $0.key == SnapshotStore.key(try! reader.segments.resolve(definition))
                    }).last
                {
                    // Right at (or just after) a snapshot's watermark: the edge of what its pruned state may answer.
                    time.asOf = snapshot.watermark + [0, 1, 3_600_000, 86_400_000][random.below(4)]
                }
                let engine = try reader.members(of: definition, at: time)
                if reader.lastQuery.snapshotOffset > 0 { fromSnapshot += 1 }
                if reader.lastQuery.fromMemory { fromMemory += 1 }
                let agrees = try Self.check(
                    engine, definition, time, reader, reference, data, &random, &cases, &nonEmpty,
                    segments: catalog.definitions)
                if !agrees { return }  // one detailed failure per seed is enough
            }
        }
        #expect(cases == 1_800)
        #expect(nonEmpty > cases / 4, "random segments should often have members (\(nonEmpty) of \(cases))")
        if inMemory {
            // Random times go back and forth, so the projection kept (the furthest one) is often past T.
            #expect(
                fromMemory > projected / 10,
                "queries should often start from the projection in memory (\(fromMemory) of \(projected))")
        }
        #expect(
            projected >= cases / 2, "most random segments should be kept by the projection (\(projected) of \(cases))")
        if snapshotEvery != nil {
            #expect(
                fromSnapshot > projected / 5,
                "queries should often start from a snapshot (\(fromSnapshot) of \(projected))")
        } else {
            #expect(fromSnapshot == fromMemory)
        }
    }

    /// Formats 2 and 3 answer from their (touchpoint, type) groups: the same random cases. Seeds 11–12 read the log
    /// for every query; seeds 13–15 let queries save snapshots (of rules over all time or between fixed dates) every
    /// 1, 50 or 300 events, and now and then take one at the end of the log by hand (which also keeps rules over
    /// moving windows as latest times: all it can in seeds 13 and 15), so answers start from snapshots
    /// at every spacing, and often at T right at (or just after) a snapshot's watermark. In the format-3 stores,
    /// profiles are erased before the first query and again halfway (after snapshots were saved): no answer may
    /// list them, at any T and K.
    @Test(arguments: [(UInt64(11), UInt64?.none, UInt16(2)), (12, nil, 3), (13, 1, 3), (14, 50, 2), (15, 300, 3)])
    func formatTwoAndThreeAnswersEqualThePlainSQLEvaluation(seed: UInt64, snapshotEvery: UInt64?, format: UInt16)
        async throws
    {
        let dir = TemporaryDirectory()
        let data = try await Self.dataset(seed: seed, store: dir.path + "/s", formatVersion: format)
        let reference = SQLiteReference(events: data.events)
        let reader = try StoreReader(directory: dir.path + "/s")
        reader.snapshotInterval = snapshotEvery
        // Seeds 13 and 15 keep every rule over a moving window that snapshots can keep, however many its latest times.
        let share = seed % 2 == 1 ? 0 : reader.latestTimesShare
        reader.latestTimesShare = share
        // Sections kept between queries, few enough that they are dropped and read again all along.
        reader.sectionCache = SectionCache(sectionBytes: 64 << 10)
        #expect(reader.formatVersion == format)
        var erased = Set<String>()
        var erasing = TestRandom(seed: seed &* 77)
        func eraseSome() async throws {
            guard format == 3 else { return }
            let profiles = Array(Set(data.events.map(\.event.profile)).subtracting(erased)).sorted()
            var chosen: [String] = []
            while chosen.count < 4 {
                let profile = profiles[erasing.below(profiles.count)]
                if !chosen.contains(profile) { chosen.append(profile) }
            }
            let store = try TouchLogStore(directory: dir.path + "/s")
            try await store.erase(profiles: chosen, reason: "differential test")
            store.close()
            erased.formUnion(chosen)
            try reader.refresh()
        }
        try await eraseSome()
        var random = TestRandom(seed: seed &* 1_000_003)
        var cases = 0
        var nonEmpty = 0
        var fromSnapshot = 0
        var fromMarks = 0
        var snapshotted = 0
        var catalog = Catalog()
        for index in 0..<60 {
            if index == 30 { try await eraseSome() }
            let definition = try catalog.next(&random, index: index, store: dir.path + "/s")
            if reader.snapshotsHelp(definition) { snapshotted += 1 }
            if try !Self.checkHistory(
                definition, reader, reference, data, &random, erased: erased, segments: catalog.definitions)
            {
                return
            }
            for _ in 0..<30 {
                var time = Self.randomQueryTime(&random, data)
                if snapshotEvery != nil {
                    // (Only these keep rules over moving windows: queries save snapshots of fixed ones.)
                    if random.chance(0.05) { _ = try reader.createSnapshot(of: definition) }
                    if random.chance(0.3),
                        let snapshot = reader.snapshots().filter({
                            $0.key == SnapshotStore.key(try! reader.segments.resolve(definition))
                        }).randomElement(using: &random)
                    {
                        time.asOf = snapshot.watermark + [0, 1, 3_600_000, 86_400_000][random.below(4)]
                    }
                }
                // Every fifth query on a fresh reader: its first answer copies out only the members' strings.
                let asking = cases % 5 == 0 ? try StoreReader(directory: dir.path + "/s") : reader
                asking.snapshotInterval = snapshotEvery
                asking.latestTimesShare = share
                let engine = try asking.members(of: definition, at: time)
                if asking.lastQuery.snapshotOffset > 0 { fromSnapshot += 1 }
                if asking.lastQuery.membersFromMarks { fromMarks += 1 }
                // A count is the same query without strings.
                if cases % 7 == 3 {
                    #expect(try asking.count(of: definition, at: time) == engine.count, "count of \(definition.json)")
                }
                #expect(asking.lastQuery.snapshotsIgnored == 0)
                if try !Self.check(
                    engine, definition, time, reader, reference, data, &random, &cases, &nonEmpty, erased: erased,
                    segments: catalog.definitions)
                {
                    return
                }
            }
        }
        #expect(cases == 1_800)
        #expect(erased.count == (format == 3 ? 8 : 0))
        #expect(nonEmpty > cases / 4, "random segments should often have members (\(nonEmpty) of \(cases))")
        // Both ways of deciding membership, on columns a pooled reader reuses: only the marked profiles, or all.
        #expect(
            fromMarks > cases / 20 && fromMarks < cases * 19 / 20,
            "membership should often read only the marked profiles, often all (\(fromMarks) of \(cases))")
        if snapshotEvery != nil {
            #expect(
                fromSnapshot > cases / 10,
                "queries should often start from a snapshot (\(fromSnapshot) of \(cases), \(snapshotted) of 60 segments can)"
            )
            let report = try StoreVerifier.verify(directory: dir.path + "/s")
            #expect(report.isIntact && report.snapshotsChecked > 0, "\(report.otherProblems)")
        } else {
            #expect(fromSnapshot == 0)
        }
    }

    @Test(arguments: [UInt16(1), 2])
    func deletingOrDamagingSnapshotsChangesNoAnswer(format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let data = try await Self.dataset(seed: 9, store: dir.path + "/s", formatVersion: format)
        let reader = try StoreReader(directory: dir.path + "/s")
        reader.snapshotInterval = 50
        var random = TestRandom(seed: 99)
        let definitions = (0..<20).map { Self.randomDefinition(&random, index: $0) }
        let times = (0..<10).map { _ in Self.randomQueryTime(&random, data) }
        var answers: [[String]] = []
        for d in definitions { for t in times { answers.append(try reader.members(of: d, at: t)) } }
        #expect(!reader.snapshots().isEmpty)
        func again(_ label: String, _ reader: StoreReader) throws {
            var i = 0
            for d in definitions {
                for t in times {
                    #expect(try reader.members(of: d, at: t) == answers[i], "\(label)")
                    i += 1
                }
            }
        }
        // A second round starts from snapshots and must agree.
        try again("from snapshots", reader)
        // Damage every snapshot: each is refused (checksum) and the answer comes from the log. (A reader that
        // loaded one before may answer from its checked copy in memory: a fresh reader reads the files.)
        let fresh = try StoreReader(directory: dir.path + "/s")
        fresh.snapshotInterval = nil
        for info in reader.snapshots() {
            let path = dir.path + "/s/" + info.path
            var bytes = Array(
                try String(contentsOfFile: path, encoding: .isoLatin1).unicodeScalars.map { UInt8($0.value) })
            bytes[bytes.count / 2] ^= 0x20
            dir.file("s/" + info.path, bytes: bytes)
        }
        try again("damaged snapshots", fresh)
        #expect(fresh.lastQuery.snapshotsIgnored > 0 || fresh.lastQuery.snapshotOffset == 0)
        // Delete them all: the first reader, too, then answers from the log.
        _ = system("rm -rf '\(dir.path)/s/snapshots'/*")
        #expect(reader.snapshots().isEmpty)
        reader.snapshotInterval = nil
        try again("no snapshots", reader)
        #expect(reader.lastQuery.snapshotOffset == 0)
    }
}
