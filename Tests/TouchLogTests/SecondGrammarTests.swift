import Testing

@testable import TouchLog

/// The second part of the grammar (sequences, values, `before` and `calendar` windows, segment references) on its
/// own: parsing and round trips, the refusals a catalog makes, and the edges each construct is defined by.
@Suite struct SecondGrammarTests {
    static func definition(_ name: String, _ rules: String, match: String = "all") throws -> SegmentDefinition {
        try SegmentDefinition(json: #"{"name":"\#(name)","match":"\#(match)","rules":[\#(rules)]}"#)
    }

    @Test func everyNewConstructParsesAndRoundTrips() throws {
        let text = #"""
            {"name":"second","match":"all","rules":[
              {"sequence":[{"interaction":"view","touchpoint":{"exactly":"product"}},{"interaction":"click","touchpoint":{"startsWith":"offer"}},
                           {"interaction":"conversion"}],"within":"1d","timeframe":{"calendar":{"unit":"week","count":2,"timeZone":"Europe/Amsterdam"}}},
              {"interaction":"conversion","timeframe":{"last":"90d"},"value":{"sum":{"atLeast":200}}},
              {"interaction":"conversion","value":{"avg":{"atLeast":10.5,"atMost":99.99}},"count":{"atLeast":2}},
              {"interaction":"any","touchpoint":{"contains":"x"},"timeframe":{"before":"30d"},"negate":true},
              {"interaction":"view","touchpoint":{"exactly":"y"},"timeframe":{"calendar":{"unit":"month"}}},
              {"match":"any","rules":[{"segment":"other","negate":true},{"segment":"third"}]}]}
            """#
        let definition = try SegmentDefinition(json: text)
        #expect(try SegmentDefinition(json: definition.json) == definition)
        guard case .sequence(let sequence, negate: false) = definition.rules[0] else {
            Issue.record("sequence expected")
            return
        }
        #expect(sequence.steps.count == 3 && sequence.within == 86_400_000)
        #expect(sequence.timeframe == .calendar(CalendarWindow(unit: .week, count: 2, timeZone: "Europe/Amsterdam")))
        guard case .interaction(let sum, _) = definition.rules[1],
            case .interaction(let before, true) = definition.rules[3],
            case .interaction(let month, _) = definition.rules[4]
        else {
            Issue.record("interaction rules expected")
            return
        }
        #expect(sum.value == .init(.sum, atLeast: 200))
        #expect(before.timeframe == .before(milliseconds: 30 * 86_400_000))
        #expect(
            month.timeframe == .calendar(CalendarWindow(unit: .month, count: 1, timeZone: "UTC")),
            "count 1 and UTC by default")
        #expect(definition.referencedNames == ["other", "third"])
        #expect(definition.references.map(\.path) == ["rules[5].rules[0].segment", "rules[5].rules[1].segment"])
    }

    @Test func referencesAreCheckedWhenADefinitionIsPutAndWhenOneIsRemoved() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let plain = #"{"interaction":"conversion"}"#
        // A reference to a segment that does not exist.
        await #expect { try await store.putSegment(try Self.definition("a", #"{"segment":"b"}"#)) } throws: { error in
            let e = error as! TouchLogError
            return e.code == .invalidInput && e.message == "rules[0].segment: no segment named \"b\""
        }
        try await store.putSegment(try Self.definition("b", plain))
        try await store.putSegment(
            try Self.definition(
                "a", #"{"interaction":"view","touchpoint":{"exactly":"x"}},{"segment":"b","negate":true}"#))
        try await store.putSegment(try Self.definition("c", #"{"segment":"a"}"#))
        // Closing a cycle names its members.
        await #expect {
            try await store.putSegment(try Self.definition("b", #"{"match":"any","rules":[{"segment":"c"}]}"#))
        } throws: { error in
            "\(error)" == #"rules[0].rules[0].segment: refers back to itself: "b" → "c" → "a" → "b" is a cycle"#
        }
        await #expect { try await store.putSegment(try Self.definition("d", #"{"segment":"d"}"#)) } throws: {
            "\($0)".contains(#""d" → "d" is a cycle"#)
        }
        // Removing a referenced segment names the referrers; removing the referrers first works.
        await #expect { try await store.removeSegment("b") } throws: { error in
            let e = error as! TouchLogError
            return e.code == .conflict && e.message == #"segment "b" is referred to by "a": change or remove it first"#
        }
        // Reading a definition resolves what it refers to, directly or not.
        #expect(try store.segments.current("c").definition.referenced.keys.sorted() == ["a", "b"])
        try await store.removeSegment("c")
        try await store.removeSegment("a")
        try await store.removeSegment("b")
        // A chain deeper than 8 is refused.
        try await store.putSegment(try Self.definition("r0", plain))
        for i in 1...8 { try await store.putSegment(try Self.definition("r\(i)", #"{"segment":"r\#(i - 1)"}"#)) }
        await #expect { try await store.putSegment(try Self.definition("r9", #"{"segment":"r8"}"#)) } throws: {
            "\($0)".contains("references nest more than 8 deep")
        }
    }

    @Test func calendarWindowsStartAtLocalMidnightMondayAndTheFirstAcrossDaylightSaving() {
        func start(_ unit: CalendarWindow.Unit, _ count: Int, _ zone: String, _ at: String) -> String {
            Timestamp.format(CalendarWindow(unit: unit, count: count, timeZone: zone).start(asOf: Timestamp.parse(at)!))
        }
        // 30 October 2022, Amsterdam: a 25-hour day (summer time ends at 03:00 CEST).
        #expect(
            start(.day, 1, "Europe/Amsterdam", "2022-10-30T23:30:00Z") == "2022-10-30T23:00:00.000Z",
            "already 31 October there")
        #expect(
            start(.day, 1, "Europe/Amsterdam", "2022-10-30T22:59:59.999Z") == "2022-10-29T22:00:00.000Z",
            "midnight was still CEST")
        #expect(start(.day, 2, "Europe/Amsterdam", "2022-10-31T12:00:00Z") == "2022-10-29T22:00:00.000Z")
        // 27 March 2022: a 23-hour day.
        #expect(start(.day, 2, "Europe/Amsterdam", "2022-03-28T12:00:00Z") == "2022-03-26T23:00:00.000Z")
        // Weeks start on Monday; in New York the week of 6 November 2022 (summer time ends on the Sunday).
        #expect(start(.week, 1, "America/New_York", "2022-11-06T12:00:00Z") == "2022-10-31T04:00:00.000Z")
        #expect(start(.week, 2, "America/New_York", "2022-11-07T12:00:00Z") == "2022-10-31T04:00:00.000Z")
        #expect(start(.week, 1, "UTC", "2022-11-06T23:59:59.999Z") == "2022-10-31T00:00:00.000Z")
        // Months, and a half-hour zone.
        #expect(start(.month, 1, "Europe/Amsterdam", "2022-11-01T00:00:00Z") == "2022-10-31T23:00:00.000Z")
        #expect(start(.month, 3, "UTC", "2022-03-15T00:00:00Z") == "2022-01-01T00:00:00.000Z")
        #expect(start(.day, 1, "Asia/Kolkata", "2022-06-01T18:29:59Z") == "2022-05-31T18:30:00.000Z")
    }

    @Test func valuesCompareInMillionthsSoSumsAreExact() {
        var totals = ValueTotals()
        for v in [150.10, 49.90] { totals.add(v) }
        #expect(totals.satisfy(.init(.sum, atLeast: 200)))
        #expect(totals.satisfy(.init(.sum, atMost: 200)))
        #expect(totals.satisfy(.init(.avg, atLeast: 100, atMost: 100)))
        #expect(!totals.satisfy(.init(.avg, atLeast: 100.000001)))
        #expect(totals.satisfy(.init(.min, atMost: 49.9)) && totals.satisfy(.init(.max, atLeast: 150.1)))
        totals.add(.nan)
        #expect(totals.count == 2, "an event without a value is not counted")
        #expect(!ValueTotals().satisfy(.init(.sum, atMost: 1_000)), "no values: never holds, even for atMost")
        // The exact comparison of an average with a bound, far past 64 bits.
        #expect(InteractionRule.ValueCondition.compare(.max, 2_000_000_000_000_000_000, times: 5) < 0)
        #expect(InteractionRule.ValueCondition.compare(-10, -2, times: 5) == 0)
    }

    @Test func aSequenceNeedsItsStepsInOrderWithinItsLimit() {
        func matches(_ events: [(Int64, UInt16)], steps: Int = 2, within: Int64? = nil) -> Bool {
            SequenceMatcher.matches(events, steps: steps, within: within)
        }
        #expect(matches([(1, 1), (2, 2)]))
        #expect(!matches([(1, 2), (2, 1)]), "second step before the first")
        #expect(!matches([(1, 3)]), "one event cannot take two steps")
        #expect(matches([(1, 3), (2, 3)]))
        #expect(!matches([(1, 1), (10, 2)], within: 8))
        #expect(matches([(1, 1), (5, 1), (10, 2)], within: 5), "the latest start gives the shortest span")
        #expect(matches([(1, 1), (3, 2), (4, 1), (6, 4)], steps: 3, within: 5))
        #expect(
            !matches([(1, 1), (3, 2), (4, 1), (7, 4)], steps: 3, within: 5),
            "the restart at 4 has no second step after it")
    }

    /// A value rule over all time is kept in snapshots (its value totals with its counts): a query starts from one
    /// and answers what a reader without snapshots answers.
    @Test func valueTotalsAreKeptInSnapshots() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 16)
        let day: Int64 = 86_400_000
        let start: Int64 = 1_654_041_600_000
        var events: [Event] = []
        for i in 0..<400 {
            let profile = "p-\(i % 37)"
            events.append(
                Event(
                    time: start + Int64(i) * day / 7, profile: profile, type: i % 3 == 0 ? .conversion : .click,
                    touchpoint: "t-\(i % 5)", value: i % 3 == 0 ? Double(i % 50) + 0.25 : nil))
        }
        try await store.append(events)
        store.close()
        let spenders = try Self.definition(
            "spenders",
            #"{"interaction":"conversion","value":{"sum":{"atLeast":100.5}}},{"interaction":"conversion","value":{"max":{"atMost":40}},"negate":true}"#
        )
        let times = [start + 60 * day, start + 70 * day]
        // The answers from the log, before any snapshot exists.
        let fromLog = try times.map { t in
            let reader = try StoreReader(directory: dir.path + "/s")
            reader.snapshotInterval = nil
            return try reader.members(of: spenders, at: QueryTime(asOf: t))
        }
        let reader = try StoreReader(directory: dir.path + "/s")
        #expect(reader.snapshotsHelp(spenders))
        #expect(try reader.createSnapshot(of: spenders) != nil)
        for (t, expected) in zip(times, fromLog) {
            let fromSnapshot = try StoreReader(directory: dir.path + "/s").members(of: spenders, at: QueryTime(asOf: t))
            #expect(fromSnapshot == expected && !expected.isEmpty)
            let again = try StoreReader(directory: dir.path + "/s")
            _ = try again.members(of: spenders, at: QueryTime(asOf: t))
            #expect(again.lastQuery.snapshotOffset > 0, "the query should start from the snapshot")
        }
        let report = try StoreVerifier.verify(directory: dir.path + "/s")
        #expect(report.isIntact && report.snapshotsChecked > 0)
    }

    /// A sequence over all time or fixed dates is kept in snapshots (matched profiles, and every candidate of the
    /// others); events appended after the snapshot, late ones included, complete chains exactly as they would
    /// from the log.
    @Test func sequenceCandidatesAreKeptInSnapshotsAndLateEventsCompleteChains() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 16)
        let hour: Int64 = 3_600_000
        let start: Int64 = 1_654_041_600_000
        // Before the snapshot: p-0..p-19 view then click within the hour (matched); p-20..p-39 only view; p-40..p-59
        // only click; p-60..p-79 click, then view (wrong order).
        var early: [Event] = []
        for i in 0..<80 {
            let t = start + Int64(i) * 5 * hour
            let profile = "p-\(i)"
            switch i / 20 {
            case 0:
                early.append(Event(time: t, profile: profile, type: .view, touchpoint: "offer"))
                early.append(Event(time: t + hour / 2, profile: profile, type: .click, touchpoint: "offer"))
            case 1: early.append(Event(time: t, profile: profile, type: .view, touchpoint: "offer"))
            case 2: early.append(Event(time: t, profile: profile, type: .click, touchpoint: "offer"))
            default:
                early.append(Event(time: t, profile: profile, type: .click, touchpoint: "offer"))
                early.append(Event(time: t + hour / 2, profile: profile, type: .view, touchpoint: "offer"))
            }
        }
        try await store.append(early.sorted { $0.time < $1.time })
        store.close()
        // The same events in a store that never has a snapshot: the answers from the log.
        let plain = try TouchLogStore(directory: dir.path + "/plain", blockEvents: 16)
        try await plain.append(early.sorted { $0.time < $1.time })
        let definitions = [
            try Self.definition(
                "chain",
                #"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"offer"}},{"interaction":"click","touchpoint":{"exactly":"offer"}}],"within":"1h"}"#
            ),
            try Self.definition(
                "dated",
                #"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"offer"}},{"interaction":"click","touchpoint":{"exactly":"offer"}}],"timeframe":{"from":"2022-06-05T00:00:00Z","to":"2022-06-20T00:00:00Z"}}"#
            ),
            try Self.definition(
                "unchained",
                #"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"offer"}},{"interaction":"click","touchpoint":{"exactly":"offer"}}],"within":"1h","negate":true},{"interaction":"any","touchpoint":{"exactly":"offer"}}"#
            ),
        ]
        let reader = try StoreReader(directory: dir.path + "/s")
        for definition in definitions {
            #expect(reader.snapshotsHelp(definition))
            #expect(try reader.createSnapshot(of: definition) != nil)
        }
        // After it, late events: a view 10 minutes before each lone click of p-40..p-49 (completing their chains), a
        // click an hour and a half after each lone view of p-20..p-29 (too late for "within 1h"), and a click right
        // after the view of p-60..p-69.
        var late: [Event] = []
        for i in 20..<30 {
            late.append(
                Event(
                    time: start + Int64(i) * 5 * hour + 3 * hour / 2, profile: "p-\(i)", type: .click,
                    touchpoint: "offer"))
        }
        for i in 40..<50 {
            late.append(
                Event(time: start + Int64(i) * 5 * hour - hour / 6, profile: "p-\(i)", type: .view, touchpoint: "offer")
            )
        }
        for i in 60..<70 {
            late.append(
                Event(
                    time: start + Int64(i) * 5 * hour + hour * 3 / 4, profile: "p-\(i)", type: .click,
                    touchpoint: "offer"))
        }
        let writer = try TouchLogStore(directory: dir.path + "/s", blockEvents: 16)
        try await writer.append(late)
        writer.close()
        try await plain.append(late)
        plain.close()
        let end = start + 80 * 5 * hour
        for definition in definitions {
            for t in [end, end + 24 * hour] {
                let fromLog = try StoreReader(directory: dir.path + "/plain")
                fromLog.snapshotInterval = nil
                let expected = try fromLog.members(of: definition, at: QueryTime(asOf: t))
                let fromSnapshot = try StoreReader(directory: dir.path + "/s")
                #expect(
                    try fromSnapshot.members(of: definition, at: QueryTime(asOf: t)) == expected,
                    "\(definition.name) at \(t)")
                #expect(fromSnapshot.lastQuery.snapshotOffset > 0, "the query should start from the snapshot")
            }
        }
        let chain = try StoreReader(directory: dir.path + "/s").members(of: definitions[0], at: QueryTime(asOf: end))
        #expect(
            Set(chain) == Set((0..<20).map { "p-\($0)" } + (40..<50).map { "p-\($0)" } + (60..<70).map { "p-\($0)" }))
        let report = try StoreVerifier.verify(directory: dir.path + "/s")
        #expect(report.isIntact && report.snapshotsChecked >= 3)
    }
}
