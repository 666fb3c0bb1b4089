import Testing
import TouchLogStorage

@testable import TouchLog

/// Repeated "as of now" queries answered by live audiences (``LiveQueries``) against full evaluation by a reader of
/// its own: random definitions from the whole grammar, a clock that moves forward (to event times and window edges
/// as often as between them), commits and an erasure between the queries, and queries at earlier times mixed in
/// (which the live audience cannot answer and leaves to the usual path).
@Suite struct LiveQueryTests {
    typealias Differential = SegmentDifferentialTests

    @Test(arguments: [UInt64(21), 22, 23])
    func repeatedQueriesAsOfNowEqualFullEvaluation(seed: UInt64) async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let formatVersion: UInt16 = seed == 22 ? 1 : 3
        let data = try await Differential.dataset(seed: seed, store: path, formatVersion: formatVersion)
        var random = TestRandom(seed: seed &* 104_729)
        var catalog = Differential.Catalog()
        let definitions = try (0..<4).map { try catalog.next(&random, index: $0, store: path) }
        let store = try TouchLogStore(directory: path)
        defer { store.close() }
        // The generated events are from 2022: let any time count as "now".
        store.liveQueries.nowTolerance.store(.max, ordering: .relaxed)
        let reference = try StoreReader(directory: path)
        let segments = SegmentCatalog(layout: StoreLayout(root: path))
        var eventTimes = data.events.map(\.event.time)
        var time = Differential.start
        var live = 0
        var erased: String?
        let liveTest = LiveAudienceTests()
        for step in 0..<40 {
            time = LiveAudienceTests.nextTime(&random, after: time, eventTimes: eventTimes)
            if random.chance(0.4) {
                let events = (0..<(1 + random.below(8))).map { _ in liveTest.randomEvent(&random, near: time) }
                try await store.append(events)
                eventTimes += events.map(\.time)
            }
            if step == 25 && formatVersion >= 3 {
                let name = "p-\(random.below(50))"
                try await store.erase(profiles: [name], skipUnknown: true)
                erased = name
            }
            try reference.refresh()
            for definition in definitions {
                let resolved = try segments.resolve(definition)
                // Now and then a time before the last one asked (the usual path answers it).
                let asked = random.chance(0.1) ? time - Int64(random.below(86_400_000)) : time
                let full = try reference.members(of: resolved, at: QueryTime(asOf: asked))
                let members = try await store.members(of: resolved, at: QueryTime(asOf: asked))
                #expect(members == full, "\(resolved.json) as of \(asked), step \(step)")
                let count = try await store.count(of: resolved, at: QueryTime(asOf: asked))
                #expect(count == full.count, "\(resolved.json) as of \(asked), step \(step)")
                // (Right after the erasure; a later event may bring the name back as a new profile.)
                if step == 25, let erased { #expect(!members.contains(erased)) }
            }
            await store.liveBuildsFinished()
            live = max(live, store.liveAudiences.held)
        }
        #expect(live == definitions.count, "every definition asked again and again gets a live audience")
        #expect(store.liveAudiences.answered > definitions.count * 40, "most answers come from the live audiences")
    }

    /// A store's "now" answers: the time each was given at never goes back, and each equals full evaluation at it;
    /// a query at a time well before the wall clock is not "now" and builds no audience.
    @Test func answersAsOfNowGiveTheirTime() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        defer { store.close() }
        let now = Timestamp.now()
        try await store.append(
            (0..<200).map { i in
                Event(
                    time: now - Int64(i) * 60_000, profile: "p-\(i % 37)", type: i % 5 == 0 ? .conversion : .click,
                    touchpoint: "t-\(i % 3)")
            })
        let definition = try SegmentDefinition(
            json: #"{"name":"recent","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"t-1"},"#
                + #""timeframe":{"last":"1h"},"conversion":"not_converted"}]}"#)
        let old = QueryTime(asOf: now - 86_400_000)
        for _ in 0..<3 { _ = try await store.count(of: definition, at: old) }
        await store.liveBuildsFinished()
        #expect(store.liveAudiences.held == 0)
        var last = Int64.min
        for round in 0..<6 {
            if round == 3 {
                try await store.append([
                    Event(time: Timestamp.now(), profile: "late-comer", type: .click, touchpoint: "t-1")
                ])
            }
            let listed = try await store.answer(definition, at: nil, listing: true)
            let counted = try await store.answer(definition, at: nil, listing: false)
            let (asOf, members, countAsOf, count) = (listed.asOf, listed.members ?? [], counted.asOf, counted.count)
            #expect(asOf >= last && countAsOf >= asOf)
            last = countAsOf
            let reader = try StoreReader(directory: store.directory)
            #expect(members == (try reader.members(of: definition, at: QueryTime(asOf: asOf))))
            #expect(count == (try reader.count(of: definition, at: QueryTime(asOf: countAsOf))))
            if round >= 3 { #expect(members.contains("late-comer")) }
            await store.liveBuildsFinished()
        }
        #expect(store.liveAudiences == (1, 10), "the first ask and the one that starts the build run as usual")
    }

    /// Queries of one live audience that run at once share its reads of the log (one reads, the others wait and take
    /// what it read when it covers their commits): still, every query sees every commit acknowledged before it began.
    @Test func queriesAtOnceEachSeeEveryCommitBeforeThem() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        defer { store.close() }
        let definition = try SegmentDefinition(
            json: #"{"name":"clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"t"},"#
                + #""timeframe":{"last":"1h"}}]}"#)
        try await store.append([Event(time: Timestamp.now(), profile: "first", type: .click, touchpoint: "t")])
        for _ in 0..<2 { _ = try await store.answer(definition, at: nil, listing: false) }
        await store.liveBuildsFinished()
        let answeredBefore = store.liveAudiences.answered
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for i in 0..<25 {
                        let name = "p-\(task)-\(i)"
                        try await store.append([
                            Event(time: Timestamp.now(), profile: name, type: .click, touchpoint: "t")
                        ])
                        let answer = try await store.answer(definition, at: nil, listing: true)
                        #expect(answer.members?.contains(name) == true, "\(name) was appended before the query")
                        #expect(answer.count >= 1 + i + 1)
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(store.liveAudiences.answered - answeredBefore == 200, "the live audience answered every query")
        #expect(try await store.answer(definition, at: nil, listing: false).count == 201)
    }

    /// A store's queries run on threads at the priority it was opened with (Linux: their nice value).
    @Test func queriesRunAtTheStoresPriority() async throws {
        #expect(QueryPriority(nice: 40).nice == 19)
        #expect(QueryPriority(nice: -5).nice == 0)
        let dir = TemporaryDirectory()
        for priority in [QueryPriority.belowAppends, .normal] {
            let store = try TouchLogStore(directory: dir.path + "/s", queryPriority: priority)
            defer { store.close() }
            let nice = try await store.read("nice") { _ in Platform.currentThreadNice() }
            #if os(Linux)
                #expect(nice == priority.nice)
            #else
                _ = nice
            #endif
        }
    }
}
