import Foundation
import Testing
import TouchLogTestSupport

@Suite struct SnapshotCLITests {
    @Test func snapshotsAreCreatedListedVerifiedPrunedAndNeverChangeAnAnswer() throws {
        let scratch = TemporaryDirectory()
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
        for name in ["big-spenders", "iphone-interest"] {
            #expect(
                try touchlog(["segment", "put", "--store", scratch.store, fixture("segments/\(name).json")]).status == 0
            )
        }
        let query = ["query", "iphone-interest", "--as-of", "2022-07-31T00:00:00Z", "--store", scratch.store]
        let before = try touchlog(query).stdout
        // (A format-2 snapshot keeps rules over all time or between fixed dates, and rules over moving windows that
        // it can keep as latest times; a rule with a value condition over the last 90 days it cannot keep.)
        let create = try touchlog(["snapshot", "create", "--store", scratch.store])
        #expect(create.stdout.contains("iphone-interest: snapshot at offset 42, watermark 2022-07-30T11:30:00.000Z"))
        #expect(
            create.stdout.contains(
                "big-spenders: nothing to snapshot (its rules look back from T and are read from the log)"))
        #expect(
            try touchlog(["snapshot", "create", "--store", scratch.store]).stdout.contains(
                "iphone-interest: already snapshotted"))
        let list = try touchlog(["snapshot", "--store", scratch.store]).stdout.split(separator: "\n")
        #expect(list.count == 1)
        #expect(try touchlog(query).stdout == before)
        #expect(
            try touchlog(["verify", "--store", scratch.store]).stdout.contains(
                "checked 1 snapshot and the segment definitions"))

        // Damage one snapshot: verify names it and exits 1; the query still answers the same from the log.
        let path =
            scratch.store + "/" + String(list.first { $0.hasPrefix("iphone-interest") }!.split(separator: "\t").last!)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[bytes.count - 3] ^= 0x01
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let verify = try touchlog(["verify", "--store", scratch.store])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("checksum mismatch"))
        #expect(try touchlog(query).stdout == before)

        // A damaged definition file is named too.
        let definition = scratch.store + "/segments/iphone-interest/000001.json"
        var text = [UInt8](FileManager.default.contents(atPath: definition)!)
        text[text.count - 5] ^= 0x01
        _ = FileManager.default.createFile(atPath: definition, contents: Data(text))
        #expect(
            try touchlog(["verify", "--store", scratch.store]).stdout.contains(
                "segments/iphone-interest/000001.json: checksum mismatch"))

        // Pruning needs to know which definitions are current, so it refuses while one is unreadable.
        let refused = try touchlog(["snapshot", "prune", "--keep", "0", "--store", scratch.store])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("checksum mismatch"))
        text[text.count - 5] ^= 0x01
        _ = FileManager.default.createFile(atPath: definition, contents: Data(text))
        #expect(
            try touchlog(["snapshot", "prune", "--keep", "0", "--store", scratch.store]).stdout
                == "deleted 1 snapshot, kept 0\n")
        #expect(try touchlog(query).stdout == before)
        #expect(try touchlog(["snapshot", "prune", "--keep", "-1", "--store", scratch.store]).status == 64)
    }

    @Test func queriesSaveSnapshotsByThemselves() throws {
        let scratch = TemporaryDirectory()
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
        #expect(
            try touchlog(["segment", "put", "--store", scratch.store, fixture("segments/iphone-interest.json")]).status
                == 0)
        #expect(
            try touchlog(
                ["query", "iphone-interest", "--store", scratch.store], environment: ["TOUCHLOG_SNAPSHOT_EVERY": "10"]
            ).status == 0)
        #expect(
            try touchlog(["snapshot", "list", "--store", scratch.store]).stdout.contains("iphone-interest\toffset 42"))
        #expect(
            try touchlog(
                ["query", "iphone-interest", "--store", scratch.store], environment: ["TOUCHLOG_SNAPSHOT_EVERY": "x"]
            ).status == 64)
        // A segment whose rules all look back from T with a value condition has nothing a format-2 snapshot keeps.
        #expect(
            try touchlog(["segment", "put", "--store", scratch.store, fixture("segments/big-spenders.json")]).status
                == 0)
        #expect(
            try touchlog(["snapshot", "create", "big-spenders", "--store", scratch.store]).stdout
                == "big-spenders: nothing to snapshot (its rules look back from T and are read from the log)\n")
    }
}
