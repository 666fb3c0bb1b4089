import Foundation
import Testing
import TouchLogTestSupport

@testable import TouchLog

/// A parsed line: its event, or its problem as "COLUMN reason".
enum Parsed: Equatable {
    case event(Event)
    case problem(String)

    func get() throws -> Event {
        guard case .event(let event) = self else { throw ParseFailed() }
        return event
    }

    var failureText: String? {
        if case .problem(let text) = self { return text }
        return nil
    }
}

struct ParseFailed: Error {}

func describe(_ error: any Error) -> String {
    let problem = error as! FieldProblem
    return "\(problem.column.map(String.init) ?? "-") \(problem.reason)"
}

/// Parses one JSON line.
func parseJSON(_ line: String) -> Parsed {
    var batch = EventBatch()
    var bytes = Array(line.utf8)
    return parseJSON(bytes: &bytes, into: &batch)
}

func parseJSON(bytes: inout [UInt8], into batch: inout EventBatch) -> Parsed {
    do {
        try bytes.withUnsafeBytes { raw in try JSONEventParser.parse(raw, into: &batch) }
        return .event(batch.event(at: batch.count - 1))
    } catch {
        return .problem(describe(error))
    }
}

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
}

@Suite struct CSVEventParserTests {
    func parse(_ csv: String) -> [Parsed] {
        let records = csv.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = Array(records[0].utf8)
        let parser: CSVEventParser
        do {
            parser = try header.withUnsafeBytes { raw in try CSVEventParser(header: raw) }
        } catch {
            return [.problem("header: " + (error as! FieldProblem).reason)]
        }
        return records.dropFirst().map { record in
            var batch = EventBatch()
            let bytes = Array(record.utf8)
            do {
                try bytes.withUnsafeBytes { raw in try parser.parse(raw, into: &batch) }
                return .event(batch.event(at: 0))
            } catch {
                return .problem(describe(error))
            }
        }
    }

    @Test func quotedFieldsColumnOrderAndOptionalColumns() throws {
        let results = parse(
            #"""
            type,touchpoint,extra,profile,time,value
            click,"summer, ""2022""",x,p-1,2022-06-01T10:21:14.250Z,
            conversion,,,p-2,1654070400000,59.90
            """#)
        #expect(
            try results[0].get()
                == Event(time: 1_654_078_874_250, profile: "p-1", type: .click, touchpoint: "summer, \"2022\""))
        #expect(try results[1].get() == Event(time: 1_654_070_400_000, profile: "p-2", type: .conversion, value: 59.9))
    }

    @Test func badRecordsAndHeadersAreReported() {
        let results = parse(
            #"""
            time,profile,type,touchpoint,value
            2022-06-01T10:21:14Z,p,view
            2022-06-01T10:21:14Z,p,view,,
            nope,p,view,t,
            2022-06-01T10:21:14Z,p,view,t,abc
            2022-06-01T10:21:14Z,"p,view,t,
            2022-06-01T10:21:14Z,p"x,view,t,
            2022-06-01T10:21:14Z,,view,t,
            """#)
        #expect(
            results.map { $0.failureText ?? "ok" } == [
                "- expected 5 fields as in the header, found 3",
                "- touchpoint is required for a view",
                "1 bad time \"nope\": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds",
                "31 value \"abc\" is not a finite number",
                "22 unterminated quoted field",
                "23 quote inside an unquoted field",
                "22 profile is empty",
            ])
        #expect(
            parse("time,profile,touchpoint\n").first?.failureText
                == "header: the CSV header has no \"type\" column (expected time,profile,type,touchpoint,value)")
        #expect(parse("time,profile,type,time\n").first?.failureText?.contains("duplicate column") == true)
    }
}

@Suite struct InputScannerTests {
    /// Records as the scanner hands them out, for random inputs of random sizes read in small chunks with a small
    /// record limit (so carried records, too-long records and buffer growth happen often), against a plain split.
    @Test func recordsMatchAPlainSplitAtAnyChunkAndLimit() throws {
        var random = SplitMix64(seed: 77)
        let dir = TemporaryDirectory()
        for round in 0..<300 {
            var bytes: [UInt8] = []
            for _ in 0..<random.below(40) {
                let length = random.chance(0.1) ? random.below(400) : random.below(30)
                bytes += (0..<length).map { _ in random.chance(0.05) ? 0x20 : UInt8(0x61 + random.below(26)) }
                bytes += random.chance(0.2) ? [0x0D, 0x0A] : [0x0A]
            }
            if random.chance(0.5) { bytes += [0x62, 0x63] }  // no final newline
            let path = dir.file("in-\(round)", bytes: bytes)
            var scanner = try InputScanner.open(path)
            defer { scanner.close() }
            scanner.chunkBytes = 1 + random.below(64)
            scanner.maxRecordBytes = 1 + random.below(100)
            var got: [String] = []
            try scanner.forEachRecord { record in
                switch record {
                case .text(let raw, let line): got.append("\(line) \(String(decoding: raw, as: UTF8.self))")
                case .tooLong(let line): got.append("\(line) too long")
                }
            }
            var expected: [String] = []
            for (index, var line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
                if index == bytes.split(separator: 0x0A, omittingEmptySubsequences: false).count - 1 && line.isEmpty {
                    break
                }
                if line.last == 0x0D { line = line.dropLast() }
                if line.count > scanner.maxRecordBytes {
                    expected.append("\(index + 1) too long")
                } else if !line.allSatisfy({ $0 == 0x20 }) {
                    expected.append("\(index + 1) \(String(decoding: line, as: UTF8.self))")
                }
            }
            #expect(got == expected, "round \(round), chunk \(scanner.chunkBytes), limit \(scanner.maxRecordBytes)")
        }
    }
}

@Suite struct JSONStringTests {
    /// Every byte that JSON requires escaped is escaped, runs without one are copied whole, and the text round-trips
    /// through a JSON parser; the String, contiguous-bytes and other-collection paths write the same bytes.
    @Test func stringsAreEscapedAndRoundTrip() throws {
        let texts = [
            "", "plain", "a\"b", "back\\slash", "tab\tnew\nline\rcr", "\u{01}\u{1f}ctl", "é-vente 日本", "end\"", "\"",
            "x\u{7f}y",
        ]
        for text in texts {
            var viaString: [UInt8] = []
            EventJSON.appendString(text, to: &viaString)
            var viaBytes: [UInt8] = []
            EventJSON.appendString(Array(text.utf8), to: &viaBytes)
            var viaView: [UInt8] = []
            EventJSON.appendString(text.utf8.lazy.map { $0 }, to: &viaView)
            #expect(viaString == viaBytes && viaBytes == viaView, "\(text)")
            let decoded = try JSONSerialization.jsonObject(with: Data(viaString), options: .fragmentsAllowed) as? String
            #expect(decoded == text, "\(String(decoding: viaString, as: UTF8.self))")
            #expect(!viaString.dropFirst().dropLast().contains { $0 < 0x20 })
        }
    }
}
