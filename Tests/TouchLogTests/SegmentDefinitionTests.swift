import Foundation
import Testing

@testable import TouchLog

@Suite struct SegmentDefinitionTests {
    static let valid = #"{"name":"s","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"t"}}]}"#

    /// `valid` with its first rule replaced by `rule`.
    static func withRule(_ rule: String) -> String {
        #"{"name":"s","match":"all","rules":[{"interaction":"view","touchpoint":{"exactly":"x"}},"# + rule + "]}"
    }

    @Test func theSpecExampleParses() throws {
        let definition = try SegmentDefinition(
            json: """
                {
                  "name": "discount-clickers-not-converted",
                  "match": "all",
                  "rules": [
                    { "interaction": "click",
                      "touchpoint": { "exactly": "discount-notification" },
                      "timeframe": { "last": "30d" },
                      "conversion": "not_converted" }
                  ]
                }
                """)
        #expect(
            definition.rules == [
                .interaction(
                    InteractionRule(
                        interaction: .click, touchpoint: .exactly(Array("discount-notification".utf8)),
                        timeframe: .last(milliseconds: 30 * 86_400_000), conversion: .notConverted), negate: false)
            ])
        #expect(try SegmentDefinition(json: definition.json) == definition)
    }

    @Test func everyFeatureOfTheGrammarParsesAndRoundTrips() throws {
        let text = #"""
            {"name":"A.b_c-9","description":"all of it","match":"any","rules":[
              {"interaction":"any","touchpoint":{"contains":"iphone"},"count":{"atLeast":2,"atMost":5},"negate":true},
              {"match":"all","negate":true,"rules":[
                {"interaction":"view","touchpoint":{"startsWith":"summer"},"timeframe":{"from":"2022-06-01T00:00:00Z","to":1656633600000}},
                {"interaction":"click","touchpoint":{"endsWith":"-2022"},"timeframe":{"to":"2022-07-01T00:00:00+02:00"},"conversion":"converted"},
                {"interaction":"conversion","timeframe":{"last":"90m"},"count":{"atMost":1}},
                {"interaction":"conversion","touchpoint":{"oneOf":["a","b"]},"timeframe":{"last":"1500ms"}}]}]}
            """#
        let definition = try SegmentDefinition(json: text)
        #expect(definition.name == "A.b_c-9")
        #expect(definition.match == .any)
        #expect(try SegmentDefinition(json: definition.json) == definition)
        guard case .group(.all, let inner, negate: true) = definition.rules[1] else {
            Issue.record("group expected")
            return
        }
        guard case .interaction(let last, _) = inner[2] else { return }
        #expect(last.timeframe == .last(milliseconds: 5_400_000))
        #expect(last.atMost == 1 && last.atLeast == 1)
    }

    @Test(arguments: [
        ("", "invalid JSON at line 1, column 1: unexpected end, expected a value"),
        ("{\"name\":\"s\",}", "invalid JSON at line 1, column 13: expected a field name in double quotes"),
        ("{\"name\":\"s\",\"name\":\"t\"}", "duplicate field \"name\""),
        ("[]", "expected an object, found an array"),
        (#"{"match":"all","rules":[]}"#, "name: is required"),
        (#"{"name":"a b","match":"all","rules":[]}"#, "name: \"a b\" is not a valid name"),
        (#"{"name":"..","match":"all","rules":[]}"#, "name: \"..\" is not a valid name"),
        (#"{"name":7,"match":"all","rules":[]}"#, "name: expected a string, found a number"),
        (#"{"name":"s","rules":[]}"#, "match: is required"),
        (#"{"name":"s","match":"most","rules":[]}"#, "match: unknown value \"most\""),
        (#"{"name":"s","match":"all"}"#, "rules: is required"),
        (#"{"name":"s","match":"all","rules":[]}"#, "rules: needs at least one rule"),
        (#"{"name":"s","match":"all","rules":{}}"#, "rules: expected an array of rules, found an object"),
        (#"{"name":"s","match":"all","rules":[1]}"#, "rules[0]: expected a rule object, found a number"),
        (#"{"name":"s","match":"all","rules":[],"extra":1}"#, "extra: unknown field"),
        (#"{"name":"s","description":5,"match":"all","rules":[{}]}"#, "description: expected a string, found a number"),
        (withRule("{}"), "rules[1].interaction: is required (or give \"rules\" for a group)"),
        (
            withRule(#"{"interaction":"tap","touchpoint":{"exactly":"t"}}"#),
            "rules[1].interaction: unknown value \"tap\""
        ),
        (withRule(#"{"interaction":"click"}"#), "rules[1].touchpoint: is required for a click rule"),
        (
            withRule(#"{"interaction":"click","touchpoint":"t"}"#),
            "rules[1].touchpoint: expected an object, found a string"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{}}"#),
            "rules[1].touchpoint: needs exactly one of exactly, contains, startsWith, endsWith, oneOf"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"a","contains":"b"}}"#),
            "rules[1].touchpoint: needs exactly one of"
        ),
        (withRule(#"{"interaction":"click","touchpoint":{"like":"a"}}"#), "rules[1].touchpoint.like: unknown field"),
        (withRule(#"{"interaction":"click","touchpoint":{"exactly":""}}"#), "rules[1].touchpoint.exactly: is empty"),
        (
            withRule(#"{"interaction":"click","touchpoint":{"contains":7}}"#),
            "rules[1].touchpoint.contains: expected a string, found a number"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"\#(String(repeating: "x", count: 257))"}}"#),
            "rules[1].touchpoint.exactly: is 257 bytes, over the 256-byte limit"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"oneOf":[]}}"#),
            "rules[1].touchpoint.oneOf: needs at least one touchpoint"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"oneOf":["a",""]}}"#),
            "rules[1].touchpoint.oneOf[1]: is empty"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"oneOf":"a"}}"#),
            "rules[1].touchpoint.oneOf: expected an array of touchpoints, found a string"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":"30x"}}"#),
            "rules[1].timeframe.last: bad duration \"30x\""
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":"0d"}}"#),
            "rules[1].timeframe.last: bad duration \"0d\""
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":"-1d"}}"#),
            "rules[1].timeframe.last: bad duration"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":30}}"#),
            "rules[1].timeframe.last: expected a string, found a number"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":"1d","to":0}}"#),
            "rules[1].timeframe: give one of last, before, calendar or from/to"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{}}"#),
            "rules[1].timeframe: needs last, before, calendar, or from and/or to"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"before":"30d","last":"1d"}}"#),
            "rules[1].timeframe: give one of last, before"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"before":"soon"}}"#),
            "rules[1].timeframe.before: bad duration \"soon\""
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"calendar":{"count":2}}}"#),
            "rules[1].timeframe.calendar.unit: is required"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"calendar":{"unit":"year"}}}"#),
            "rules[1].timeframe.calendar.unit: unknown value \"year\""
        ),
        (
            withRule(
                #"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"calendar":{"unit":"day","count":0}}}"#
            ), "rules[1].timeframe.calendar.count: must be at least 1"
        ),
        (
            withRule(
                #"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"calendar":{"unit":"day","count":10001}}}"#
            ), "rules[1].timeframe.calendar.count: 10001 is over the limit"
        ),
        (
            withRule(
                #"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"calendar":{"unit":"week","timeZone":"Mars/Olympus"}}}"#
            ),
            "rules[1].timeframe.calendar.timeZone: unknown time zone \"Mars/Olympus\""
        ),
        (
            withRule(
                #"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"calendar":{"unit":"week","tz":"UTC"}}}"#
            ), "rules[1].timeframe.calendar.tz: unknown field"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{}}"#),
            "rules[1].value: needs exactly one of sum, avg, min, max"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{"total":{"atLeast":1}}}"#),
            "rules[1].value.total: unknown field"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{"sum":{"atLeast":1},"avg":{"atLeast":1}}}"#),
            "rules[1].value: needs exactly one of"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{"sum":{}}}"#),
            "rules[1].value.sum: needs atLeast, atMost or both"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{"sum":{"atLeast":"200"}}}"#),
            "rules[1].value.sum.atLeast: expected a number, found a string"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{"avg":{"atLeast":5,"atMost":2}}}"#),
            "rules[1].value.avg: atMost 2 is less than atLeast 5"
        ),
        (
            withRule(#"{"interaction":"conversion","value":{"max":{"atMost":1e300}}}"#),
            "rules[1].value.max.atMost: 1e300 is out of range"
        ),
        (
            withRule(#"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"a"}}]}"#),
            "rules[1].sequence: has 1 step; a sequence has 2 to 8"
        ),
        (withRule(#"{"sequence":{}}"#), "rules[1].sequence: expected an array of steps, found an object"),
        (
            withRule(#"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"a"}},{"interaction":"click"}]}"#),
            "rules[1].sequence[1].touchpoint: is required for a click step"
        ),
        (
            withRule(
                #"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"a"}},{"interaction":"conversion","count":{"atLeast":2}}]}"#
            ),
            "rules[1].sequence[1].count: unknown field"
        ),
        (
            withRule(
                #"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"a"}},{"interaction":"conversion"}],"within":"a day"}"#
            ),
            "rules[1].within: bad duration \"a day\""
        ),
        (
            withRule(
                #"{"sequence":[{"interaction":"view","touchpoint":{"exactly":"a"}},{"interaction":"conversion"}],"interaction":"view"}"#
            ),
            "rules[1].interaction: unknown field"
        ),
        (withRule(#"{"segment":"../x"}"#), "rules[1].segment: \"../x\" is not a valid segment name"),
        (withRule(#"{"segment":"a","touchpoint":{"exactly":"a"}}"#), "rules[1].touchpoint: unknown field"),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"from":"June"}}"#),
            "rules[1].timeframe.from: bad time \"June\""
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"to":1.5}}"#),
            "rules[1].timeframe.to: bad time 1.5"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"from":10,"to":5}}"#),
            "rules[1].timeframe: from is after to"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"since":5}}"#),
            "rules[1].timeframe.since: unknown field"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"count":{}}"#),
            "rules[1].count: needs atLeast, atMost or both"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"count":{"atLeast":0}}"#),
            "rules[1].count.atLeast: must be at least 1"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"count":{"atMost":2.5}}"#),
            "rules[1].count.atMost: expected a whole number, found 2.5"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"count":{"atLeast":"2"}}"#),
            "rules[1].count.atLeast: expected a whole number, found a string"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"count":{"atLeast":3,"atMost":2}}"#),
            "rules[1].count: atMost 2 is less than atLeast 3"
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"conversion":"yes"}"#),
            "rules[1].conversion: unknown value \"yes\""
        ),
        (
            withRule(#"{"interaction":"conversion","conversion":"converted"}"#),
            "rules[1].conversion: does not go with \"interaction\": \"conversion\""
        ),
        (
            withRule(#"{"interaction":"click","touchpoint":{"exactly":"t"},"negate":"yes"}"#),
            "rules[1].negate: expected true or false, found a string"
        ),
        (withRule(#"{"match":"all","rules":[]}"#), "rules[1].rules: needs at least one rule"),
        (withRule(#"{"rules":[{"interaction":"conversion"}]}"#), "rules[1].match: is required"),
        (
            withRule(#"{"match":"all","rules":[{"interaction":"conversion"}],"interaction":"click"}"#),
            "rules[1].interaction: unknown field"
        ),
        (
            withRule(
                #"{"match":"all","rules":[{"match":"any","rules":[{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":"30x"}}]}]}"#
            ),
            "rules[1].rules[0].rules[0].timeframe.last: bad duration \"30x\""
        ),
    ])
    func invalidDefinitionsAreRefusedNamingTheJSONPath(json: String, expected: String) {
        #expect {
            try SegmentDefinition(json: json)
        } throws: { error in
            let text = "\(error)"
            let ok = text.hasPrefix(expected) || text.contains(expected)
            if !ok { Issue.record("\(json)\n → \(text)\n expected \(expected)") }
            return true
        }
    }

    @Test func rulesNestedTooDeeplyAreRefused() {
        var rule = #"{"interaction":"conversion"}"#
        for _ in 0..<40 { rule = #"{"match":"all","rules":["# + rule + "]}" }
        #expect { try SegmentDefinition(json: #"{"name":"s","match":"all","rules":["# + rule + "]}") } throws: {
            "\($0)".contains("nested more than 32 deep")
        }
    }

    @Test(arguments: [
        ("1ms", Int64(1)), ("2s", 2000), ("90m", 5_400_000), ("36h", 129_600_000), ("30d", 2_592_000_000),
        ("2w", 1_209_600_000),
    ])
    func durationsAreExact(text: String, ms: Int64) {
        #expect(RuleDuration.parse(text) == ms)
        #expect(RuleDuration.parse(RuleDuration.format(ms)) == ms)
    }

    @Test func touchpointMatchingIsOnBytesAndCaseSensitive() {
        let t = Array("Summer-2022-é".utf8)
        #expect(InteractionRule.TouchpointMatch.contains(Array("2022".utf8)).matches(t))
        #expect(!InteractionRule.TouchpointMatch.startsWith(Array("summer".utf8)).matches(t))
        #expect(InteractionRule.TouchpointMatch.endsWith(Array("é".utf8)).matches(t))
        #expect(InteractionRule.TouchpointMatch.endsWith([0xA9]).matches(t), "bytes, not characters")
        #expect(!InteractionRule.TouchpointMatch.exactly(Array("Summer".utf8)).matches(t))
    }
}
