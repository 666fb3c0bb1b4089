import Testing

@testable import TouchLog
@testable import TouchLogStorage

@Suite struct FormatTwoStoreTests {
    static let formatTwo = LogOptions(formatVersion: 2)

    @Test func aFormatTwoStoreHoldsTheSameEventsAndAnswersAsAFormatOneStore() async throws {
        let dir = TemporaryDirectory()
        let events = randomEvents(6_000, seed: 8)
        let one = try TouchLogStore(directory: dir.path + "/one", blockEvents: 500)
        let two = try TouchLogStore(directory: dir.path + "/two", options: Self.formatTwo, blockEvents: 500)
        for store in [one, two] {
            try await store.append(Array(events[..<2_000]))
            try await store.append(try EventBatch(events[2_000..<4_000]))
            let lines = dir.file("in-\(store === one ? 1 : 2).jsonl", jsonLines(Array(events[4_000...])))
            _ = try store.ingest([lines])
        }
        #expect(try StoreReader(directory: dir.path + "/two").formatVersion == 2)
        let stored = try StoreReader(directory: dir.path + "/two").events()
        #expect(stored.map(\.event) == events)
        #expect(stored.map(\.offset) == Array(0..<6_000))
        let report = try StoreVerifier.verify(directory: dir.path + "/two")
        #expect(report.isIntact, "\(report.log.problems) \(report.otherProblems)")
        for path in ["one", "two"] {
            _ = try SegmentCatalog(layout: StoreLayout(root: dir.path + "/" + path)).put(
                try SegmentDefinition(
                    json: """
                        {"name":"s","match":"any","rules":[{"interaction":"click","touchpoint":{"contains":"a"},"timeframe":{"last":"30d"}},
                          {"interaction":"conversion","negate":true}]}
                        """))
        }
        let definition = try one.segments.current("s").definition
        for asOf: Int64 in [1_654_070_400_000, 1_700_000_000_000, EventLimits.maxTime] {
            let a = try StoreReader(directory: dir.path + "/one").members(of: definition, at: QueryTime(asOf: asOf))
            let b = try StoreReader(directory: dir.path + "/two").members(of: definition, at: QueryTime(asOf: asOf))
            #expect(a == b)
        }
    }

    /// A query's per-profile columns are zeroed as its answer is read and kept for the next query (not returned to
    /// the kernel): an answer never depends on the queries asked before it. Every answer asked after the others, in
    /// either order, equals the one it got when asked first, and a format-1 store's; reused memory that is not all
    /// zero stops a debug build. With 20,000 profiles the answer is read in two parts, one per core.
    @Test func answersDoNotDependOnTheQueriesAskedBefore() async throws {
        let dir = TemporaryDirectory()
        let events = randomEvents(60_000, seed: 31)
        let store = try TouchLogStore(directory: dir.path + "/three", blockEvents: 4_000)
        try await store.append(events)
        store.close()
        let formatOne = try TouchLogStore(
            directory: dir.path + "/one", options: LogOptions(formatVersion: 1), blockEvents: 4_000)
        try await formatOne.append(events)
        formatOne.close()
        let definitions = try [
            #"{"name":"p1","match":"all","rules":[{"interaction":"any","touchpoint":{"contains":"a"},"conversion":"converted"}]}"#,
            #"{"name":"p2","match":"any","rules":[{"interaction":"view","touchpoint":{"contains":"b"},"count":{"atLeast":2}},{"interaction":"conversion","negate":true}]}"#,
            #"{"name":"p3","match":"all","rules":[{"interaction":"click","touchpoint":{"contains":"0"},"timeframe":{"last":"30d"},"conversion":"not_converted"}]}"#,
        ].map { try SegmentDefinition(json: $0) }
        let asks = definitions.flatMap { definition in
            [1_654_070_400_000 + 200_000_000, EventLimits.maxTime].map { (definition, QueryTime(asOf: $0)) }
        }
        var alone: [[String]] = []
        for (definition, time) in asks {
            alone.append(try StoreReader(directory: dir.path + "/three").members(of: definition, at: time))
        }
        #expect(alone.contains { $0.count > 1_000 })
        for (k, ask) in asks.enumerated() {
            #expect(try StoreReader(directory: dir.path + "/one").members(of: ask.0, at: ask.1) == alone[k])
        }
        let reader = try StoreReader(directory: dir.path + "/three")
        for order in [Array(asks.indices), asks.indices.reversed()] {
            for k in order {
                #expect(try reader.members(of: asks[k].0, at: asks[k].1) == alone[k], "\(asks[k].0.name)")
            }
        }
    }

    /// A windowed rule that asks about conversions keeps, of the conversions its scan meets, only those of profiles
    /// some rule counted, decided once every worker has scanned: a conversion and the click before it often lie in
    /// blocks that different workers read. Few of the store's profiles are marked, so membership reads only theirs.
    @Test func aConversionCountsWhereverTheClickBeforeItWasRead() async throws {
        let dir = TemporaryDirectory()
        let base: Int64 = 1_654_070_400_000
        var events: [Event] = []
        for i in 0..<20 {
            let t = base + Int64(i) * 60_000
            // Converted: a click, then a conversion some blocks later.
            events.append(Event(time: t, profile: "late-\(i)", type: .click, touchpoint: "promo"))
            events.append(Event(time: t + 1_500_000, profile: "late-\(i)", type: .conversion, touchpoint: "shop"))
            // Not converted: the conversion comes before the click.
            events.append(Event(time: t - 30_000, profile: "early-\(i)", type: .conversion, touchpoint: "shop"))
            events.append(Event(time: t + 2_000_000, profile: "early-\(i)", type: .click, touchpoint: "promo"))
            // No click at all.
            events.append(Event(time: t + 10_000, profile: "buyer-\(i)", type: .conversion, touchpoint: "shop"))
        }
        for i in 0..<3_000 {
            events.append(
                Event(time: base + Int64(i) * 1_000, profile: "viewer-\(i)", type: .view, touchpoint: "promo"))
        }
        events.sort { $0.time < $1.time }
        let store = try TouchLogStore(directory: dir.path + "/s", options: Self.formatTwo, blockEvents: 100)
        try await store.append(events)
        store.close()
        let reader = try StoreReader(directory: dir.path + "/s")
        let time = QueryTime(asOf: base + 86_400_000)
        for (conversion, expected) in [("converted", "late-"), ("not_converted", "early-")] {
            let definition = try SegmentDefinition(
                json: """
                    {"name":"s","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"},
                      "timeframe":{"last":"30d"},"conversion":"\(conversion)"}]}
                    """)
            let members = try reader.members(of: definition, at: time)
            #expect(members == (0..<20).map { "\(expected)\($0)" }.sorted(), "\(conversion)")
            #expect(reader.lastQuery.membersFromMarks)
        }
        // A negated rule counts for any profile (here every viewer), so it marks none: members can only be profiles
        // the clicks rule counted, and those are still few.
        let notViewed = try SegmentDefinition(
            json: """
                {"name":"n","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"}},
                  {"interaction":"view","touchpoint":{"exactly":"promo"},"negate":true}]}
                """)
        #expect(
            try reader.members(of: notViewed, at: time) == (0..<20).flatMap { ["early-\($0)", "late-\($0)"] }.sorted())
        #expect(reader.lastQuery.membersFromMarks)
    }

    /// A rule's counts stop at 255 when its bounds cannot tell 255 from more, and take 4 bytes otherwise: every bound
    /// around 255 gets the answer exact counts give, whether the counts come from one worker, from two (each with
    /// part of a profile's clicks), or from a snapshot whose counts had stopped and to which the scan adds.
    @Test func countsPastWhatAByteHoldsDecideEveryBound() async throws {
        let dir = TemporaryDirectory()
        let base: Int64 = 1_654_070_400_000
        let clicks = [1, 200, 254, 255, 256, 300, 520, 600]
        // Every other click of each profile (`half` 0 or 1), spread over the whole period so that every block holds
        // some of each profile's.
        func events(_ half: Int) -> [Event] {
            var events: [Event] = []
            for (k, n) in clicks.enumerated() {
                for i in stride(from: half, to: n, by: 2) {
                    let t = base + Int64(i) * 1_000_000 + Int64(k)
                    events.append(Event(time: t, profile: "p\(n)", type: .click, touchpoint: "promo"))
                }
            }
            return events.sorted { $0.time < $1.time }
        }
        let store = try TouchLogStore(directory: dir.path + "/s", options: Self.formatTwo, blockEvents: 50)
        try await store.append(events(0))
        let bounds: [(atLeast: Int?, atMost: Int?)] = [
            (255, nil), (nil, 254), (255, 255), (256, nil), (254, 256), (300, 599), (521, nil), (nil, 255),
        ]
        func definition(_ bound: (atLeast: Int?, atMost: Int?), window: String) throws -> SegmentDefinition {
            let count = [bound.atLeast.map { "\"atLeast\":\($0)" }, bound.atMost.map { "\"atMost\":\($0)" }]
                .compactMap { $0 }.joined(separator: ",")
            return try SegmentDefinition(
                json: """
                    {"name":"c","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"},
                      "timeframe":\(window),"count":{\(count)}}]}
                    """)
        }
        func expected(_ bound: (atLeast: Int?, atMost: Int?), counted: (Int) -> Int) -> [String] {
            clicks.filter { counted($0) >= (bound.atLeast ?? 1) && counted($0) <= (bound.atMost ?? .max) }
                .map { "p\($0)" }.sorted()
        }
        let allTime = #"{"from":"2000-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}"#
        for bound in bounds {
            _ = try StoreReader(directory: dir.path + "/s").createSnapshot(of: try definition(bound, window: allTime))
        }
        try await store.append(events(1))
        store.close()
        let end = QueryTime(asOf: base + 1_000_000_000_000)
        let middle = QueryTime(asOf: base + 300 * 1_000_000 + 100)
        let last = QueryTime(asOf: base + 600 * 1_000_000)
        for bound in bounds {
            // A fixed window: from the snapshot of the even clicks, then the odd ones from the log.
            let kept = try definition(bound, window: allTime)
            let reader = try StoreReader(directory: dir.path + "/s")
            #expect(try reader.members(of: kept, at: end) == expected(bound) { $0 }, "\(bound)")
            #expect(reader.lastQuery.snapshotOffset > 0, "\(bound): the query should start from the snapshot")
            // A moving window, read from the log on every core: at the middle, clicks 0...300 of each profile count.
            let windowed = try definition(bound, window: #"{"last":"10000d"}"#)
            #expect(
                try reader.members(of: windowed, at: middle) == expected(bound) { min($0, 301) }, "\(bound) at middle")
            #expect(try reader.members(of: windowed, at: last) == expected(bound) { $0 }, "\(bound) at the last click")
        }
    }

    /// A rule over the last N days or calendar units that only counts its events is kept in snapshots as each
    /// profile's latest qualifying times (as many as its bounds tell apart): a query at any T at or after the
    /// snapshot's watermark reads none of the blocks before it, and counts the events of the blocks after it, late
    /// ones included, on top. Only a snapshot at the end of the log keeps them. Every answer equals a reader's that uses no snapshot, before and after more events come.
    @Test func windowedCountsStartFromTheLatestTimesASnapshotKept() async throws {
        let dir = TemporaryDirectory()
        let base: Int64 = 1_654_070_400_000
        let day: Int64 = 86_400_000
        var random = TestRandom(seed: 77)
        let touchpoints = ["promo", "news", "shop-1", "shop-2"]
        let types: [EventType] = [.view, .click, .conversion]
        func event(at t: Int64) -> Event {
            Event(
                time: t, profile: "p\(random.below(150))", type: types[random.below(3)],
                touchpoint: touchpoints[random.below(4)])
        }
        // 40 days, then 5 more days with late events (some inside the windows, some long before them) among them.
        let early = (0..<3_000).map { _ in event(at: base + Int64(random.below(40 * 86_400)) * 1_000) }
            .sorted { $0.time < $1.time }
        let later = (0..<600).map { k in
            let late = k % 5 == 0
            let t = late ? base + Int64(random.below(40 * 86_400)) * 1_000 : base + 40 * day + Int64(k) * 700_000
            return event(at: t)
        }
        let store = try TouchLogStore(directory: dir.path + "/s", options: Self.formatTwo, blockEvents: 100)
        try await store.append(early)
        let definitions = try [
            #"{"interaction":"click","touchpoint":{"exactly":"promo"},"timeframe":{"last":"7d"}}"#,
            #"{"interaction":"view","touchpoint":{"startsWith":"shop"},"timeframe":{"last":"10d"},"count":{"atLeast":3}}"#,
            #"{"interaction":"any","touchpoint":{"exactly":"news"},"timeframe":{"last":"5d"},"count":{"atMost":2}}"#,
            #"{"interaction":"conversion","timeframe":{"last":"3d"},"negate":true}"#,
            #"{"interaction":"any","touchpoint":{"contains":"o"},"timeframe":{"calendar":{"unit":"week","count":1,"timeZone":"Europe/Amsterdam"}},"count":{"atLeast":2,"atMost":5}}"#,
            // Every latest time: bounds past 8, and first qualifying times for a conversion clause.
            #"{"interaction":"any","touchpoint":{"startsWith":"shop"},"timeframe":{"last":"10d"},"count":{"atLeast":9}}"#,
            #"{"interaction":"click","touchpoint":{"exactly":"promo"},"timeframe":{"last":"7d"},"conversion":"not_converted"}"#,
            #"{"interaction":"view","touchpoint":{"exactly":"news"},"timeframe":{"calendar":{"unit":"day","count":3}},"conversion":"converted"}"#,
        ].enumerated().map { k, rule in
            try SegmentDefinition(json: #"{"name":"w\#(k)","match":"all","rules":[\#(rule)]}"#)
        }
        let asker = try StoreReader(directory: dir.path + "/s")
        // (Every rule that can be kept is, however many latest times it has against the events of its window.)
        asker.latestTimesShare = 0
        // Only the snapshot at the end keeps latest times: the ones along the log (every 1,000 events) would keep
        // nothing else here, so they are not saved.
        asker.snapshotInterval = 1_000
        for definition in definitions { #expect(try asker.createSnapshot(of: definition) != nil) }
        let watermark = early.last!.time
        try await store.append(later)
        store.close()
        let after = UInt64(later.count)
        var readWithout: UInt64 = 0
        for asOf in [watermark, watermark + 1, watermark + 2 * day, watermark + 9 * day, watermark + 30 * day] {
            for definition in definitions {
                let time = QueryTime(asOf: asOf)
                let reader = try StoreReader(directory: dir.path + "/s")
                reader.snapshotInterval = nil
                let plain = try StoreReader(directory: dir.path + "/s")
                plain.usesSnapshots = false
                let expected = try plain.members(of: definition, at: time)
                #expect(try reader.members(of: definition, at: time) == expected, "\(definition.name) at \(asOf)")
                #expect(reader.lastQuery.snapshotOffset == UInt64(early.count), "\(definition.name)")
                #expect(reader.lastQuery.eventsRead <= after, "\(definition.name) at \(asOf) read blocks before it")
                readWithout += plain.lastQuery.eventsRead
            }
        }
        // Without the snapshots, the windows' early blocks are read too.
        #expect(readWithout > UInt64(definitions.count * 5) * after)
        // A value condition over the last N days is read from the log.
        let values = try SegmentDefinition(
            json:
                #"{"name":"v","match":"all","rules":[{"interaction":"conversion","timeframe":{"last":"10d"},"value":{"sum":{"atLeast":1}}}]}"#
        )
        #expect(try asker.createSnapshot(of: values) == nil)
        #expect(!asker.snapshotsHelp(values))
        // By default, a rule with more latest times than an eighth of its window's events is read from the log too;
        // a snapshot that would keep nothing else is not saved.
        let many = try SegmentDefinition(
            json:
                #"{"name":"m","match":"all","rules":[{"interaction":"any","touchpoint":{"contains":"o"},"timeframe":{"last":"30d"},"count":{"atLeast":8}}]}"#
        )
        let byDefault = try StoreReader(directory: dir.path + "/s")
        #expect(byDefault.snapshotsHelp(many))
        #expect(try byDefault.createSnapshot(of: many) == nil)
        #expect(byDefault.lastQuery.snapshotsNotWorthKeeping > 0)
        #expect(byDefault.snapshots().count == definitions.count)
        let report = try StoreVerifier.verify(directory: dir.path + "/s")
        #expect(report.isIntact && report.snapshotsChecked == definitions.count, "\(report.otherProblems)")
    }

    /// Creating snapshots tells a segment with nothing worth keeping (its latest times would outnumber an eighth of
    /// its window's events) from one already snapshotted at the end of the log, whichever is asked first.
    @Test func snapshotCreationTellsNothingWorthKeepingFromAlreadyTaken() async throws {
        let dir = TemporaryDirectory()
        let base: Int64 = 1_654_070_400_000
        // Every profile views a lot; one profile in fifty clicked once.
        var events: [Event] = []
        for i in 0..<2_000 {
            let t = base + Int64(i) * 600_000
            events.append(Event(time: t, profile: "p\(i % 100)", type: .view, touchpoint: "home"))
            if i % 50 == 0 { events.append(Event(time: t, profile: "p\(i % 100)", type: .click, touchpoint: "ad")) }
        }
        let store = try TouchLogStore(directory: dir.path + "/s", options: Self.formatTwo, blockEvents: 100)
        try await store.append(events)
        for json in [
            #"{"name":"a-viewers","match":"all","rules":[{"interaction":"view","touchpoint":{"exactly":"home"},"timeframe":{"last":"30d"},"count":{"atLeast":8}}]}"#,
            #"{"name":"b-clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"ad"},"timeframe":{"last":"30d"}}]}"#,
        ] {
            _ = try await store.putSegment(try SegmentDefinition(json: json))
        }
        let first = try await store.createSnapshots()
        #expect(first.map(\.segment) == ["a-viewers", "b-clickers"])
        #expect(first.map(\.helps) == [false, true])
        #expect(first[0].snapshot == nil && first[1].snapshot != nil)
        let again = try await store.createSnapshots()
        #expect(again.map(\.helps) == [false, true], "b-clickers is already snapshotted, not without a snapshot")
        #expect(again[0].snapshot == nil && again[1].snapshot == nil)
        #expect(try store.snapshots().map(\.segment) == ["b-clickers"])
    }

    /// A store's readers share the times and profiles sections their queries read, found by block hash, within a
    /// byte bound: answers are those of a reader that keeps none, whether the sections come from the file or from
    /// the cache, and the least recently used go first.
    @Test func aStoresReadersShareTheSectionsTheyRead() async throws {
        let dir = TemporaryDirectory()
        let events = randomEvents(3_000, seed: 12)
        let store = try TouchLogStore(directory: dir.path + "/s", options: Self.formatTwo, blockEvents: 200)
        try await store.append(events)
        let definition = try SegmentDefinition(
            json: """
                {"name":"w","match":"any","rules":[{"interaction":"any","touchpoint":{"contains":"a"},"timeframe":{"last":"3d"}},
                  {"interaction":"conversion","timeframe":{"last":"10d"},"negate":true}]}
                """)
        let plain = try StoreReader(directory: dir.path + "/s")
        let times = (0..<6).map { QueryTime(asOf: events[$0 * 499].time) }
        let pool = store.readers
        for time in times + times {
            let pooled = try pool.withReader { reader throws(TouchLogError) in
                Result { try reader.members(of: definition, at: time) }
            }
            #expect(try pooled.get() == plain.members(of: definition, at: time))
        }
        #expect(pool.sections.usage.values > 0)
        store.close()

        let cache = SectionCache(sectionBytes: 10_000)
        let blocks = (0..<5).map { k in BlockHash(bytes: [UInt8](repeating: UInt8(k), count: 32)) }
        func section(_ byte: UInt8, _ count: Int = 2_400) -> [UInt8] { [UInt8](repeating: byte, count: count) }
        cache.keep(section(1), .times, of: blocks[0])
        cache.keep(section(2), .profiles, of: blocks[0])
        cache.keep(section(3), .times, of: blocks[1])
        #expect(cache.section(.times, of: blocks[0])?.first == 1)  // now used after the other two
        cache.keep(section(4), .times, of: blocks[2])  // four fit
        #expect(cache.usage.values == 4)
        cache.keep(section(5), .times, of: blocks[3])  // the least recently used goes
        #expect(cache.section(.profiles, of: blocks[0]) == nil && cache.usage.values == 4)
        #expect(cache.section(.times, of: blocks[0])?.first == 1 && cache.section(.times, of: blocks[1])?.first == 3)
        cache.keep(section(6, 2_600), .times, of: blocks[4])  // more than a quarter of the capacity: not kept
        #expect(cache.section(.times, of: blocks[4]) == nil && cache.usage.values == 4)
    }

    /// A list of block summaries grows in chunks that its copies share: a copy taken before an append, or cut short
    /// by `truncated(to:)`, keeps showing what it showed, across the chunk boundary too.
    @Test func aListOfBlockSummariesKeepsItsCopiesAsItGrows() throws {
        func summary(_ k: Int) -> BlockSummary {
            BlockSummary(
                count: k + 1, firstNewProfile: UInt32(k), newProfiles: 0, firstNewTouchpoint: 0, newTouchpoints: 0,
                profileBase: 0, profileWidth: 0, sections: [], groups: [])
        }
        func hash(_ k: Int) -> BlockHash {
            BlockHash(bytes: (0..<32).map { UInt8(truncatingIfNeeded: k >> ($0 % 4 * 8)) })
        }
        var list = BlockSummaries()
        var copies: [BlockSummaries] = []
        for k in 0..<2_500 {
            if k % 500 == 0 || k == 1_024 { copies.append(list) }
            list.append(summary(k), hash: hash(k))
        }
        #expect(list.map(\.count) == Array(1...2_500))
        for copy in copies { #expect(copy.map(\.count) == (0..<copy.count).map { $0 + 1 }) }
        #expect(copies.map(\.count) == [0, 500, 1_000, 1_024, 1_500, 2_000])
        let first = list.truncated(to: 1_030)
        list.append(summary(2_500), hash: hash(2_500))
        #expect(first.count == 1_030 && first[1_029].count == 1_030 && list[2_500].count == 2_501)
        #expect(list.holds(hash(1_029), at: 1_029) && !list.holds(hash(1_030), at: 1_029))
    }

    /// The readers of one store share the block summaries any of them parsed: a second reader, or the writer reading
    /// the store's dictionary, reads none again (each keeping its own cost a server hundreds of bytes per block
    /// per reader).
    @Test(arguments: [UInt16(2), 3])
    func theReadersOfAStoreShareItsBlockSummaries(format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(
            directory: dir.path + "/s", options: LogOptions(formatVersion: format), blockEvents: 100)
        let events = randomEvents(3_000, seed: 12)
        for k in stride(from: 0, to: events.count, by: 500) { try await store.append(Array(events[k..<k + 500])) }
        _ = try await store.stats()
        let second = try store.readers.makeReader()
        let shared = store.readers.summaries
        #expect(second.summaryCache === shared && shared.summaries(of: second.log.blocks).count == 30)
        let summaries = try second.summaries(through: 30)
        #expect(summaries.count == 30 && summaries.map(\.count) == Array(repeating: 100, count: 30))
        // Read alone, each summary is the same.
        let alone = try StoreReader(directory: dir.path + "/s")
        #expect(alone.summaryCache !== shared)
        #expect(try (0..<30).map { try alone.summary(of: $0) } == Array(summaries))
        // Out of order, and past the shared ones.
        try await store.append(Array(events[..<250]))
        try second.refresh()
        #expect(try second.summary(of: 32).count == 50)
        #expect(shared.summaries(of: second.log.blocks).count == 30)
        #expect(try second.summaries(through: 33).count == 33)
        #expect(shared.summaries(of: second.log.blocks).count == 33)
        // A reader that raced another adds only what is missing.
        try alone.refresh()
        let more = try (30..<33).map { try alone.summary(of: $0) }
        #expect(shared.extend(from: 30, with: more, of: alone.log.blocks)?.count == 33)
        #expect(shared.extend(from: 34, with: more, of: alone.log.blocks) == nil)
    }

    /// A log replaced under an open store (`touchlog migrate` renames its new log into place while a read-only
    /// server may be serving the old one): a reader of the new log never takes the old one's summaries from the
    /// cache they share, nor the other way round, however their reads alternate. (Without the blocks' hashes in the
    /// cache, the new log's reader took the old log's 40 summaries.)
    @Test func readersOfTwoLogsNeverTakeEachOthersSummaries() async throws {
        let dir = TemporaryDirectory()
        for (name, seed) in [("old", UInt64(21)), ("new", 22)] {
            let store = try TouchLogStore(directory: dir.path + "/" + name, options: Self.formatTwo, blockEvents: 50)
            let events = randomEvents(2_000, seed: seed + 100 * UInt64(name.count))
            for k in stride(from: 0, to: events.count, by: 400) { try await store.append(Array(events[k..<k + 400])) }
            store.close()
        }
        let cache = SummaryCache()
        let old = try StoreReader(directory: dir.path + "/old")
        old.summaryCache = cache
        let oldSummaries = Array(try old.summaries(through: 40))
        try SystemFile.rename(dir.path + "/old/log", dir.path + "/old/log-replaced")
        try SystemFile.rename(dir.path + "/new/log", dir.path + "/old/log")
        let new = try StoreReader(directory: dir.path + "/old")
        new.summaryCache = cache
        let newSummaries = Array(try StoreReader(directory: dir.path + "/old").summaries(through: 40))
        #expect(oldSummaries != newSummaries)
        // The old log's reader reads by path, so it finds the new log's blocks where its own were and refuses them
        // as damage; whatever it does answer is its own log's.
        for _ in 0..<2 {
            #expect(Array(try new.summaries(through: 40)) == newSummaries)
            #expect(try new.summary(of: 17) == newSummaries[17])
            if let summaries = try? old.summaries(through: 40) { #expect(Array(summaries) == oldSummaries) }
            if let summary = try? old.summary(of: 17) { #expect(summary == oldSummaries[17]) }
            #expect(Array(try new.summaries(through: 25)) == Array(newSummaries[..<25]))
        }
    }

    /// The blocks of one commit look up their strings together, before any gets its ids: a profile new to the
    /// store that several of them use is introduced by the first alone, and the later ones name it by that id.
    /// A reader loads many blocks' new profiles on every core and appends them in log order: the dictionary equals
    /// the one read a block at a time, erased profiles (format 3) empty in both.
    @Test(arguments: [UInt16(2), 3])
    func theDictionaryReadOnEveryCoreEqualsTheOneReadABlockAtATime(format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(
            directory: dir.path + "/s", options: LogOptions(formatVersion: format), blockEvents: 7)
        var events: [Event] = []
        for i in 0..<400 {
            events.append(
                Event(
                    time: Int64(1 + i), profile: "p\((i * 13) % 150)-\(i / 100)", type: .view, touchpoint: "t\(i % 5)"))
        }
        try await store.append(Array(events[..<200]))
        try await store.append(Array(events[200...]))
        if format == 3 { try await store.erase(profiles: ["p13-0", "p26-1"], reason: "test") }
        store.close()
        let whole = try StoreReader(directory: dir.path + "/s")
        try whole.loadDictionary()
        let stepwise = try StoreReader(directory: dir.path + "/s")
        for b in 0..<stepwise.log.blocks.count { try stepwise.loadDictionary(through: b) }
        #expect(whole.log.blocks.count > 40)
        #expect(whole.dictionary.profiles.count == Set(events.map(\.profile)).count)
        #expect(
            (0..<whole.dictionary.profiles.count).map { Array(whole.dictionary.profiles[$0]) }
                == (0..<stepwise.dictionary.profiles.count).map { Array(stepwise.dictionary.profiles[$0]) })
        #expect(whole.dictionary.profileBlocks == whole.log.blocks.count)
    }

    @Test func aProfileNewInSeveralBlocksOfOneCommitIsIntroducedOnce() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", options: Self.formatTwo, blockEvents: 7)
        try await store.append([Event(time: 1, profile: "known", type: .view, touchpoint: "t")])
        var events: [Event] = []
        for i in 0..<200 {
            // Each profile recurs every 30 events (about four blocks later); every block also brings new ones.
            events.append(
                Event(
                    time: Int64(2 + i), profile: i % 3 == 0 ? "known" : "p\((i * 7) % 30)-\(i / 60)",
                    type: .click, touchpoint: "t\(i % 4)"))
        }
        try await store.append(Array(events[..<100]))
        try await store.append(try EventBatch(events[100...]))
        store.close()
        let report = try StoreVerifier.verify(directory: dir.path + "/s")
        #expect(report.isIntact, "\(report.log.problems)")
        #expect(
            try StoreReader(directory: dir.path + "/s").events().map(\.event) == [
                Event(time: 1, profile: "known", type: .view, touchpoint: "t")
            ] + events)
        #expect(try StoreReader(directory: dir.path + "/s").stats().profiles == Set(events.map(\.profile)).count)
    }

    @Test(arguments: [UInt16(2), 3])
    func identifiersOfACommitThatNeverHappenedAreGivenAgainLater(format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(
            directory: dir.path + "/s", options: LogOptions(formatVersion: format), blockEvents: 100)
        try await store.append([Event(time: 1, profile: "old", type: .view, touchpoint: "t")])
        // Refused input: its new profiles must not keep ids that no block of the log introduces.
        let bad = dir.file(
            "bad.jsonl",
            """
            {"time":2,"profile":"new-1","type":"view","touchpoint":"t2"}
            {"time":3,"profile":"new-2","type":"view"}

            """)
        #expect(throws: TouchLogError.self) { try store.ingest([bad]) }
        try await store.append([
            Event(time: 4, profile: "new-2", type: .click, touchpoint: "t3"),
            Event(time: 5, profile: "old", type: .view, touchpoint: "t"),
        ])
        store.close()
        let report = try StoreVerifier.verify(directory: dir.path + "/s")
        #expect(report.isIntact, "\(report.log.problems)")
        let reopened = try TouchLogStore(directory: dir.path + "/s")
        try await reopened.append([Event(time: 6, profile: "new-1", type: .view, touchpoint: "t2")])
        #expect(
            try StoreReader(directory: dir.path + "/s").events().map(\.event.profile) == [
                "old", "new-2", "old", "new-1",
            ])
        #expect(try StoreVerifier.verify(directory: dir.path + "/s").isIntact)
    }
}
