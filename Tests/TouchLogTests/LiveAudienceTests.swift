import Testing
import TouchLogStorage

@testable import TouchLog

/// Live audiences against full evaluation: random definitions from the whole grammar (references included), a
/// simulated clock that only moves forward, in steps that land on event times and window edges as often as between
/// them, and commits between the steps (late events, events stamped ahead of the clock, conversions, new
/// profiles). At every step the members kept from the live audience's entries and exits equal the engine's full
/// answer at that time (the engine itself is checked against SQL by ``SegmentDifferentialTests``).
@Suite struct LiveAudienceTests {
    typealias Differential = SegmentDifferentialTests

    @Test(arguments: [UInt64(11), 12, 13, 14])
    func liveAudiencesEqualFullEvaluationAtEveryStep(seed: UInt64) async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let data = try await Differential.dataset(seed: seed, store: path, formatVersion: seed % 2 == 0 ? 3 : 1)
        var random = TestRandom(seed: seed &* 7919)
        var catalog = Differential.Catalog()
        let definitions = try (0..<5).map { try catalog.next(&random, index: $0, store: path) }
        let store = try TouchLogStore(directory: path)
        defer { store.close() }
        let reader = try StoreReader(directory: path)
        let segments = SegmentCatalog(layout: StoreLayout(root: path))
        var eventTimes = data.events.map(\.event.time)
        var steps = 0
        var changes = 0
        // Decoded blocks shared by all the audiences, as a store's watches share them (small, so blocks also leave it).
        let shared = DecodedBlockCache(capacity: 200)
        for (index, definition) in definitions.enumerated() {
            let resolved = try segments.resolve(definition)
            let live = LiveAudience(resolved, erasures: 0)
            var kept = Set<String>()
            var time = Differential.start - 2 * 86_400_000
            for _ in 0..<30 {
                time = Self.nextTime(&random, after: time, eventTimes: eventTimes)
                if random.chance(0.35) {
                    let events = (0..<(1 + random.below(8))).map { _ in randomEvent(&random, near: time) }
                    try await store.append(events)
                    eventTimes += events.map(\.time)
                    try reader.refresh()
                }
                let (entered, exited) = try live.advance(reader, to: time, blocks: index % 2 == 0 ? shared : nil)
                #expect(Set(entered).isDisjoint(with: exited))
                #expect(entered.allSatisfy { !kept.contains($0) } && exited.allSatisfy { kept.contains($0) })
                kept.formUnion(entered)
                kept.subtract(exited)
                changes += entered.count + exited.count
                let full = try reader.members(of: resolved, at: QueryTime(asOf: time))
                #expect(
                    kept.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } == full,
                    "\(resolved.json) as of \(time)")
                // Listed at some steps only, so the changes of several steps meet at a listing (a watch lists once).
                if random.chance(0.5) { #expect(live.members == full) }
                #expect(live.memberCount == full.count)
                steps += 1
            }
        }
        #expect(steps == definitions.count * 30)
        #expect(changes > 0, "the steps should move some profiles in or out")
    }

    /// The simulated clock's next time: forward by a random span (minutes to days), to just before, on or after an
    /// event's time or a window edge, or not at all.
    static func nextTime(_ random: inout TestRandom, after time: Int64, eventTimes: [Int64]) -> Int64 {
        let candidate: Int64
        switch random.below(6) {
        case 0: candidate = time
        case 1: candidate = time + Int64(random.below(2 * 3_600_000))
        case 2: candidate = time + Int64(random.below(3 * 86_400_000))
        default:
            let edge = [0, 3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000][random.below(5)]
            candidate = eventTimes[random.below(eventTimes.count)] + Int64(edge) + Int64(random.below(3)) - 1
        }
        return max(time, candidate)
    }

    /// An event around the clock: mostly in the last days, some late (weeks back), some stamped ahead of it.
    func randomEvent(_ random: inout TestRandom, near time: Int64) -> Event {
        let roll = random.below(100)
        let type: EventType = roll < 45 ? .view : roll < 80 ? .click : .conversion
        let touchpoints = Differential.touchpoints
        let touchpoint: String? =
            type == .conversion && random.chance(0.5) ? nil : touchpoints[random.below(touchpoints.count)]
        var at = time - Int64(random.below(3 * 86_400_000))
        if random.chance(0.2) { at = time - Int64(random.below(40 * 86_400_000)) }
        if random.chance(0.15) { at = time + Int64(random.below(86_400_000)) }
        if random.chance(0.5) { at -= (at - Differential.start) % 21_600_000 }
        let profile = random.chance(0.8) ? "p-\(random.below(50))" : "new-\(random.below(1_000))"
        return Event(
            time: at, profile: profile, type: type, touchpoint: touchpoint,
            value: random.chance(type == .conversion ? 0.8 : 0.2) ? Double(random.below(10_000)) / 100 : nil)
    }

    /// Events near a window's start are kept until they leave it: a profile with two clicks in the last hour leaves
    /// the audience when the first is an hour old, also after steps that re-checked it (and dropped what had left).
    @Test func eventsAreKeptUntilTheyLeaveTheWindow() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        defer { store.close() }
        let t0 = Differential.start
        let minute: Int64 = 60_000
        try await store.append([
            Event(time: t0 - 3 * 60 * minute, profile: "a", type: .click, touchpoint: "x"),
            Event(time: t0, profile: "a", type: .click, touchpoint: "x"),
            Event(time: t0 + 30 * minute, profile: "a", type: .click, touchpoint: "x"),
            Event(time: t0 + 40 * minute, profile: "a", type: .conversion),
        ])
        let definition = try SegmentDefinition(
            json: #"{"name":"twice","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"x"},"#
                + #""timeframe":{"last":"1h"},"#
                + #""count":{"atLeast":2}}]}"#)
        let live = LiveAudience(definition, erasures: 0)
        let reader = try StoreReader(directory: store.directory)
        var members: [String] = []
        for (at, expected) in [(35, ["a"]), (50, ["a"]), (55, ["a"]), (60, ["a"]), (61, []), (95, [])] {
            let (entered, exited) = try live.advance(reader, to: t0 + Int64(at) * minute)
            members = Set(members).union(entered).subtracting(exited).sorted()
            #expect(members == expected, "at t0 + \(at) min")
            #expect(try reader.members(of: definition, at: QueryTime(asOf: t0 + Int64(at) * minute)) == expected)
        }
    }

    /// A step re-checks only the profiles whose membership a commit can change: not those whose new events no rule can
    /// count (another type or touchpoint, or a click long out of the window), and a profile's next change is queued
    /// again only when it moved, so that a profile with many new events keeps one entry in the queue.
    @Test func aStepChecksOnlyWhatItCanChange() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        defer { store.close() }
        let t0 = Differential.start
        let minute: Int64 = 60_000
        var events: [Event] = []
        for i in 0..<300 {
            events.append(Event(time: t0 - 10 * minute, profile: "view-\(i)", type: .view, touchpoint: "x"))
            events.append(Event(time: t0 - 10 * minute, profile: "other-\(i)", type: .click, touchpoint: "y"))
            events.append(Event(time: t0 - 2 * 1440 * minute, profile: "old-\(i)", type: .click, touchpoint: "x"))
        }
        for i in 0..<10 { events.append(Event(time: t0 - minute, profile: "new-\(i)", type: .click, touchpoint: "x")) }
        try await store.append(events)
        let definition = try SegmentDefinition(
            json: #"{"name":"recent","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"x"},"#
                + #""timeframe":{"last":"1h"}}]}"#)
        let live = LiveAudience(definition, erasures: 0)
        let reader = try StoreReader(directory: store.directory)
        _ = try live.advance(reader, to: t0)
        #expect(live.memberCount == 10)
        #expect(live.checks == 10, "only the profiles with a click in the window are checked")
        #expect(live.queuedChanges == 10)
        // Each new click of new-0 is later than its first, which leaves the window first: its next change stays.
        for step in 1...50 {
            try await store.append([
                Event(time: t0 + Int64(step) * 1000, profile: "new-0", type: .click, touchpoint: "x")
            ])
            try reader.refresh()
            _ = try live.advance(reader, to: t0 + Int64(step) * 1000)
        }
        #expect(live.checks == 60)
        #expect(live.queuedChanges == 10, "one entry per profile, not one per step")
        #expect(live.memberCount == (try reader.count(of: definition, at: QueryTime(asOf: t0 + 50_000))))
    }

    /// Entries, exits and listings are sorted by a prefix key first: the same order as comparing all the bytes, for
    /// names sharing their first 8 bytes or more, shorter than 8, empty, and beyond ASCII.
    @Test func namesSortByBytesAsAWhole() {
        var random = TestRandom(seed: 5)
        let alphabet = ["a", "b", "z", "0", "-", "é", "ü", "中", "😀", "A"]
        for count in [0, 1, 2, 63, 64, 65, 1000] {
            let names = (0..<count).map { _ -> String in
                let prefix = ["", "customer-", "customer-0000", "p"][random.below(4)]
                return prefix + (0..<random.below(12)).map { _ in alphabet[random.below(alphabet.count)] }.joined()
            }
            let expected = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            #expect(LiveAudience.sortedByBytes(names) == expected)
        }
    }

    /// A window's next change: an event enters `last` at its time and leaves a millisecond after the window's length;
    /// enters `before` a millisecond after it; a calendar week's window drops it when the next week starts.
    @Test func aWindowsNextChangeIsWhenTheEventEntersOrLeavesIt() {
        let t: Int64 = 1_663_545_600_000  // Monday 2022-09-19T00:00:00Z
        let day: Int64 = 86_400_000
        typealias Timeframe = InteractionRule.Timeframe
        #expect(Timeframe.last(milliseconds: day).nextChange(of: t, after: t - 5) == t)
        #expect(Timeframe.last(milliseconds: day).nextChange(of: t, after: t) == t + day + 1)
        #expect(Timeframe.last(milliseconds: day).nextChange(of: t, after: t + day + 1) == nil)
        #expect(Timeframe.before(milliseconds: day).nextChange(of: t, after: t) == t + day + 1)
        #expect(Timeframe.before(milliseconds: day).nextChange(of: t, after: t + day + 1) == nil)
        #expect(Timeframe.allTime.nextChange(of: t, after: t - 1) == t)
        #expect(Timeframe.allTime.nextChange(of: t, after: t) == nil)
        #expect(Timeframe.between(from: t + 1, to: nil).nextChange(of: t, after: t - 1) == nil)
        let week = Timeframe.calendar(CalendarWindow(unit: .week, count: 1, timeZone: "UTC"))
        #expect(week.nextChange(of: t + 3 * day, after: t + 3 * day) == t + 7 * day)
        let twoWeeks = Timeframe.calendar(CalendarWindow(unit: .week, count: 2, timeZone: "UTC"))
        #expect(twoWeeks.nextChange(of: t + 3 * day, after: t + 4 * day) == t + 14 * day)
    }
}
