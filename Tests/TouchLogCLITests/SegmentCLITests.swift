import Foundation
import Testing
import TouchLogTestSupport

@Suite struct SegmentCLITests {
    /// A store with the sample events and the seed article's three segments.
    func sampleStore(_ scratch: TemporaryDirectory) throws {
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
        for name in ["discount-clickers-not-converted", "iphone-interest", "summer-2022-clickers"] {
            let put = try touchlog(["segment", "put", "--store", scratch.store, fixture("segments/\(name).json")])
            #expect(put.stdout == "stored segment \(name) version 1\n")
        }
    }

    @Test func theSeedSegmentsAtThreeDatesMatchTheGoldenFile() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        let golden = try String(contentsOfFile: fixture("golden/segments-sample.txt"), encoding: .utf8)
        #expect(try goldenAnswers(golden, store: scratch.store) == golden)
    }

    /// Runs each `# touchlog …` line of a golden file on `store`; returns each line followed by what it printed.
    func goldenAnswers(_ golden: String, store: String) throws -> String {
        var produced = ""
        for line in golden.split(separator: "\n") where line.hasPrefix("# touchlog ") {
            produced += line + "\n"
            let arguments = line.dropFirst("# touchlog ".count).split(separator: " ").map(String.init)
            let run = try touchlog(arguments + ["--store", store])
            #expect(run.status == 0, "\(line): \(run.stderr)")
            produced += run.stdout
        }
        return produced
    }

    /// The example segments of the second grammar (a sequence, a value aggregate, lifecycle with `before`, a
    /// calendar week in Amsterdam, segment references) and histories, on the sample events.
    @Test func theSecondGrammarExamplesAndHistoriesMatchTheGoldenFile() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        for name in [
            "summer-browse-then-click", "big-spenders", "summer-dormant", "discount-this-week-amsterdam",
            "discount-not-iphone",
        ] {
            let put = try touchlog(["segment", "put", "--store", scratch.store, fixture("segments/\(name).json")])
            #expect(put.stdout == "stored segment \(name) version 1\n", "\(put.stderr)")
        }
        let golden = try String(contentsOfFile: fixture("golden/segments-second-grammar.txt"), encoding: .utf8)
        #expect(try goldenAnswers(golden, store: scratch.store) == golden)
        // A referenced segment cannot be removed; the referrer names what it refers to.
        let rm = try touchlog(["segment", "rm", "--store", scratch.store, "iphone-interest"])
        #expect(
            rm.status == 1
                && rm.stderr
                    == "touchlog: segment \"iphone-interest\" is referred to by \"discount-not-iphone\": change or remove it first\n"
        )
        let cycle = scratch.path + "/cycle.json"
        try #"{"name":"discount-clickers-not-converted","match":"all","rules":[{"segment":"discount-not-iphone"}]}"#
            .write(toFile: cycle, atomically: true, encoding: .utf8)
        let put = try touchlog(["segment", "put", "--store", scratch.store, cycle])
        #expect(put.status == 65, "\(put.stderr)")
        #expect(
            put.stderr.contains(
                #"rules[0].segment: refers back to itself: "discount-clickers-not-converted" → "discount-not-iphone" → "discount-clickers-not-converted" is a cycle"#
            ))
        // explain shows the events behind each new kind of rule.
        let sequence = try touchlog([
            "explain", "--store", scratch.store, "summer-browse-then-click", "judy", "--as-of", "2022-07-31T00:00:00Z",
        ]).stdout
        #expect(
            sequence.contains("matched by:\n      offset 26  2022-07-03T09:00:00.000Z  view  summer-2022-collection"),
            "\(sequence)")
        #expect(sequence.contains(" events that can take a step:\n") && !sequence.contains("qualifying"), "\(sequence)")
        let value = try touchlog([
            "explain", "--store", scratch.store, "big-spenders", "grace", "--as-of", "2022-07-31T00:00:00Z",
        ]).stdout
        #expect(value.contains("aggregate of values: 120\n"), "\(value)")
        let reference = try touchlog([
            "explain", "--store", scratch.store, "discount-not-iphone", "dave", "--as-of", "2022-07-03T00:00:00Z",
        ]).stdout
        #expect(
            reference.contains(
                #"rules[1] does not hold: NOT member of segment "iphone-interest" (match all of 2 rules)"#),
            "\(reference)")
        // Bad history arguments are usage errors.
        let badStep = try touchlog([
            "history", "--store", scratch.store, "big-spenders", "--from", "2022-06-01T00:00:00Z", "--to",
            "2022-07-01T00:00:00Z",
            "--step", "1x",
        ])
        #expect(badStep.status == 64 && badStep.stderr.contains("--step"))
        let tooMany = try touchlog([
            "history", "--store", scratch.store, "big-spenders", "--from", "2022-06-01T00:00:00Z", "--to",
            "2022-07-01T00:00:00Z",
            "--step", "1ms",
        ])
        #expect(tooMany.status == 64 && tooMany.stderr.contains("more than 100000 points"), "\(tooMany.stderr)")
    }

    /// A store written by touchlog 0.1.0 (format 1; `Fixtures/stores/sample-0.1.0`: the sample events, the three seed
    /// segments, a snapshot of each) still answers, then migrates to format 2 with the same answers.
    @Test func aStoreOf010AnswersAndMigratesWithTheGoldenAnswersAndBothChainsVerified() throws {
        let scratch = TemporaryDirectory()
        try FileManager.default.copyItem(atPath: fixture("stores/sample-0.1.0"), toPath: scratch.store)
        let before = try touchlog(["verify", "--store", scratch.store]).stdout
        #expect(before.contains("checked 3 snapshots and the segment definitions\nok\n"), "\(before)")
        #expect(
            try touchlog(["stats", "--store", scratch.store]).stdout.contains("log files       1 (1 block, format 1)\n")
        )
        let golden = try String(contentsOfFile: fixture("golden/segments-sample.txt"), encoding: .utf8)
        func answers() throws -> String { try goldenAnswers(golden, store: scratch.store) }
        #expect(try answers() == golden)
        let oldHead = before.split(separator: "\n").first { $0.hasPrefix("chain head: ") }!.dropFirst(
            "chain head: ".count)
        let migrate = try touchlog(["migrate", "--store", scratch.store])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        #expect(migrate.stdout.hasPrefix("migrated 42 events in 1 commit from format 1 to format 3\n"))
        #expect(migrate.stdout.contains("previous chain head: \(oldHead) (that log is kept in log-format1/)"))
        #expect(try answers() == golden)
        let verify = try touchlog(["verify", "--store", scratch.store])
        #expect(verify.status == 0)
        #expect(
            verify.stdout.contains(
                "checked the replaced format-1 log (log-format1/): 1 block, 42 events, chain head \(oldHead)"))
        #expect(verify.stdout.hasSuffix("ok\n"))
        #expect(
            try touchlog(["migrate", "--store", scratch.store]).stdout
                == "the store is already in format 3; nothing to do\n")
        // Erasure waits until the plain-text log the migration kept is moved out of the store.
        let refused = try touchlog(["erase", "--store", scratch.store, "alice"])
        #expect(refused.status == 1 && refused.stderr.contains("move it out of the store"))
        // Appends go on in format 3.
        #expect(
            try touchlog(["append", "--store", scratch.store, fixture("events/sample.csv")]).stdout
                == "appended 42 events, offsets 42–83\n")
        #expect(try touchlog(["verify", "--store", scratch.store]).status == 0)
        #expect(
            try touchlog(["stats", "--store", scratch.store]).stdout.contains(
                "log files       1 (2 blocks, format 3)\n"))
    }

    /// A format-3 store whose blocks give positions per group (summary layout 2, what was written up to commit
    /// 1beb6eb; `Fixtures/stores/sample-layout2`: the sample events as JSONL, then as CSV, and the eight sample
    /// segments) verifies, replays, explains and answers, sequences and histories included, exactly as a store of
    /// the same appends written now (layout 3); appends to it go on in layout 3.
    @Test func aStoreOfLayoutTwoBlocksAnswersAsOneWrittenNowAndTakesAppends() throws {
        let old = TemporaryDirectory()
        try FileManager.default.copyItem(atPath: fixture("stores/sample-layout2"), toPath: old.store)
        let new = TemporaryDirectory()
        let segments = [
            "big-spenders", "discount-clickers-not-converted", "discount-this-week-amsterdam", "iphone-interest",
            "summer-2022-clickers", "summer-browse-then-click", "summer-dormant", "discount-not-iphone",
        ]
        for file in ["events/sample.jsonl", "events/sample.csv"] {
            #expect(try touchlog(["append", "--store", new.store, fixture(file)]).status == 0)
        }
        for name in segments {
            #expect(
                try touchlog(["segment", "put", "--store", new.store, fixture("segments/\(name).json")]).status == 0)
        }
        func same(_ arguments: [String], _ line: SourceLocation = #_sourceLocation) throws {
            let before = try touchlog(arguments + ["--store", old.store])
            let now = try touchlog(arguments + ["--store", new.store])
            #expect(before.status == 0 && now.status == 0, "\(arguments): \(before.stderr)", sourceLocation: line)
            // Recorded times (the wall clock of each append) are left out: in replay's JSON and in explain's text.
            func withoutRecordedTimes(_ output: String) -> String {
                withoutRecorded(output).replacingOccurrences(
                    of: #" \(recorded [^)]*\)"#, with: "", options: .regularExpression)
            }
            #expect(
                withoutRecordedTimes(before.stdout) == withoutRecordedTimes(now.stdout), "\(arguments)",
                sourceLocation: line)
        }
        func check() throws {
            #expect(try touchlog(["verify", "--store", old.store]).stdout.hasSuffix("ok\n"))
            try same(["replay"])
            for name in segments {
                for day in ["2022-06-15", "2022-07-03", "2022-07-31"] {
                    try same(["query", name, "--as-of", day + "T00:00:00Z"])
                }
            }
            try same(["explain", "summer-browse-then-click", "alice", "--as-of", "2022-07-03T00:00:00Z"])
            try same([
                "history", "summer-browse-then-click", "--from", "2022-06-01T00:00:00Z", "--to", "2022-07-31T00:00:00Z",
                "--step", "1d",
            ])
        }
        #expect(
            try touchlog(["query", "summer-browse-then-click", "--as-of", "2022-07-03T00:00:00Z", "--store", old.store])
                .stdout == "alice\n")
        try check()
        for store in [old.store, new.store] {
            #expect(try touchlog(["append", "--store", store, fixture("events/sample.jsonl")]).status == 0)
        }
        #expect(
            try touchlog(["stats", "--store", old.store]).stdout.contains("log files       1 (3 blocks, format 3)\n"))
        try check()
    }

    @Test func queryFormatsCountAndRulesFile() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        let at = ["--as-of", "2022-07-03T00:00:00Z", "--store", scratch.store]
        #expect(try touchlog(["query", "discount-clickers-not-converted", "--count"] + at).stdout == "4\n")
        #expect(
            try touchlog(["query", "discount-clickers-not-converted", "--format", "csv"] + at).stdout
                == "profile\nalice\ncarol\nheidi\nivan\n")
        #expect(
            try touchlog(["query", "discount-clickers-not-converted", "--format", "jsonl"] + at).stdout.hasPrefix(
                #"{"profile":"alice"}"#))
        #expect(try touchlog(["query", "--rules", fixture("segments/iphone-interest.json")] + at).stdout == "dave\n")
    }

    @Test func knownAtLeavesOutWhatWasRecordedLater() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        usleep(20_000)
        let between = String(Int64(Date().timeIntervalSince1970 * 1000))
        usleep(20_000)
        // A late click of 1 July, recorded only now.
        let late = scratch.file(
            "late.jsonl",
            #"{"time":"2022-07-01T12:00:00Z","profile":"zoe","type":"click","touchpoint":"discount-notification"}"#
                + "\n")
        #expect(try touchlog(["append", "--store", scratch.store, late]).status == 0)
        let asOf = ["discount-clickers-not-converted", "--as-of", "2022-07-03T00:00:00Z", "--store", scratch.store]
        #expect(try touchlog(["query"] + asOf).stdout == "alice\ncarol\nheidi\nivan\nzoe\n")
        #expect(try touchlog(["query"] + asOf + ["--known-at", between]).stdout == "alice\ncarol\nheidi\nivan\n")
        let explain = try touchlog([
            "explain", "discount-clickers-not-converted", "zoe", "--as-of", "2022-07-03T00:00:00Z", "--known-at",
            between, "--store", scratch.store,
        ])
        #expect(explain.stdout.contains("zoe is NOT a member"))
        #expect(
            explain.stdout.contains(
                "the store knows no events of this profile then (unknown: never appended by then, or erased)"))
    }

    @Test func explainNamesTheDecidingEvents() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        let run = try touchlog([
            "explain", "discount-clickers-not-converted", "carol", "--as-of", "2022-07-31T00:00:00Z", "--store",
            scratch.store,
        ])
        #expect(run.status == 0)
        #expect(
            run.stdout.hasPrefix(
                "carol is NOT a member of discount-clickers-not-converted (version 1) as of 2022-07-31T00:00:00.000Z\n")
        )
        #expect(
            run.stdout.contains(
                "rules[0] does not hold: click on touchpoint exactly \"discount-notification\", in the last 30d, not converted since"
            ))
        #expect(run.stdout.contains("offset 25  2022-07-02T10:00:00.000Z  click  discount-notification"))
        #expect(run.stdout.contains("conversions from the first qualifying event to T:"))
        #expect(
            run.stdout.contains("offset 37  2022-07-20T07:00:00.000Z  conversion  discount-notification  value 19.99"))
    }

    @Test func definitionsAreVersionedListedShownAndRemoved() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        var changed = try String(contentsOfFile: fixture("segments/summer-2022-clickers.json"), encoding: .utf8)
        changed = changed.replacingOccurrences(of: "\"30d\"", with: "\"3d\"")
        let file = scratch.file("changed.json", changed)
        #expect(
            try touchlog(["segment", "put", "--store", scratch.store, file]).stdout
                == "stored segment summer-2022-clickers version 2\n")
        #expect(
            try touchlog(["segment", "put", "--store", scratch.store, file]).stdout
                == "segment summer-2022-clickers unchanged (version 2)\n")
        #expect(
            try touchlog(["segment", "show", "summer-2022-clickers", "--store", scratch.store]).stdout.contains(
                #""last":"3d""#))
        #expect(
            try touchlog(["segment", "show", "summer-2022-clickers", "--version", "1", "--store", scratch.store]).stdout
                .contains(#""last":"30d""#))
        #expect(
            try touchlog(["segment", "list", "--store", scratch.store]).stdout.split(separator: "\n").map {
                $0.split(separator: "\t").prefix(2).joined(separator: " ")
            }
                == ["discount-clickers-not-converted v1", "iphone-interest v1", "summer-2022-clickers v2"])
        #expect(
            try touchlog(["segment", "rm", "iphone-interest", "--store", scratch.store]).stdout
                == "removed segment iphone-interest (version 2; earlier versions kept)\n")
        let gone = try touchlog(["query", "iphone-interest", "--store", scratch.store])
        #expect(gone.status == 66)
        #expect(gone.stderr.contains("no segment named \"iphone-interest\""))
        #expect(
            try touchlog(["segment", "show", "iphone-interest", "--version", "1", "--store", scratch.store]).status == 0
        )
    }

    @Test func badDefinitionsAndNamesGiveTheDocumentedExitCodes() throws {
        let scratch = TemporaryDirectory()
        try sampleStore(scratch)
        let bad = scratch.file(
            "bad.json",
            #"{"name":"x","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"t"},"timeframe":{"last":"30x"}}]}"#
        )
        let put = try touchlog(["segment", "put", "--store", scratch.store, bad])
        #expect(put.status == 65)
        #expect(
            put.stderr
                == "touchlog: \(bad): rules[0].timeframe.last: bad duration \"30x\" (a whole number and ms, s, m, h, d or w, such as 30d)\n"
        )
        #expect(try touchlog(["query", "nope", "--store", scratch.store]).status == 66)
        #expect(try touchlog(["query", "--store", scratch.store]).status == 64)
        #expect(try touchlog(["query", "x", "--as-of", "soon", "--store", scratch.store]).status == 64)
        #expect(
            try touchlog([
                "diff", "discount-clickers-not-converted", "--from", "2022-06-15T00:00:00Z", "--store", scratch.store,
            ]).status == 64)
    }
}
