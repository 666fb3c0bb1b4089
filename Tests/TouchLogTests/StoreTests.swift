import Glibc
import Testing
import TouchLogStorage

@testable import TouchLog

/// The JSON Lines `replay` would print for every event of a store.
func replayLines(_ directory: String, filter: ReplayFilter = ReplayFilter()) throws -> [UInt8] {
    let reader = try StoreReader(directory: directory)
    var out: [UInt8] = []
    try reader.forEachBlock(matching: filter) { block in
        for i in filter.matches(in: block) { EventJSON.appendLine(block, i, to: &out) }
    }
    return out
}

@Suite struct StoreTests {
    @Test func replayOutputAppendedToANewStoreGivesTheSameEventsAtTheSameOffsets() async throws {
        let dir = TemporaryDirectory()
        let events = randomEvents(3_000, seed: 11)
        let store = try TouchLogStore(directory: dir.path + "/a", blockEvents: 700)
        #expect(try await store.append(Array(events[..<1000])) == 0..<1000)
        #expect(try await store.append(Array(events[1000...])) == 1000..<3000)
        let stored = try StoreReader(directory: dir.path + "/a").events()
        #expect(stored.map(\.event) == events)
        #expect(stored.map(\.offset) == Array(0..<3000))

        let replay = dir.file("replay.jsonl", bytes: try replayLines(dir.path + "/a"))
        let copy = try TouchLogStore(directory: dir.path + "/b")
        let report = try copy.ingest([replay])
        #expect(report.offsets == 0..<3000)
        let copied = try StoreReader(directory: dir.path + "/b").events()
        #expect(copied.map(\.event) == events)
        #expect(copied.map(\.offset) == stored.map(\.offset))
    }

    @Test func oneInvalidLineAnywhereMeansNothingIsAppendedAndEveryProblemIsListed() throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 100)
        var lines = jsonLines(randomEvents(1_000, seed: 5)).split(separator: "\n").map(String.init)
        lines[10] = #"{"time":"bad","profile":"p","type":"view","touchpoint":"t"}"#
        lines[990] = "garbage"
        let input = dir.file("in.jsonl", lines.joined(separator: "\n") + "\n")
        #expect {
            try store.ingest([input])
        } throws: { error in
            let error = error as! TouchLogError
            return error.code == .invalidInput
                && error.problems.map(\.description) == [
                    #"11:9 bad time "bad": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds"#,
                    "991:1 expected '{' (each line must be one JSON object)",
                ]
                && error.message == "2 invalid lines; nothing appended"
        }
        #expect(try StoreReader(directory: dir.path + "/s").endOffset == 0)
        #expect(
            try StoreVerifier.verify(directory: dir.path + "/s").log.bytes == 32,
            "blocks written before the bad line were removed")
        #expect(store.endOffset == 0)
    }

    @Test func skipInvalidAppendsTheValidLinesAndHandsOutTheRejects() throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let input = dir.file(
            "in.csv",
            """
            time,profile,type,touchpoint,value
            2022-06-01T10:21:14.250Z,p-1,click,summer-2022-collection,
            2022-06-01T10:21:15Z,p-2,like,x,
            2022-06-02T08:00:00+02:00,p-1,conversion,,59.90
            """)
        var rejected: [(InputProblem, String)] = []
        let report = try store.ingest([input], options: IngestOptions(skipInvalid: true)) { problem, text in
            rejected.append((problem, String(decoding: text, as: UTF8.self)))
        }
        #expect(report.offsets == 0..<2)
        #expect(report.rejectedCount == 1)
        #expect(rejected.map(\.0.description) == [#"3:26 unknown type "like": expected view, click or conversion"#])
        #expect(rejected.map(\.1) == ["2022-06-01T10:21:15Z,p-2,like,x,"])
    }

    @Test func severalInputsAreOneCommitAndProblemsNameTheirInput() throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let a = dir.file("a.jsonl", jsonLines(randomEvents(10, seed: 1)))
        let b = dir.file("b.jsonl", "\n{}\n")
        #expect {
            try store.ingest([a, b])
        } throws: { error in
            (error as! TouchLogError).problems.map(\.description) == [dir.path + #"/b.jsonl:2 missing field "time""#]
        }
        #expect(try store.ingest([a, a]).offsets == 0..<20)
    }

    @Test func csvQuotedNewlinesLongLinesAndABOMAreHandled() throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let long = String(repeating: "x", count: 2 << 20)
        let input = dir.file(
            "in.csv", "\u{FEFF}time,profile,type,touchpoint\r\n1,\"p\nq\",view,t\r\n2,\(long),view,t\n3,p,view,t\n")
        var problems: [String] = []
        let report = try store.ingest([input], options: IngestOptions(skipInvalid: true)) { problem, _ in
            problems.append(problem.description)
        }
        #expect(report.offsets == 0..<2)
        #expect(problems == ["4 line is longer than 1048576 bytes"])
        #expect(try StoreReader(directory: dir.path + "/s").events().map(\.event.profile) == ["p\nq", "p"])
    }

    @Test func replayFiltersSelectExactlyWhatABruteForceFilterSelects() async throws {
        let dir = TemporaryDirectory()
        let events = randomEvents(5_000, seed: 21)
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 512)
        try await store.append(events)
        let reader = try StoreReader(directory: dir.path + "/s")
        var random = TestRandom(seed: 8)
        for _ in 0..<60 {
            var filter = ReplayFilter()
            if random.chance(0.4) { filter.fromOffset = UInt64(random.below(5_000)) }
            if random.chance(0.4) { filter.toOffset = UInt64(random.below(5_000)) }
            if random.chance(0.4) { filter.since = events[random.below(events.count)].time }
            if random.chance(0.4) { filter.until = events[random.below(events.count)].time }
            if random.chance(0.3) {
                filter.profiles = [events[random.below(100)].profile, events[random.below(5000)].profile, "nobody"]
            }
            // One profile: format 2 reads the profile ids of the blocks its summary leaves possible, and decodes only those holding it.
            if random.chance(0.3) { filter.profiles = [events[random.below(5000)].profile] }
            if random.chance(0.3) { filter.touchpoints = [events[random.below(5000)].touchpoint ?? "none"] }
            if random.chance(0.3) { filter.types = [EventType(rawValue: UInt8(random.below(3)))!] }
            let expected = events.enumerated().filter { offset, e in
                (filter.fromOffset.map { UInt64(offset) >= $0 } ?? true)
                    && (filter.toOffset.map { UInt64(offset) <= $0 } ?? true)
                    && (filter.since.map { e.time >= $0 } ?? true) && (filter.until.map { e.time <= $0 } ?? true)
                    && (filter.profiles.isEmpty || filter.profiles.contains(e.profile))
                    && (filter.touchpoints.isEmpty || e.touchpoint.map(filter.touchpoints.contains) == true)
                    && (filter.types.isEmpty || filter.types.contains(e.type))
            }.map { UInt64($0.offset) }
            #expect(try reader.events(matching: filter).map(\.offset) == expected)
        }
    }

    @Test func concurrentAppendsFromManyTasksLoseNothing() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<50 {
                group.addTask {
                    for i in 0..<4 {
                        try await store.append([
                            Event(time: Int64(i), profile: "task-\(task)", type: .view, touchpoint: "t\(i)")
                        ])
                    }
                }
            }
            try await group.waitForAll()
        }
        let events = try StoreReader(directory: dir.path + "/s").events()
        #expect(events.count == 200)
        #expect(
            Dictionary(grouping: events, by: \.event.profile).values.allSatisfy {
                $0.map(\.event.time) == [0, 1, 2, 3]
            })
        #expect(store.syncCount < 200)
    }

    /// `[Event]` appends build each block on its own (in parallel): the log must hold exactly what a batch append
    /// writes, and the first invalid event (in order, whichever thread finds it) is the one reported.
    @Test func eventArrayAppendsEqualBatchAppendsAndReportTheFirstInvalidEvent() async throws {
        let dir = TemporaryDirectory()
        let events = randomEvents(20_000, seed: 31)
        let byEvents = try TouchLogStore(directory: dir.path + "/a", blockEvents: 700)
        let byBatch = try TouchLogStore(directory: dir.path + "/b", blockEvents: 700)
        #expect(try await byEvents.append(events) == 0..<20_000)
        let batch = try EventBatch(events)
        #expect(
            (0..<batch.count).allSatisfy { i in
                batch.event(at: i) == events[i] && batch.time(at: i) == events[i].time
                    && batch.profile(at: i) == events[i].profile && batch.touchpoint(at: i) == events[i].touchpoint
                    && batch.type(at: i) == events[i].type && batch.value(at: i) == events[i].value
            })
        #expect(try await byBatch.append(batch) == 0..<20_000)
        let a = try StoreReader(directory: dir.path + "/a").events().map(\.event)
        #expect(a == events)
        #expect(a == (try StoreReader(directory: dir.path + "/b").events().map(\.event)))

        var bad = events
        bad[15_003].profile = ""
        bad[1_402].touchpoint = String(repeating: "t", count: 300)
        bad[1_402].type = .click
        await #expect {
            try await byEvents.append(bad)
        } throws: { error in
            (error as! TouchLogError).message
                == "nothing appended: event 1402: touchpoint is 300 bytes, over the 256-byte limit"
        }
        #expect(byEvents.endOffset == 20_000)
    }

    @Test func statsCountWhatIsInTheStore() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let events = randomEvents(2_000, seed: 2)
        try await store.append(events)
        let stats = try StoreReader(directory: dir.path + "/s").stats()
        #expect(stats.events == 2_000)
        #expect(stats.profiles == Set(events.map(\.profile)).count)
        #expect(stats.touchpoints == Set(events.compactMap(\.touchpoint)).count)
        #expect(stats.timeRange == events.map(\.time).min()!...events.map(\.time).max()!)
        #expect(stats.eventsByType[.click] == UInt64(events.filter { $0.type == .click }.count))
    }

    @Test func snapshotCreateLeavesSnapshotsAlongTheLogForPastQueries() async throws {
        let dir = TemporaryDirectory()
        let base: Int64 = 1_654_070_400_000
        let events = (0..<6_000).map { i in
            Event(
                time: base + Int64(i) * 1_000, profile: "p\(i % 700)", type: i % 3 == 0 ? .click : .view,
                touchpoint: "t\(i % 5)")
        }
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 500)
        try await store.append(events)
        let definition = try SegmentDefinition(
            json:
                #"{"name": "s", "match": "all", "rules": [{"interaction": "click", "touchpoint": {"startsWith": "t"}, "count": {"atLeast": 2}}]}"#
        )
        let reader = try StoreReader(directory: dir.path + "/s")
        reader.snapshotInterval = 1_000
        let info = try #require(try reader.createSnapshot(of: definition))
        #expect(info.endOffset == 6_000)
        // One every 1,000 events on the way to the end, not only the one at the end.
        #expect(reader.snapshots().map(\.endOffset).sorted() == [1_000, 2_000, 3_000, 4_000, 5_000, 6_000])
        // A past query starts from the one before its time, and answers as from the log.
        let past = QueryTime(asOf: base + 3_500 * 1_000)
        let fromSnapshot = try reader.members(of: definition, at: past)
        #expect(reader.lastQuery.snapshotOffset == 3_000)
        let fresh = try StoreReader(directory: dir.path + "/s")
        fresh.snapshotInterval = nil
        _ = system("rm -rf '\(dir.path)/s/snapshots'/*")
        #expect(try fresh.members(of: definition, at: past) == fromSnapshot)
        #expect(fresh.lastQuery.snapshotOffset == 0)
    }

    @Test func verifyFindsAStringThatTwoBlocksIntroduce() throws {
        let dir = TemporaryDirectory()
        // Each block is right in itself: the second takes the ids after the first's, but introduces "a" again (its
        // encoder was given a dictionary holding other strings).
        func batch(_ profiles: [String]) throws -> EventBatch {
            try EventBatch(
                profiles.enumerated().map {
                    Event(time: Int64($0.offset), profile: $0.element, type: .view, touchpoint: "t")
                })
        }
        var scratch = EventBlockCodec.EncodeScratch()
        func encode(_ batch: EventBatch, _ dictionary: inout StoreDictionary) -> RawBlock {
            GroupedBlockCodec.encode(
                GroupedBlockCodec.prepare(batch, range: 0..<batch.count, scratch: &scratch), dictionary: &dictionary)
        }
        var real = StoreDictionary()
        var other = StoreDictionary()
        let first = encode(try batch(["a", "b"]), &real)
        _ = encode(try batch(["x", "y"]), &other)
        let second = encode(try batch(["c", "a"]), &other)
        mkdir(dir.path + "/s", 0o755)
        let writer = try LogWriter(
            directory: dir.path + "/s/log", lockPath: dir.path + "/s/LOCK", options: LogOptions(formatVersion: 2))
        try writer.append([first])
        try writer.append([second])
        writer.close()
        let secondAt = try LogReader(directory: dir.path + "/s/log").blocks[1].position
        let report = try StoreVerifier.verify(directory: dir.path + "/s")
        #expect(
            report.log.problems.map(\.description)
                == [
                    "log/00000000000000000000.tlog block 1 at byte \(secondAt): bad block dictionary: new profile 0 was introduced before, as id 0"
                ])
    }

    @Test(arguments: [UInt16(1), 2, 3])
    func verifyChecksPayloadContentsNotJustChecksums(format: UInt16) async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", options: LogOptions(formatVersion: format))
        try await store.append(randomEvents(100, seed: 3))
        #expect(try StoreVerifier.verify(directory: dir.path + "/s").isIntact)
        // A block whose checksums are right but whose payload is not an event block (written below the domain layer).
        mkdir(dir.path + "/t", 0o755)
        let writer = try LogWriter(
            directory: dir.path + "/t/log", lockPath: dir.path + "/t/LOCK", options: LogOptions(formatVersion: format))
        let block =
            format == 1
            ? RawBlock(payload: [1, 2, 3], count: 1, minTime: 0, maxTime: 0)
            : RawBlock(summary: [1, 2, 3], body: [], count: 1, minTime: 0, maxTime: 0, version: format)
        try writer.append([block])
        let report = try StoreVerifier.verify(directory: dir.path + "/t")
        #expect(
            report.log.problems.map(\.description) == [
                format == 1
                    ? "log/00000000000000000000.tlog block 0 at byte 32: bad block payload: payload byte 3: unexpected end"
                    : "log/00000000000000000000.tlog block 0 at byte 32: bad block payload: payload byte 1: unknown summary layout 1"
            ])
    }
}
