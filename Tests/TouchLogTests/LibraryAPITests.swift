import Synchronization
import Testing
import TouchLog
import TouchLogTestSupport

/// A clock a test moves by hand, for watches (or a count tasks share).
final class TestClock: Sendable {
    private let value: Mutex<Int64>
    init(_ start: Int64) { value = Mutex(start) }
    func set(_ ms: Int64) { value.withLock { $0 = ms } }
    func advance() { value.withLock { $0 += 1 } }
    func read() -> Int64 { value.withLock { $0 } }
}

private let hour: Int64 = 3_600_000
private let t0: Int64 = 1_654_070_400_000  // 2022-06-01T08:00:00Z

private func clickersNotConverted(window: String) throws -> SegmentDefinition {
    try SegmentDefinition(
        json: """
            {"name":"promo-clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"},
             "timeframe":{"last":"\(window)"},"conversion":"not_converted"}]}
            """)
}

/// Watch options for a clock that stands at `t0 + hour`: evaluated at each commit, rechecked once a minute.
private func fixedClockOptions(includeInitialMembers: Bool) -> SegmentWatchOptions {
    var options = SegmentWatchOptions(
        recheckInterval: .seconds(60), minimumInterval: .milliseconds(1), includeInitialMembers: includeInitialMembers)
    options.clock = { t0 + hour }
    return options
}

/// The public API as a service uses it: many tasks at once, read-only handles, tails and watches.
///
/// The time limit only catches a hang: in the full run these tests share Swift's two cooperative threads with the
/// CPU-bound differential tests, and can wait minutes for one.
@Suite(.timeLimit(.minutes(10))) struct LibraryAPITests {
    @Test func concurrentAppendersLoseNothingWhileQueriesRun() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 64)
        try await store.putSegment(try clickersNotConverted(window: "3650d"))
        let tasks = 16
        let appendsPerTask = 25
        let eventsPerAppend = 40
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for n in 0..<appendsPerTask {
                        let events = (0..<eventsPerAppend).map { i in click("t\(task)-a\(n)-e\(i)", at: t0 + Int64(i)) }
                        // Half the tasks send JSON Lines, as the HTTP server does; the others send events.
                        let offsets: Range<UInt64>
                        if task % 2 == 0 {
                            offsets = try await store.append(contentsOf: Array(jsonLines(events).utf8)).offsets
                        } else {
                            offsets = try await store.append(events)
                        }
                        #expect(offsets.count == eventsPerAppend)
                    }
                }
            }
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<10 {
                        _ = try await store.members(of: "promo-clickers", at: QueryTime(asOf: t0 + hour))
                    }
                }
            }
            try await group.waitForAll()
        }
        let total = tasks * appendsPerTask * eventsPerAppend
        let events = try await store.events()
        #expect(events.count == total)
        #expect(events.map(\.offset) == (0..<UInt64(total)).map { $0 })
        // Every append is whole and contiguous: its events sit together in order.
        for start in stride(from: 0, to: total, by: eventsPerAppend) {
            let name = events[start].event.profile
            let prefix = name.prefix(while: { $0 != "e" })
            #expect(
                events[start..<start + eventsPerAppend].map(\.event.profile)
                    == (0..<eventsPerAppend).map { "\(prefix)e\($0)" })
        }
        #expect(Set(events.map(\.event.profile)).count == total)
        #expect(try await store.members(of: "promo-clickers", at: QueryTime(asOf: t0 + hour)).count == total)
        #expect(try await store.count(of: "promo-clickers", at: QueryTime(asOf: t0 + hour)) == total)
    }

    @Test func aReadOnlyStoreAnswersQueriesAndRefusesChanges() async throws {
        let dir = TemporaryDirectory()
        #expect(throws: TouchLogError.self) { try TouchLogStore(readingFrom: dir.path + "/none") }
        let writer = try TouchLogStore(directory: dir.path + "/s")
        try await writer.putSegment(try clickersNotConverted(window: "1d"))
        try await writer.append([click("a", at: t0), click("b", at: t0 + hour)])
        let reader = try TouchLogStore(readingFrom: dir.path + "/s")
        #expect(reader.isReadOnly)
        #expect(try await reader.members(of: "promo-clickers", at: QueryTime(asOf: t0 + 2 * hour)) == ["a", "b"])
        try await writer.append([Event(time: t0 + 2 * hour, profile: "a", type: .conversion)])
        #expect(try await reader.members(of: "promo-clickers", at: QueryTime(asOf: t0 + 2 * hour)) == ["b"])
        #expect(reader.endOffset == 3)
        let diff = try await reader.diff(
            "promo-clickers", from: QueryTime(asOf: t0 + 90 * 60_000), to: QueryTime(asOf: t0 + 2 * hour))
        #expect(diff.exited == ["a"])
        #expect(diff.entered == [])
        let explanation = try await reader.explain("promo-clickers", profile: "b", at: QueryTime(asOf: t0 + 2 * hour))
        #expect(explanation.isMember)
        await #expect {
            try await reader.append([click("c", at: t0)])
        } throws: { ($0 as? TouchLogError)?.code == .readOnly }
        await #expect(throws: TouchLogError.self) {
            try await reader.putSegment(try clickersNotConverted(window: "2d"))
        }
        #expect(try await reader.verify().isIntact)
        #expect(try await reader.stats().events == 3)
    }

    /// Reads write nothing unless the store's snapshot policy says so: a read-only store by default saves no snapshot,
    /// nor does a writer with `.never`; `.automatic` saves them on either, and making them on request works on both.
    @Test func queriesSaveSnapshotsOnlyWhenTheStoresPolicySaysSo() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let everClicked = try SegmentDefinition(
            json: #"{"name":"ever","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"}}]}"#)
        do {
            let writer = try TouchLogStore(directory: path, blockEvents: 100, snapshots: .never)
            try await writer.putSegment(everClicked)
            try await writer.append((0..<2_000).map { click("p-\($0 % 300)", at: t0 + Int64($0)) })
            #expect(try await writer.count(of: "ever") == 300)
            #expect(try writer.snapshots().isEmpty, "a writer with .never")
            writer.close()
        }
        let reader = try TouchLogStore(readingFrom: path)
        #expect(reader.snapshotPolicy == .never)
        #expect(try await reader.count(of: "ever") == 300)
        #expect(try reader.snapshots().isEmpty, "a read-only store by default")

        let saving = try TouchLogStore(readingFrom: path, snapshots: .automatic(every: 100))
        #expect(try await saving.count(of: "ever") == 300)
        #expect(try saving.snapshots().map(\.segment).contains("ever"), "a read-only store with .automatic")
        try await saving.pruneSnapshots(keep: 0)
        #expect(try saving.snapshots().isEmpty)

        let writer = try TouchLogStore(directory: path, snapshots: .automatic(every: 100))
        #expect(writer.snapshotPolicy == .automatic(every: 100))
        #expect(try await writer.count(of: "ever") == 300)
        #expect(try !writer.snapshots().isEmpty, "a writer with .automatic")
        writer.close()

        try await reader.pruneSnapshots(keep: 0)
        let made = try await reader.createSnapshots()
        #expect(made.map(\.segment) == ["ever"])
        #expect(made[0].helps && made[0].snapshot != nil, "made on request by a read-only store")
        #expect(try await reader.createSnapshots(of: "ever")[0].snapshot == nil, "already at the end of the log")
        await #expect { try await reader.createSnapshots(of: "nope") } throws: {
            ($0 as? TouchLogError)?.code == .notFound
        }
    }

    @Test func invalidLinesInMemoryAreRefusedLikeAFileAndNothingIsAppended() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let body = Array(
            (jsonLines([click("a", at: t0)]) + "{\"time\":\"x\"}\n" + jsonLines([click("b", at: t0)])).utf8)
        await #expect {
            try await store.append(contentsOf: body)
        } throws: { error in
            let error = error as! TouchLogError
            return error.code == .invalidInput
                && error.problems.map(\.description) == [
                    #"2:9 bad time "x": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds"#
                ]
        }
        #expect(store.endOffset == 0)
        let report = try await store.append(contentsOf: body, options: IngestOptions(skipInvalid: true))
        #expect(report.offsets == 0..<2)
        #expect(report.rejectedCount == 1)
        let csv = try await store.append(
            contentsOf: Array("time,profile,type,touchpoint,value\n1654070400000,c,view,promo,\n".utf8))
        #expect(csv.offsets == 2..<3)
        #expect(
            try await store.events(matching: ReplayFilter(fromOffset: 2)).map(\.event) == [
                Event(time: t0, profile: "c", type: .view, touchpoint: "promo")
            ])
    }

    @Test func aTailDeliversCommittedEventsThenEachNewCommitInOrder() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 100)
        try await store.append((0..<1_000).map { click("p\($0)", at: t0 + Int64($0)) })
        var fromStart = store.tail(from: 0).makeAsyncIterator()
        var onlyNew = store.tail(matching: ReplayFilter(types: [.conversion])).makeAsyncIterator()
        var received: [StoredEvent] = []
        for _ in 0..<1_000 { received.append(try await fromStart.next()!) }
        #expect(received.map(\.offset) == (0..<1_000).map { UInt64($0) })
        let writer = Task {
            for round in 0..<5 {
                try await Task.sleep(for: .milliseconds(20))
                try await store.append(
                    (0..<100).map { i in
                        i == 99
                            ? Event(time: t0, profile: "r\(round)", type: .conversion) : click("r\(round)-\(i)", at: t0)
                    })
            }
        }
        for _ in 0..<500 { received.append(try await fromStart.next()!) }
        #expect(received.map(\.offset) == (0..<1_500).map { UInt64($0) })
        #expect(received[1_000].event.profile == "r0-0")
        var conversions: [String] = []
        for _ in 0..<5 { conversions.append(try await onlyNew.next()!.event.profile) }
        #expect(conversions == ["r0", "r1", "r2", "r3", "r4"])
        try await writer.value
        // Closing the store ends its tails.
        let waiting = Task { [fromStart] in
            var iterator = fromStart
            return try await iterator.next()
        }
        try await Task.sleep(for: .milliseconds(20))
        store.close()
        #expect(try await waiting.value == nil)
    }

    @Test func aReplayEndsAtTheEndOfTheLogAndATailStopsWhenCancelled() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 10)
        try await store.append((0..<95).map { click("p\($0 % 7)", at: t0 + Int64($0)) })
        var replayed: [UInt64] = []
        for try await event in store.replay(matching: ReplayFilter(fromOffset: 5, toOffset: 80, profiles: ["p3"])) {
            replayed.append(event.offset)
        }
        let expected: [UInt64] = (5...80).filter { $0 % 7 == 3 }.map { UInt64($0) }
        #expect(replayed == expected)
        let (delivered, counted) = AsyncStream<Int>.makeStream()
        let tail = Task {
            var count = 0
            for try await _ in store.tail(from: 90) {
                count += 1
                counted.yield(count)
            }
            return count
        }
        for await count in delivered where count == 5 { break }
        tail.cancel()
        #expect(try await tail.value == 5)
    }

    @Test func aReadOnlyTailPollsForTheWritersCommits() async throws {
        let dir = TemporaryDirectory()
        let writer = try TouchLogStore(directory: dir.path + "/s")
        let reader = try TouchLogStore(readingFrom: dir.path + "/s")
        var tail = reader.tail(from: 0, pollInterval: .milliseconds(5)).makeAsyncIterator()
        try await writer.append([click("a", at: t0)])
        #expect(try await tail.next()?.event.profile == "a")
        try await writer.append([click("b", at: t0)])
        #expect(try await tail.next()?.event.profile == "b")
    }

    @Test func aWatchReportsEntriesAndExitsFromCommitsTimeAndNewVersions() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await store.putSegment(try clickersNotConverted(window: "1d"))
        try await store.append([click("a", at: t0), click("z", at: t0, "other")])
        let clock = TestClock(t0 + hour)
        var options = SegmentWatchOptions(recheckInterval: .milliseconds(30), minimumInterval: .milliseconds(1))
        options.clock = { clock.read() }
        var watch = store.watch("promo-clickers", options: options).makeAsyncIterator()

        let initial = try await watch.next()!
        #expect(initial.isInitial)
        #expect(initial.entered == ["a"])
        #expect(initial.exited == [])
        #expect(initial.version == 1)
        #expect(initial.endOffset == 2)

        try await store.append([click("b", at: t0 + 2 * hour)])
        clock.set(t0 + 3 * hour)
        let entry = try await watch.next()!
        #expect(!entry.isInitial)
        #expect(entry.entered == ["b"])
        #expect(entry.exited == [])
        #expect(entry.endOffset == 3)
        #expect(entry.asOf == t0 + 3 * hour)

        try await store.append([Event(time: t0 + 3 * hour, profile: "a", type: .conversion)])
        let conversion = try await watch.next()!
        #expect(conversion.entered == [])
        #expect(conversion.exited == ["a"])

        // Nothing committed: b's click leaves the 1-day window as time passes.
        clock.set(t0 + 2 * hour + 86_400_000 + 1)
        let aged = try await watch.next()!
        #expect(aged.entered == [])
        #expect(aged.exited == ["b"])
        #expect(aged.endOffset == 4)

        try await store.putSegment(try clickersNotConverted(window: "30d"))
        let widened = try await watch.next()!
        #expect(widened.version == 2)
        #expect(widened.entered == ["b"])
        #expect(widened.exited == [])

        try await store.removeSegment("promo-clickers")
        await #expect {
            _ = try await watch.next()
        } throws: { ($0 as? TouchLogError)?.code == .notFound }
    }

    /// Many watches wait at once (the store steps them in rounds): one commit reaches each with its own segment's
    /// change, a commit that touches one segment wakes only its watch, and cancelling the others ends just them.
    @Test func manyWatchesEachSeeTheirOwnSegmentAndEndAlone() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        defer { store.close() }
        let count = 24
        for i in 0..<count {
            try await store.putSegment(
                try SegmentDefinition(
                    json: """
                        {"name":"s\(i)","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"tp\(i)"}}]}
                        """))
        }
        try await store.append((0..<count).map { click("old\($0)", at: t0, "tp\($0)") })
        let options = fixedClockOptions(includeInitialMembers: true)
        // Each watch: its initial members, the update of a commit that changes every segment, then the next one.
        let ready = TestClock(0)
        let firstSeen = TestClock(0)
        let tasks = (0..<count).map { i in
            Task {
                var iterator = store.watch("s\(i)", options: options).makeAsyncIterator()
                let initial = try await iterator.next()
                ready.advance()
                let first = try await iterator.next()
                firstSeen.advance()
                let second = try await iterator.next()
                return [initial, first, second]
            }
        }
        func waitFor(_ counter: TestClock) async throws {
            while counter.read() < count { try await Task.sleep(for: .milliseconds(5)) }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await waitFor(ready)
        try await store.append((0..<count).map { click("new\($0)", at: t0, "tp\($0)") })
        try await waitFor(firstSeen)
        // A commit that touches segment 5 only: its watch reports it, the others wait until they are cancelled.
        try await store.append([click("late", at: t0, "tp5"), click("nobody", at: t0, "elsewhere")])
        let five = try await tasks[5].value
        try await Task.sleep(for: .milliseconds(100))
        for (i, task) in tasks.enumerated() where i != 5 { task.cancel() }
        for (i, task) in tasks.enumerated() {
            let updates = try await task.value
            #expect(updates[0]?.entered == ["old\(i)"])
            #expect(updates[1]?.entered == ["new\(i)"] && updates[1]?.exited == [])
            if i == 5 { continue }
            #expect(updates[2] == nil, "watch \(i) has no update: its segment did not change")
        }
        #expect(five[2]?.entered == ["late"])
    }

    @Test func closingTheStoreEndsEveryWaitingWatch() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await store.putSegment(try clickersNotConverted(window: "1d"))
        let options = fixedClockOptions(includeInitialMembers: false)
        let tasks = (0..<3).map { _ in
            Task {
                var iterator = store.watch("promo-clickers", options: options).makeAsyncIterator()
                return try await iterator.next()
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        store.close()
        for task in tasks { #expect(try await task.value == nil) }
    }

    @Test func aWatchOfAReadOnlyStoreSeesTheWritersCommits() async throws {
        let dir = TemporaryDirectory()
        let writer = try TouchLogStore(directory: dir.path + "/s")
        try await writer.putSegment(try clickersNotConverted(window: "1d"))
        let reader = try TouchLogStore(readingFrom: dir.path + "/s")
        var options = fixedClockOptions(includeInitialMembers: true)
        options.pollInterval = .milliseconds(5)
        var watch = reader.watch("promo-clickers", options: options).makeAsyncIterator()
        // The initial members fix what the watch has seen: the writer's commit comes after them.
        #expect(try await watch.next()?.entered == [])
        try await writer.append([click("a", at: t0)])
        let update = try await watch.next()
        #expect(update?.entered == ["a"])
        #expect(update?.isInitial == false)
    }
}
