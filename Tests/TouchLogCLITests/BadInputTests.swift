import Foundation
import Testing
import TouchLogTestSupport

/// The bad-input matrix of the CLI: each malformed input gives one clear line per bad input line (`LINE:COLUMN reason`),
/// a summary, exit 65, and appends nothing: the store still holds exactly what it held before.
@Suite struct BadInputTests {
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var file: String
        var bytes: [UInt8]
        var stderr: [String]
        var description: String { name }
    }

    static func jsonl(_ name: String, _ lines: [String], _ stderr: [String]) -> Case {
        Case(
            name: name, file: name + ".jsonl", bytes: Array(lines.joined(separator: "\n").utf8) + [0x0A], stderr: stderr
        )
    }

    static func view(time: String = "0", profile: String = #""p""#) -> String {
        #"{"time":\#(time),"profile":\#(profile),"type":"view","touchpoint":"t"}"#
    }

    static let badTime = #": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds"#
    static let epochRange = ": epoch milliseconds must be an integer within years 0000-9999"

    static let cases: [Case] = [
        Case(
            name: "binary garbage", file: "garbage.bin",
            bytes: (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) },
            stderr: ["1:2 invalid UTF-8", "2 cannot be read: the CSV header is not valid"]),
        Case(
            name: "a NUL byte in a string", file: "nul.jsonl",
            bytes: Array(#"{"time":0,"profile":"a"#.utf8) + [0] + Array(#"b","type":"view","touchpoint":"t"}"#.utf8) + [
                0x0A
            ],
            stderr: ["1:23 control character in a string (escape it)"]),
        Case(
            name: "invalid UTF-8", file: "utf8.jsonl",
            bytes: Array(#"{"time":0,"profile":"a"#.utf8) + [0xC3, 0x28]
                + Array(#"","type":"view","touchpoint":"t"}"#.utf8) + [0x0A],
            stderr: ["1:23 invalid UTF-8"]),
        jsonl(
            "over-long ids",
            [
                view(profile: "\"" + String(repeating: "x", count: 257) + "\""),
                #"{"time":0,"profile":"p","type":"view","touchpoint":""# + String(repeating: "y", count: 300) + "\"}",
            ],
            ["1 profile is 257 bytes, over the 256-byte limit", "2 touchpoint is 300 bytes, over the 256-byte limit"]),
        jsonl(
            "a 2 MiB line", [view(profile: "\"" + String(repeating: "x", count: 2 << 20) + "\"")],
            ["1 line is longer than 1048576 bytes"]),
        jsonl(
            "fields of the wrong type",
            [
                view(time: "true"), view(profile: "5"),
                #"{"time":0,"profile":"p","type":["view"],"touchpoint":"t"}"#,
                #"{"time":0,"profile":"p","type":"view","touchpoint":{}}"#,
                #"{"time":0,"profile":"p","type":"conversion","value":"9"}"#,
                #"{"time":0,"profile":"p","type":"conversion","value":1e999}"#,
                #"{"time":0,"profile":"p","type":"conversion","value":NaN}"#,
                #"{"time":0,"profile":"p","type":"purchase"}"#,
            ],
            [
                "1:9 time must be an RFC 3339 string or integer epoch milliseconds", "2:21 profile must be a string",
                "3:32 type must be a string: view, click or conversion", "4:52 touchpoint must be a string",
                "5:53 value must be a number", "6:53 value 1e999 is not a finite number", "7:53 value must be a number",
                #"8:32 unknown type "purchase": expected view, click or conversion"#,
            ]),
        jsonl(
            "missing and duplicate fields",
            [
                #"{"profile":"p","type":"view","touchpoint":"t"}"#, #"{"time":0,"type":"view","touchpoint":"t"}"#,
                #"{"time":0,"profile":"p","touchpoint":"t"}"#, #"{"time":0,"profile":"p","type":"click"}"#,
                #"{"time":0,"profile":"p","profile":"q","type":"view","touchpoint":"t"}"#, view(profile: #""""#),
            ],
            [
                #"1 missing field "time""#, #"2 missing field "profile""#, #"3 missing field "type""#,
                "4 touchpoint is required for a click", #"5:25 duplicate field "profile""#, "6 profile is empty",
            ]),
        jsonl(
            "broken JSON", [view() + " x", String(view().dropLast()), "[1,2]", "{", #"{"time":0,"profile":"p\q"}"#],
            [
                "1:57 unexpected text after the object", "2:55 unexpected end of line inside the object",
                "3:1 expected '{' (each line must be one JSON object)", "4:2 expected a field name in double quotes",
                "5:23 invalid escape in a string",
            ]),
        jsonl(
            "bad times",
            [
                view(time: #""10000-01-01T00:00:00Z""#), view(time: "-62167219200001"),
                view(time: #""2022-13-01T00:00:00Z""#),
                view(time: #""2022-02-29T00:00:00Z""#), view(time: #""2022-06-01T25:00:00Z""#),
                view(time: #""2022-06-01T10:00:00+25:00""#), view(time: #""2022-06-01""#), view(time: "1.5"),
                view(time: "253402300800000"),
            ],
            [
                #"1:9 bad time "10000-01-01T00:00:00Z""# + badTime, "2:9 bad time -62167219200001" + epochRange,
                #"3:9 bad time "2022-13-01T00:00:00Z""# + badTime, #"4:9 bad time "2022-02-29T00:00:00Z""# + badTime,
                #"5:9 bad time "2022-06-01T25:00:00Z""# + badTime,
                #"6:9 bad time "2022-06-01T10:00:00+25:00""# + badTime,
                #"7:9 bad time "2022-06-01""# + badTime, "8:9 bad time 1.5" + epochRange,
                "9:9 bad time 253402300800000" + epochRange,
            ]),
        Case(
            name: "CSV without a touchpoint column", file: "a.csv", bytes: Array("time,profile,type\n0,p,view\n".utf8),
            stderr: ["2 touchpoint is required for a view"]),
        Case(
            name: "CSV with wrong field counts and quotes", file: "b.csv",
            bytes: Array(
                "time,profile,type,touchpoint\n0,p,view\n0,p\"q,view,t\n0,p,view,t,extra\n0,\"p,view,t\n".utf8),
            stderr: [
                "2 expected 4 fields as in the header, found 3", "3:4 quote inside an unquoted field",
                "4 expected 4 fields as in the header, found 5", "5:3 unterminated quoted field",
            ]),
        Case(
            name: "CSV header without a required column", file: "c.csv",
            bytes: Array("when,profile,type\n0,p,view\n".utf8),
            stderr: [
                #"1 the CSV header has no "time" column (expected time,profile,type,touchpoint,value)"#,
                "2 cannot be read: the CSV header is not valid",
            ]),
    ]

    @Test(arguments: cases)
    func badInputExits65NamesEachLineAndAppendsNothing(_ bad: Case) throws {
        let scratch = TemporaryDirectory()
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
        let before = try touchlog(["replay", "--store", scratch.store]).stdout
        let path = scratch.path + "/" + bad.file
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bad.bytes)))
        let run = try touchlog(["append", "--store", scratch.store, path])
        #expect(run.status == 65)
        #expect(run.stdout == "")
        let count = bad.stderr.count
        let summary = "touchlog: \(count) invalid line\(count == 1 ? "" : "s"); nothing appended"
        #expect(
            run.stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) == bad.stderr + [
                summary, "",
            ])
        #expect(try touchlog(["replay", "--store", scratch.store]).stdout == before)
        #expect(try touchlog(["verify", "--store", scratch.store]).status == 0)
    }

    @Test func emptyAndBlankInputsAppendNothingAndSucceed() throws {
        let scratch = TemporaryDirectory()
        for (name, contents) in [
            ("empty.jsonl", ""), ("blank.jsonl", "\n  \n\t\n"), ("header-only.csv", "time,profile,type,touchpoint\n"),
        ] {
            let path = scratch.file(name, contents)
            let run = try touchlog(["append", "--store", scratch.store, path])
            #expect(run.status == 0)
            #expect(run.stdout == "appended 0 events\n")
        }
        // The shape of GET /v1/stats (one writer for both): an empty store's times are null.
        let stats = try touchlog(["stats", "--store", scratch.store, "--json"]).stdout
        #expect(stats.hasPrefix(#"{"events":0,"profiles":0,"erasedProfiles":0,"touchpoints":0,"#), "\(stats)")
        #expect(stats.contains(#""firstTime":null,"lastTime":null,"#) && stats.contains(#""format":"#), "\(stats)")
    }

    @Test func wrongFlagsAndTimesAreUsageErrors() throws {
        let scratch = TemporaryDirectory()
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
        let s = scratch.store
        for arguments in [
            ["append", "--store", s, "--format", "xml", fixture("events/sample.jsonl")],
            ["append", "--store", s, "--bogus"],
            ["replay", "--store", s, "--from-offset", "-1"],
            ["replay", "--store", s, "--from-offset", "ten"],
            ["replay", "--store", s, "--since", "2022-06-31T00:00:00Z"],
            ["replay", "--store", s, "--type", "purchase"],
            ["query", "--store", s, "--rules", fixture("segments/summer-2022-clickers.json"), "--as-of", "yesterday"],
            [
                "query", "--store", s, "--rules", fixture("segments/summer-2022-clickers.json"), "--known-at",
                "10000-01-01T00:00:00Z",
            ],
            ["query", "--store", s, "--rules", fixture("segments/summer-2022-clickers.json"), "--format", "xml"],
            ["diff", "--store", s, "x", "--from", "2022-06-01T00:00:00Z"],
            ["snapshot", "prune", "--store", s, "--keep", "-3"],
        ] {
            let run = try touchlog(arguments)
            #expect(run.status == 64, "\(arguments): \(run.stderr)")
            #expect(
                run.stderr.hasPrefix("Error: ") || run.stderr.hasPrefix("touchlog: "), "\(arguments): \(run.stderr)")
        }
        #expect(try touchlog(["replay", "--store", s]).stdout.split(separator: "\n").count == 42)
    }
}
