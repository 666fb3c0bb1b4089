import Testing
@testable import TouchLog
import TouchLogStorage
import Foundation

/// The engine against SQL: generated events with late arrivals and several commits (so known-at matters),
/// hundreds of random rule trees drawn from the whole grammar, random as-of and known-at times.
@Suite struct SegmentDifferentialTests {
    static let start: Int64 = 1_654_041_600_000  // 2022-06-01T00:00:00Z
    static let span: Int64 = 60 * 86_400_000
    static let touchpoints = ["summer-2022-collection", "summer-2022-sale", "summer-2023", "discount-notification", "discount-iphone",
                              "iphone-13", "iphone-interest", "store-location", "store", "é-vente", "日本-banner"]

    struct Dataset {
        var events: [(event: Event, recorded: Int64)] = []
        var commitTimes: [Int64] = []
    }

    /// Events appended in 8 commits, each recorded an hour after the last; event times are not in log order.
    static func dataset(seed: UInt64, store directory: String, formatVersion: UInt16 = 1) async throws -> Dataset {
        var random = TestRandom(seed: seed)
        let profiles = (0..<50).map { "p-\($0)" } + ["é-1", "Z-2", "p", "p-1-x"]
        let clock = ManualClock()
        let store = try TouchLogStore(directory: directory, options: LogOptions(clock: { clock.read() }, formatVersion: formatVersion),
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
                let touchpoint: String? = type == .conversion && random.chance(0.5) ? nil : touchpoints[random.below(touchpoints.count)]
                // Mostly clustered by commit, with late arrivals anywhere in the span.
                let base = start + span * Int64(commit) / 8
                // Late arrivals: an event time anywhere before this commit's period.
                var time = random.chance(0.15) ? start + Int64(random.below(Int(max(1, base - start + 1)))) : base + Int64(random.below(Int(span / 6)))
                // Most times on a 6-hour grid, so that ties (a conversion at the same instant as a click, an event
                // exactly at T − 30d or at a from/to bound) happen often and the inclusive bounds are exercised.
                if random.chance(0.6) { time -= (time - start) % 21_600_000 }
                events.append(Event(time: time, profile: profiles[random.below(profiles.count)], type: type, touchpoint: touchpoint,
                                    value: type == .conversion ? Double(random.below(10_000)) / 100 : nil))
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

    static func randomRule(_ random: inout TestRandom, depth: Int) -> SegmentDefinition.Rule {
        let negate = random.chance(0.2)
        if depth < 3 && random.chance(0.25) {
            return .group(random.chance(0.5) ? .all : .any, (0..<(1 + random.below(3))).map { _ in randomRule(&random, depth: depth + 1) }, negate: negate)
        }
        let interactions: [InteractionRule.Interaction] = [.view, .click, .any, .conversion]
        var rule = InteractionRule(interaction: interactions[random.below(4)])
        if rule.interaction != .conversion || random.chance(0.5) {
            switch random.below(5) {
            case 0: rule.touchpoint = .exactly(Array(touchpoints[random.below(touchpoints.count)].utf8))
            case 1: rule.touchpoint = .contains(Array(randomOperand(&random).utf8))
            case 2: rule.touchpoint = .startsWith(Array(touchpoints[random.below(touchpoints.count)].utf8.prefix(1 + random.below(10))))
            case 3: rule.touchpoint = .endsWith(Array(touchpoints[random.below(touchpoints.count)].utf8.suffix(1 + random.below(10))))
            default: rule.touchpoint = .oneOf((0..<(1 + random.below(3))).map { _ in Array(touchpoints[random.below(touchpoints.count)].utf8) })
            }
            // Byte-level prefixes and suffixes can cut a UTF-8 sequence; definitions are text, so keep only valid ones.
            if case .startsWith(let s) = rule.touchpoint, String(validating: s, as: UTF8.self) == nil { rule.touchpoint = .exactly(Array("store".utf8)) }
            if case .endsWith(let s) = rule.touchpoint, String(validating: s, as: UTF8.self) == nil { rule.touchpoint = .exactly(Array("store".utf8)) }
        }
        switch random.below(10) {
        case 0..<4: break
        case 4..<7: rule.timeframe = .last(milliseconds: [3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000, Int64(1 + random.below(Int(span)))][random.below(5)])
        default:
            var from: Int64? = random.chance(0.7) ? randomTime(&random) : nil
            var to: Int64? = random.chance(0.7) ? randomTime(&random) : nil
            if let f = from, let t = to, f > t { (from, to) = (t, f) }
            if from == nil && to == nil { from = randomTime(&random) }
            rule.timeframe = .between(from: from, to: to)
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

    static func randomDefinition(_ random: inout TestRandom, index: Int) -> SegmentDefinition {
        SegmentDefinition(name: "random-\(index)", match: random.chance(0.5) ? .all : .any,
                          rules: (0..<(1 + random.below(3))).map { _ in randomRule(&random, depth: 1) })
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
    static func check(_ engine: [String], _ definition: SegmentDefinition, _ time: QueryTime, _ reader: StoreReader,
                      _ reference: SQLiteReference, _ data: Dataset, _ random: inout TestRandom, _ cases: inout Int,
                      _ nonEmpty: inout Int, erased: Set<String> = []) throws -> Bool {
        let sql = reference.members(definition, at: time).filter { !erased.contains($0) }
        #expect(engine == sql, "\(definition.json) as of \(time.asOf) known at \(String(describing: time.knownAt))")
        cases += 1
        if !sql.isEmpty { nonEmpty += 1 }
        if cases % 6 == 0 {
            let profile = data.events[random.below(data.events.count)].event.profile
            let explanation = try reader.explain(definition, profile: profile, at: time)
            #expect(explanation.isMember == engine.contains(profile), "explain disagrees for \(profile) in \(definition.json)")
        }
        return engine == sql
    }

    /// Seeds 1–3 replay the log for every query; seeds 4–6 let queries save snapshots every 100 events, so most
    /// answers start from a snapshot taken at some earlier query's position and watermark; seeds 7–8 keep
    /// projections in memory across queries (as a ``TouchLogStore`` does), 8 with snapshots too.
    @Test(arguments: [(UInt64(1), UInt64?.none, false), (2, nil, false), (3, nil, false), (4, 100, false), (5, 100, false), (6, 100, false),
                      (7, nil, true), (8, 100, true)])
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
        for index in 0..<60 {
            let definition = Self.randomDefinition(&random, index: index)
            #expect(try SegmentDefinition(json: definition.json) == definition, "JSON round trip of \(definition.json)")
            for _ in 0..<30 {
                var time = Self.randomQueryTime(&random, data)
                if snapshotEvery != nil, random.chance(0.3), let snapshot = reader.snapshots().filter({ $0.key == SnapshotStore.key(definition) }).last {
                    // Right at (or just after) a snapshot's watermark: the edge of what its pruned state may answer.
                    time.asOf = snapshot.watermark + [0, 1, 3_600_000, 86_400_000][random.below(4)]
                }
                let engine = try reader.members(of: definition, at: time)
                if reader.lastQuery.snapshotOffset > 0 { fromSnapshot += 1 }
                if reader.lastQuery.fromMemory { fromMemory += 1 }
                let agrees = try Self.check(engine, definition, time, reader, reference, data, &random, &cases, &nonEmpty)
                if !agrees { return }  // one detailed failure per seed is enough
            }
        }
        #expect(cases == 1_800)
        #expect(nonEmpty > cases / 4, "random segments should often have members (\(nonEmpty) of \(cases))")
        if inMemory {
            // Random times go back and forth, so the projection kept (the furthest one) is often past T.
            #expect(fromMemory > cases / 10, "queries should often start from the projection in memory (\(fromMemory) of \(cases))")
        }
        if snapshotEvery != nil {
            #expect(fromSnapshot > cases / 5, "queries should often start from a snapshot (\(fromSnapshot) of \(cases))")
        } else {
            #expect(fromSnapshot == fromMemory)
        }
    }

    /// Formats 2 and 3 answer from their (touchpoint, type) groups: the same random cases. Seeds 11–12 read the log
    /// for every query; seeds 13–15 let queries save snapshots (of rules over all time or between fixed dates) every
    /// 1, 50 or 300 events, and now and then take one at the end of the log by hand, so answers start from snapshots
    /// at every spacing, and often at T right at (or just after) a snapshot's watermark. In the format-3 stores,
    /// profiles are erased before the first query and again halfway (after snapshots were saved): no answer may
    /// list them, at any T and K.
    @Test(arguments: [(UInt64(11), UInt64?.none, UInt16(2)), (12, nil, 3), (13, 1, 3), (14, 50, 2), (15, 300, 3)])
    func formatTwoAndThreeAnswersEqualThePlainSQLEvaluation(seed: UInt64, snapshotEvery: UInt64?, format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let data = try await Self.dataset(seed: seed, store: dir.path + "/s", formatVersion: format)
        let reference = SQLiteReference(events: data.events)
        let reader = try StoreReader(directory: dir.path + "/s")
        reader.snapshotInterval = snapshotEvery
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
        var snapshotted = 0
        for index in 0..<60 {
            if index == 30 { try await eraseSome() }
            let definition = Self.randomDefinition(&random, index: index)
            if reader.snapshotsHelp(definition) { snapshotted += 1 }
            for _ in 0..<30 {
                var time = Self.randomQueryTime(&random, data)
                if snapshotEvery != nil {
                    if random.chance(0.02) { _ = try reader.createSnapshot(of: definition) }
                    if random.chance(0.3), let snapshot = reader.snapshots().filter({ $0.key == SnapshotStore.key(definition) }).randomElement(using: &random) {
                        time.asOf = snapshot.watermark + [0, 1, 3_600_000, 86_400_000][random.below(4)]
                    }
                }
                // Every fifth query on a fresh reader: its first answer copies out only the members' strings.
                let asking = cases % 5 == 0 ? try StoreReader(directory: dir.path + "/s") : reader
                asking.snapshotInterval = snapshotEvery
                let engine = try asking.members(of: definition, at: time)
                if asking.lastQuery.snapshotOffset > 0 { fromSnapshot += 1 }
                // A count is the same query without strings.
                if cases % 7 == 3 { #expect(try asking.count(of: definition, at: time) == engine.count, "count of \(definition.json)") }
                #expect(asking.lastQuery.snapshotsIgnored == 0)
                if try !Self.check(engine, definition, time, reader, reference, data, &random, &cases, &nonEmpty, erased: erased) { return }
            }
        }
        #expect(cases == 1_800)
        #expect(erased.count == (format == 3 ? 8 : 0))
        #expect(nonEmpty > cases / 4, "random segments should often have members (\(nonEmpty) of \(cases))")
        if snapshotEvery != nil {
            #expect(fromSnapshot > cases / 10, "queries should often start from a snapshot (\(fromSnapshot) of \(cases), \(snapshotted) of 60 segments can)")
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
            for d in definitions { for t in times { #expect(try reader.members(of: d, at: t) == answers[i], "\(label)"); i += 1 } }
        }
        // A second round starts from snapshots and must agree.
        try again("from snapshots", reader)
        // Damage every snapshot: each is refused (checksum) and the answer comes from the log. (A reader that
        // loaded one before may answer from its checked copy in memory: a fresh reader reads the files.)
        let fresh = try StoreReader(directory: dir.path + "/s")
        fresh.snapshotInterval = nil
        for info in reader.snapshots() {
            let path = dir.path + "/s/" + info.path
            var bytes = Array(try String(contentsOfFile: path, encoding: .isoLatin1).unicodeScalars.map { UInt8($0.value) })
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
