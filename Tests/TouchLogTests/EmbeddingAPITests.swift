import Foundation
import Testing
import TouchLog
import TouchLogTestSupport

/// The values a service hands to touchlog and gets back, as a Swift developer expects them: `Date` times, events whose
/// kind says what they need, `String` touchpoint matchers, `Codable` values in the JSON shape of the CLI and the API.
@Suite struct EmbeddingAPITests {
    /// 2022-06-01T10:21:14.250Z.
    let june1 = Date(timeIntervalSince1970: 1_654_078_874.25)

    @Test func datesBecomeMillisecondsRoundedDown() throws {
        #expect(Timestamp.milliseconds(june1) == 1_654_078_874_250)
        #expect(Timestamp.milliseconds(june1.addingTimeInterval(0.000_9)) == 1_654_078_874_250)
        #expect(Timestamp.milliseconds(Date(timeIntervalSince1970: -0.000_5)) == -1, "before 1970, down too")
        #expect(Timestamp.date(1_654_078_874_250) == june1)
        let event = Event.click("p-1", touchpoint: "summer", at: june1)
        #expect(event == Event(time: 1_654_078_874_250, profile: "p-1", type: .click, touchpoint: "summer"))
        #expect(event.date == june1)
        #expect(
            QueryTime(asOf: june1, knownAt: june1) == QueryTime(asOf: 1_654_078_874_250, knownAt: 1_654_078_874_250))
        #expect(try QueryTime(asOf: "2022-06-01T10:21:14.250Z") == QueryTime(asOf: 1_654_078_874_250))
        #expect(
            try QueryTime(asOf: "1654078874250", knownAt: "2022-06-01T12:21:14.250+02:00").knownAt == 1_654_078_874_250)
        #expect {
            try QueryTime(asOf: "3 July")
        } throws: { error in
            (error as? TouchLogError)?.message
                == #"bad time "3 July": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds within years 0000-9999"#
        }
    }

    @Test func anEventSaysWhyAStoreWouldRefuseIt() {
        #expect(Event.view("p-1", touchpoint: "t", at: june1).problem == nil)
        #expect(Event.conversion("p-1", value: 59.9, at: june1).problem == nil)
        #expect(Event(time: june1, profile: "p-1", type: .view).problem == "touchpoint is required for a view")
        #expect(Event(time: june1, profile: "", type: .conversion).problem != nil)
        #expect(Event.conversion("p-1", value: .infinity, at: june1).problem != nil)
    }

    @Test func stringMatchersAreTheByteMatchers() {
        typealias Match = InteractionRule.TouchpointMatch
        #expect(Match.exactly("summer-2022") == Match.exactly(Array("summer-2022".utf8)))
        #expect(Match.startsWith("summer").matches(Array("summer-2022".utf8)))
        #expect(Match.endsWith("2022").matches(Array("summer-2022".utf8)))
        #expect(!Match.contains("winter").matches(Array("summer-2022".utf8)))
        #expect(Match.oneOf(["a", "b"]) == Match.oneOf([[0x61], [0x62]]))
    }

    @Test func eventsEncodeAsInputLinesThatAStoreAppends() async throws {
        let events = [
            Event.click("p-1", touchpoint: "summer", at: june1),
            Event.conversion("p-1", value: 59.9, at: june1.addingTimeInterval(60)),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let first = String(decoding: try encoder.encode(events[0]), as: UTF8.self)
        #expect(first == #"{"profile":"p-1","time":"2022-06-01T10:21:14.250Z","touchpoint":"summer","type":"click"}"#)
        let lines = try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) }.joined(separator: "\n")

        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let report = try await store.append(contentsOf: Array(lines.utf8))
        #expect(report.appendedCount == 2)
        var replayed: [StoredEvent] = []
        for try await stored in store.replay() { replayed.append(stored) }
        #expect(replayed.map(\.event) == events)

        // A stored event encodes as `touchlog replay` prints it, and decodes back.
        let again = try JSONDecoder().decode(StoredEvent.self, from: try encoder.encode(replayed[1]))
        #expect(again == replayed[1])
        let line =
            #"{"offset":7,"recorded":"2022-06-02T00:00:00.000Z","time":1654078874250,"profile":"p","type":"view","touchpoint":"t"}"#
        let decoded = try JSONDecoder().decode(StoredEvent.self, from: Data(line.utf8))
        #expect(
            decoded
                == StoredEvent(
                    offset: 7, recorded: 1_654_128_000_000, event: Event.view("p", touchpoint: "t", at: june1)))
        store.close()
    }

    @Test func anEventAStoreWouldRefuseDoesNotDecode() {
        let cases = [
            (#"{"time":"2022-06-01T10:21:14.250Z","profile":"p","type":"view"}"#, "touchpoint is required for a view"),
            (#"{"time":"yesterday","profile":"p","type":"click","touchpoint":"t"}"#, #"bad time "yesterday""#),
            (#"{"time":0,"profile":"p","type":"purchase"}"#, #"unknown type "purchase""#),
        ]
        for (json, expected) in cases {
            #expect {
                try JSONDecoder().decode(Event.self, from: Data(json.utf8))
            } throws: { error in
                guard case DecodingError.dataCorrupted(let context) = error else { return false }
                return context.debugDescription.contains(expected)
            }
        }
    }

    @Test func definitionsAndUpdatesRoundTripThroughCodable() throws {
        let definition = try SegmentDefinition(
            json: """
                {"name":"s","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"},
                 "timeframe":{"last":"30d"},"conversion":"not_converted","count":{"atLeast":2}},
                 {"sequence":[{"interaction":"view","touchpoint":{"oneOf":["a","b"]}},{"interaction":"conversion"}],
                  "within":"1d"},{"interaction":"conversion","value":{"sum":{"atLeast":100.5}},"negate":true}]}
                """)
        let data = try JSONEncoder().encode(definition)
        #expect(try JSONDecoder().decode(SegmentDefinition.self, from: data) == definition)
        let bad = #"{"name":"s","match":"all","rules":[{"interaction":"click"}]}"#
        #expect {
            try JSONDecoder().decode(SegmentDefinition.self, from: Data(bad.utf8))
        } throws: { error in
            guard case DecodingError.dataCorrupted(let context) = error else { return false }
            return context.debugDescription.contains("rules[0].touchpoint")
        }
        let json =
            #"{"segment":"s","version":2,"asOf":1654078874250,"endOffset":40,"entered":["a"],"exited":[],"isInitial":false}"#
        let update = try JSONDecoder().decode(SegmentUpdate.self, from: Data(json.utf8))
        #expect(update.entered == ["a"] && update.asOf == 1_654_078_874_250 && !update.isInitial)
        #expect(try JSONDecoder().decode(SegmentUpdate.self, from: JSONEncoder().encode(update)) == update)
    }
}
