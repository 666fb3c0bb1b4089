import Foundation
import Testing
import TouchLogTestSupport

@testable import TouchLog

@Suite struct JSONEventParserTests {
    @Test func theSpecExamplesParse() throws {
        #expect(
            try parseJSON(
                #"{"time":"2022-06-01T10:21:14.250Z","profile":"p-123","type":"click","touchpoint":"summer-2022-collection"}"#
            ).get()
                == Event(time: 1_654_078_874_250, profile: "p-123", type: .click, touchpoint: "summer-2022-collection"))
        #expect(
            try parseJSON(#"{"time":"2022-06-02T08:00:00+02:00","profile":"p-123","type":"conversion","value":59.90}"#)
                .get()
                == Event(time: 1_654_149_600_000, profile: "p-123", type: .conversion, value: 59.9))
        #expect(
            try parseJSON(#"{"time":1654070400000,"profile":"p-9","type":"view","touchpoint":"store-location"}"#).get()
                == Event(time: 1_654_070_400_000, profile: "p-9", type: .view, touchpoint: "store-location"))
    }

    @Test func unknownFieldsOfEveryKindAreSkippedAndEscapesDecoded() throws {
        let line =
            #" { "x" : {"a":[1,2,{"b":null}],"c":"}"}, "time" : 0, "flag":true, "n":-1.5e-3, "profile":"p\u00e9\ud83c\udfaf\n\"", "type":"conversion", "touchpoint":null, "value":null, "offset": 7 } "#
        #expect(try parseJSON(line).get() == Event(time: 0, profile: "pé🎯\n\"", type: .conversion))
    }

    @Test(arguments: [
        (#"not json"#, "1 expected '{'"),
        (#"{"time":0,"profile":"p","type":"view","touchpoint":"t""#, "unexpected end of line"),
        (#"{"time":0,"profile":"p","type":"view"}"#, "touchpoint is required for a view"),
        (#"{"profile":"p","type":"view","touchpoint":"t"}"#, "missing field \"time\""),
        (#"{"time":0,"type":"view","touchpoint":"t"}"#, "missing field \"profile\""),
        (#"{"time":0,"profile":"p","touchpoint":"t"}"#, "missing field \"type\""),
        (#"{"time":0,"profile":"","type":"view","touchpoint":"t"}"#, "profile is empty"),
        (#"{"time":0,"profile":"p","type":"view","touchpoint":""}"#, "touchpoint is empty"),
        (#"{"time":0,"profile":"p","type":"like","touchpoint":"t"}"#, "32 unknown type \"like\""),
        (#"{"time":"yesterday","profile":"p","type":"view","touchpoint":"t"}"#, "9 bad time \"yesterday\""),
        (#"{"time":1.5,"profile":"p","type":"view","touchpoint":"t"}"#, "9 bad time 1.5"),
        (#"{"time":true,"profile":"p","type":"view","touchpoint":"t"}"#, "time must be"),
        (#"{"time":0,"profile":7,"type":"view","touchpoint":"t"}"#, "profile must be a string"),
        (#"{"time":0,"profile":"p","type":"conversion","value":"12"}"#, "value must be a number"),
        (#"{"time":0,"profile":"p","type":"conversion","value":1e999}"#, "not a finite number"),
        (#"{"time":0,"time":1,"profile":"p","type":"conversion"}"#, "11 duplicate field \"time\""),
        (#"{"time":0,"profile":"p","type":"conversion"} x"#, "unexpected text after the object"),
        (#"{"time":0,"profile":"p\x","type":"conversion"}"#, "invalid escape"),
        (#"{"time":0,"profile":"p\ud800","type":"conversion"}"#, "unpaired UTF-16 surrogate"),
        (#"{"time":0,"profile":"p,"type":"conversion"}"#, "expected ',' or '}'"),
        (#"{"time":0,"profile":"p","type":"conversion",}"#, "expected a field name"),
        (#"{"time":0,"profile":"p","type":"conversion","x":[1,}"#, "invalid number"),
        (#"{"time":0,"profile":"p","type":"conversion","x":tru}"#, "invalid JSON value"),
        (#"{"time":01,"profile":"p","type":"conversion"}"#, "expected ',' or '}'"),
        (#"[1]"#, "expected '{'"),
    ])
    func invalidLinesAreReportedWithColumnAndReason(line: String, expected: String) {
        switch parseJSON(line) {
        case .event(let event): Issue.record("accepted \(line) as \(event)")
        case .problem(let problem): #expect(problem.contains(expected), "\(line) → \(problem)")
        }
    }

    @Test func overLongIdentifiersAndInvalidUTF8AreRefused() {
        let long = String(repeating: "x", count: 257)
        #expect(
            parseJSON(#"{"time":0,"profile":"\#(long)","type":"conversion"}"#).failureText?.contains(
                "over the 256-byte limit") == true)
        let exactly = String(repeating: "é", count: 128)
        #expect((try? parseJSON(#"{"time":0,"profile":"\#(exactly)","type":"conversion"}"#).get()) != nil)
        var bytes = Array(#"{"time":0,"profile":"p"#.utf8) + [0xC3, 0x28] + Array(#"","type":"conversion"}"#.utf8)
        var batch = EventBatch()
        #expect(parseJSON(bytes: &bytes, into: &batch).failureText == "23 invalid UTF-8")
        var control = Array(#"{"time":0,"profile":"p"#.utf8) + [0x01] + Array(#"","type":"conversion"}"#.utf8)
        #expect(parseJSON(bytes: &control, into: &batch).failureText?.contains("control character") == true)
    }

    /// Field names and types are first compared a word at a time; the same names written with an escape go the byte
    /// way. Both must mean the same, for names that are a known one's prefix or extension too, at any place in a line.
    @Test func namesAndTypesReadAWordAtATimeMeanWhatTheirEscapedFormsMean() {
        func escaped(_ word: String) -> String {
            let first = word.unicodeScalars.first!.value
            return "\\u00" + String(first, radix: 16) + word.dropFirst()
        }
        var compared = 0
        for type in ["view", "click", "conversion", "views", "clicks", "conversions", "vie", "conversio", "VIEW"] {
            for extra in ["times", "profiles", "touchpoints", "values", "typ", "touchpo", "tim", "time_", "profil"] {
                let fields = [
                    ("time", #""2022-06-01T10:21:14.250Z""#), ("profile", #""p-1""#), ("type", "\"\(type)\""),
                    ("touchpoint", #""t""#), ("value", "2.5"), (extra, "1"),
                ]
                for rotation in 0..<fields.count {
                    let ordered = Array(fields[rotation...] + fields[..<rotation])
                    let plain = "{" + ordered.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
                    let byteWay =
                        "{"
                        + ordered.map { name, value in
                            let v = name == "type" ? "\"\(escaped(type))\"" : value
                            return "\"\(escaped(name))\":\(v)"
                        }.joined(separator: ",") + "}"
                    switch (parseJSON(plain), parseJSON(byteWay)) {
                    case (.event(let a), .event(let b)): #expect(a == b, "\(plain)")
                    case (.problem(let a), .problem(let b)):
                        #expect(a.drop { $0 != " " } == b.drop { $0 != " " }, "\(plain): \(a) / \(b)")
                    case (let a, let b): Issue.record("\(plain) → \(a), \(byteWay) → \(b)")
                    }
                    compared += 1
                }
            }
        }
        #expect(compared == 9 * 9 * 6)
        // A name or type at the very end of a line (too near it for a word) is read the byte way.
        #expect(parseJSON(#"{"profile":"p","touchpoint":"t","time":0,"type":"view"}"#).failureText == nil)
        #expect(parseJSON(#"{"profile":"p","touchpoint":"t","type":"view","time":0}"#).failureText == nil)
    }
}
