import Foundation
import Testing
import TouchLog
import TouchLogTestSupport

@Suite struct CLITests {
    @Test func theFixtureAppendsReplaysVerifiesAndReportsStats() throws {
        let scratch = TemporaryDirectory()
        let append = try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        #expect(append.status == 0)
        #expect(append.stdout == "appended 42 events, offsets 0–41\n")
        let replay = try touchlog(["replay"], environment: ["TOUCHLOG_STORE": scratch.store])
        #expect(replay.status == 0)
        let golden = try String(contentsOfFile: fixture("golden/replay-sample.jsonl"), encoding: .utf8)
        #expect(withoutRecorded(replay.stdout) == golden)
        let verify = try touchlog(["verify", "--store", scratch.store])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("checked 1 file, 1 block, 42 events"))
        #expect(verify.stdout.contains("chain head: "))
        #expect(verify.stdout.hasSuffix("ok\n"))
        let stats = try touchlog(["stats", "--store", scratch.store])
        #expect(stats.stdout.contains("events          42\n"))
        #expect(stats.stdout.contains("profiles        11\n"))
        #expect(stats.stdout.contains("touchpoints     4\n"))
        #expect(stats.stdout.contains("event times     2022-06-01T09:00:00.000Z – 2022-07-30T11:30:00.000Z\n"))
    }

    /// New stores get log format 3; TOUCHLOG_NEW_STORE_FORMAT=1 or 2 creates one an older touchlog can read (format 1:
    /// 0.1.0), and an existing store keeps its format whatever the variable says.
    @Test func newStoresGetFormat3UnlessAskedForAnOlderOne() throws {
        let three = TemporaryDirectory()
        #expect(try touchlog(["append", "--store", three.store, fixture("events/sample.jsonl")]).status == 0)
        #expect(try touchlog(["stats", "--store", three.store]).stdout.contains("(1 block, format 3)"))
        for version in [1, 2] {
            let older = TemporaryDirectory()
            #expect(
                try touchlog(
                    ["append", "--store", older.store, fixture("events/sample.jsonl")],
                    environment: ["TOUCHLOG_NEW_STORE_FORMAT": "\(version)"]
                ).status == 0)
            #expect(try touchlog(["append", "--store", older.store, fixture("events/sample.csv")]).status == 0)
            #expect(try touchlog(["stats", "--store", older.store]).stdout.contains("(2 blocks, format \(version))"))
        }
        #expect(
            try touchlog(
                ["append", "--store", three.store, fixture("events/sample.csv")],
                environment: ["TOUCHLOG_NEW_STORE_FORMAT": "1"]
            ).status == 0)
        #expect(try touchlog(["stats", "--store", three.store]).stdout.contains("(2 blocks, format 3)"))
        let scratch = TemporaryDirectory()
        let bad = try touchlog(
            ["append", "--store", scratch.store, fixture("events/sample.jsonl")],
            environment: ["TOUCHLOG_NEW_STORE_FORMAT": "4"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("TOUCHLOG_NEW_STORE_FORMAT must be 1, 2 or 3, not \"4\""))
    }

    /// `touchlog erase`: the profile leaves segments and replay, verify still passes and names the chain head it
    /// printed before; unknown identifiers exit 66 and change nothing (or are listed with --skip-unknown), an
    /// empty one exits 65; --from reads identifiers from a file.
    @Test func eraseForgetsAProfileAndVerifyNamesTheHeadBeforeIt() throws {
        let scratch = TemporaryDirectory()
        let store = ["--store", scratch.store]
        #expect(try touchlog(["append", fixture("events/sample.jsonl")] + store).status == 0)
        #expect(try touchlog(["segment", "put", fixture("segments/summer-2022-clickers.json")] + store).status == 0)
        let query = ["query", "summer-2022-clickers", "--as-of", "2022-07-03T00:00:00Z"] + store
        #expect(try touchlog(query).stdout == "bob\ngrace\n")
        let head = try touchlog(["verify"] + store).stdout.split(separator: "\n").first {
            $0.hasPrefix("chain head: ")
        }!.dropFirst(12)

        let unknown = try touchlog(["erase", "grace", "nobody"] + store)
        #expect(
            unknown.status == 66 && unknown.stderr.contains(#"the store holds no profile "nobody"; nothing erased"#))
        #expect(try touchlog(query).stdout == "bob\ngrace\n")
        #expect(try touchlog(["erase", ""] + store).status == 65)
        let erased = try touchlog(["erase", "grace", "nobody", "--skip-unknown", "--reason", "request 17"] + store)
        #expect(
            erased.status == 0
                && erased.stdout.hasPrefix("erased 1 profile\nunknown, not erased: nobody\nchain head: "),
            "\(erased.stderr)")
        #expect(try touchlog(query).stdout == "bob\n")
        #expect(try touchlog(["replay", "--profile", "grace"] + store).stdout.isEmpty)
        #expect(try touchlog(["replay", "--include-erased"] + store).stdout.contains(#""profile":null,"erased":true"#))
        let verify = try touchlog(["verify"] + store)
        #expect(
            verify.status == 0 && verify.stdout.contains("(request 17); the chain before it ends at \(head)\n"),
            "\(verify.stdout)")
        #expect(try touchlog(["stats"] + store).stdout.contains("profiles        10 (and 1 erased)\n"))

        let list = scratch.file("erase.txt", "bob\n\nalice\n")
        #expect(try touchlog(["erase", "--from", list] + store).stdout.hasPrefix("erased 2 profiles\n"))
        #expect(try touchlog(query).stdout.isEmpty)
    }

    @Test func csvGivesTheSameEventsAsJSONLines() throws {
        let scratch = TemporaryDirectory()
        let csv = try String(contentsOfFile: fixture("events/sample.csv"), encoding: .utf8)
        #expect(try touchlog(["append", "--store", scratch.store, "--format", "csv", "-"], stdin: csv).status == 0)
        let golden = try String(contentsOfFile: fixture("golden/replay-sample.jsonl"), encoding: .utf8)
        #expect(withoutRecorded(try touchlog(["replay", "--store", scratch.store]).stdout) == golden)
    }

    @Test func replayOutputAppendsBackIntoAnIdenticalStore() throws {
        let scratch = TemporaryDirectory()
        try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        try touchlog(["append", "--store", scratch.store, fixture("events/sample.csv")])
        let first = try touchlog(["replay", "--store", scratch.store]).stdout
        let copy = scratch.path + "/copy"
        let again = try touchlog(["append", "--store", copy], stdin: first)
        #expect(again.stdout == "appended 84 events, offsets 0–83\n")
        #expect(withoutRecorded(try touchlog(["replay", "--store", copy]).stdout) == withoutRecorded(first))
    }

    @Test func replayFiltersNarrowTheOutput() throws {
        let scratch = TemporaryDirectory()
        try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        func offsets(_ args: [String]) throws -> [Int] {
            try touchlog(["replay", "--store", scratch.store] + args).stdout.split(separator: "\n").map { line in
                Int(line.split(separator: ",")[0].dropFirst(#"{"offset":"#.count))!
            }
        }
        #expect(try offsets(["--from-offset", "40"]) == [40, 41])
        #expect(try offsets(["--to-offset", "1"]) == [0, 1])
        #expect(try offsets(["--profile", "alice", "--type", "click"]) == [1, 23])
        #expect(
            try offsets(["--touchpoint", "iphone-interest", "--since", "2022-07-01T00:00:00Z"]) == [31, 35, 38, 41])
        #expect(try offsets(["--until", "1654041600000", "--type", "conversion"]) == [])
        #expect(try offsets(["--profile", "mallory", "--until", "2022-06-03T00:00:00Z"]) == [24])
    }

    @Test func invalidInputExits65AppendsNothingAndNamesEachLine() throws {
        let scratch = TemporaryDirectory()
        let run = try touchlog(["append", "--store", scratch.store, fixture("invalid/mixed.jsonl")])
        #expect(run.status == 65)
        #expect(run.stdout == "")
        #expect(
            run.stderr == """
                2:9 bad time "2022-06-31T09:00:00.000Z": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds
                3 touchpoint is required for a click
                4:60 unknown type "purchase": expected view, click or conversion
                5:1 expected '{' (each line must be one JSON object)
                6 profile is empty
                7:81 value must be a number
                touchlog: 6 invalid lines; nothing appended

                """)
        #expect(try touchlog(["replay", "--store", scratch.store]).stdout == "")
    }

    @Test func skipInvalidWritesRejectsWithReasons() throws {
        let scratch = TemporaryDirectory()
        let rejects = scratch.path + "/rejects.jsonl"
        let run = try touchlog([
            "append", "--store", scratch.store, "--skip-invalid", "--rejects", rejects, fixture("invalid/mixed.jsonl"),
        ])
        #expect(run.status == 0)
        #expect(run.stdout == "appended 1 event, offsets 0–0\n")
        #expect(run.stderr.contains("skipped 6 invalid lines (written to \(rejects))"))
        let lines = try String(contentsOfFile: rejects, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 6)
        #expect(lines[0].hasPrefix(#"{"line":2,"column":9,"reason":"bad time"#))
        #expect(
            lines[3]
                == #"{"line":5,"column":1,"reason":"expected '{' (each line must be one JSON object)","#
                + #""message":"5:1 expected '{' (each line must be one JSON object)","text":"this is not json"}"#
        )
    }

    @Test func usageErrorsExit64() throws {
        #expect(try touchlog(["replay"]).status == 64)
        #expect(try touchlog(["replay"]).stderr.contains("no store given"))
        #expect(try touchlog(["replay", "--store", "/tmp", "--since", "yesterday"]).status == 64)
        #expect(try touchlog(["replay", "--store", "/tmp", "--type", "like"]).status == 64)
        #expect(try touchlog(["append", "--store", "/tmp/x", "--rejects", "r.jsonl"]).status == 64)
        #expect(try touchlog(["append", "--store", "/tmp/x", "--format", "xml"]).status == 64)
        #expect(try touchlog(["frobnicate"]).status == 64)
    }

    @Test func aMissingStoreOrInputExits66() throws {
        let scratch = TemporaryDirectory()
        for command in ["replay", "verify", "stats"] {
            let run = try touchlog([command, "--store", scratch.path + "/nothing-here"])
            #expect(run.status == 66, "\(command)")
            #expect(run.stderr.contains("no touchlog store at"))
        }
        let run = try touchlog(["append", "--store", scratch.store, scratch.path + "/missing.jsonl"])
        #expect(run.status == 66)
        #expect(run.stderr.contains("missing.jsonl"))
        let directory = try touchlog(["append", "--store", scratch.store, scratch.path])
        #expect(directory.status == 66)
        #expect(directory.stderr.contains("it is a directory; nothing appended"))
    }

    @Test func aSecondWriterExits75() throws {
        let scratch = TemporaryDirectory()
        let holder = try TouchLogStore(directory: scratch.store)
        let run = try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        #expect(run.status == 75)
        #expect(run.stderr.contains("locked by another writer (pid \(getpid()))"))
        _ = holder
        // Readers are not blocked by the writer.
        #expect(try touchlog(["replay", "--store", scratch.store]).status == 0)
    }

    @Test func verifyExits1AndNamesTheDamage() throws {
        let scratch = TemporaryDirectory()
        try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        let file = scratch.store + "/log/00000000000000000000.tlog"
        var bytes = [UInt8](FileManager.default.contents(atPath: file)!)
        bytes[200] ^= 0x10
        // Also a torn tail after the last commit: with damage before it, it is not presented as something the writer
        // will simply remove (the writer refuses the log).
        bytes += [UInt8](repeating: 0x55, count: 100)
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        let run = try touchlog(["verify", "--store", scratch.store])
        #expect(run.status == 1)
        #expect(
            run.stdout.contains("damage: log/00000000000000000000.tlog block 0 at byte 32: block checksum mismatch\n"))
        #expect(!run.stdout.contains("the writer removes them"))
        // The second commit's block is intact, but its events name profiles by ids the damaged block introduced.
        #expect(
            run.stdout.contains(
                "note: 1 block after the damage checked on its own: its events name profiles or touchpoints by ids the damaged block introduced"
            ))
        #expect(run.stdout.hasSuffix("FAILED: 1 problem found\n"))
        let replay = try touchlog(["replay", "--store", scratch.store])
        #expect(replay.status == 1)
        #expect(replay.stderr.contains("block 0 at byte 32: block checksum mismatch"))
        let append = try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")])
        #expect(append.status == 1)
    }

    @Test func readerProcessesDuringAppendsSeeOnlyWholeCommits() async throws {
        let scratch = TemporaryDirectory()
        // Blocks of 30 events, commits of 100: every commit spans several blocks.
        let store = try TouchLogStore(directory: scratch.store, options: .init(rollSize: 64 << 10), blockEvents: 30)
        let writer = Task {
            for commit in 0..<150 {
                let events = (0..<100).map { i in
                    Event(time: Int64(commit * 100 + i), profile: "commit-\(commit)", type: .view, touchpoint: "t")
                }
                try await store.append(events)
            }
        }
        var observations = 0
        while !writer.isCancelled {
            let replay = try touchlog(["replay", "--store", scratch.store])
            #expect(replay.status == 0, "\(replay.stderr)")
            let lines = replay.stdout.split(separator: "\n")
            #expect(lines.count % 100 == 0, "a reader saw \(lines.count) events: part of a commit")
            for (index, line) in lines.enumerated() {
                #expect(line.hasPrefix("{\"offset\":\(index),"))
                #expect(line.contains("\"profile\":\"commit-\(index / 100)\""))
            }
            observations += 1
            if lines.count == 15_000 { break }
        }
        try await writer.value
        let verify = try touchlog(["verify", "--store", scratch.store])
        #expect(verify.status == 0)
        #expect(observations > 1)
    }
}
