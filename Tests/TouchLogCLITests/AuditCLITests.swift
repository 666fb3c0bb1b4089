import Foundation
import Testing
import TouchLog
import TouchLogTestSupport

/// An audit as an auditor runs it: note the head, keep a signed record, check both later; and every bad input.
@Suite struct AuditCLITests {
    static func store(_ scratch: TemporaryDirectory) throws -> [String: String] {
        let environment = ["TOUCHLOG_STORE": scratch.store]
        #expect(try touchlog(["append", fixture("events/sample.jsonl")], environment: environment).status == 0)
        #expect(
            try touchlog(["segment", "put", fixture("segments/summer-2022-clickers.json")], environment: environment)
                .status == 0)
        return environment
    }

    @Test func anAuditorNotesTheHeadKeepsASignedRecordAndChecksBothLater() async throws {
        let scratch = TemporaryDirectory()
        let environment = try Self.store(scratch)
        let verify = try touchlog(["verify"], environment: environment)
        let head = String(verify.stdout.split(separator: "\n").first { $0.hasPrefix("chain head: ") }!.dropFirst(12))

        let key = scratch.path + "/auditor"
        let keygen = try touchlog(["audit", "keygen", key])
        #expect(keygen.status == 0, "\(keygen.stderr)")
        #expect(try touchlog(["audit", "keygen", key]).status == 1)
        let audit = try touchlog(
            ["audit", "summer-2022-clickers", "--as-of", "2022-07-03T00:00:00Z", "--sign", key],
            environment: environment)
        #expect(audit.status == 0, "\(audit.stderr)")
        #expect(audit.stdout.hasPrefix("{\"touchlogAudit\":1,\"segment\":\"summer-2022-clickers\",\"version\":1,"))
        #expect(audit.stdout.contains("\"chainHead\":\"\(head)\""))
        #expect(audit.stdout.contains("\"members\":2,"))
        // The digest is sha256sum of the query's output at the same T and K.
        let query = try touchlog(
            ["query", "summer-2022-clickers", "--as-of", "2022-07-03T00:00:00Z"], environment: environment)
        #expect(query.stdout == "bob\ngrace\n")
        #expect(audit.stdout.contains("\"memberDigest\":\"\(BlockHash.sha256(of: Array(query.stdout.utf8)))\""))
        // The same record from the `record` subcommand's full name.
        let again = try touchlog(
            ["audit", "record", "summer-2022-clickers", "--as-of", "2022-07-03T00:00:00Z", "--sign", key],
            environment: environment)
        #expect(again.stdout == audit.stdout)
        let record = scratch.file("record.json", audit.stdout)
        // The library's record is the same bytes.
        let library = try await TouchLogStore(readingFrom: scratch.store).audit(
            "summer-2022-clickers", at: try QueryTime(asOf: "2022-07-03T00:00:00Z"),
            signingKey: try AuditSigningKey(contentsOf: key))
        #expect(library.json + "\n" == audit.stdout)

        // Months later, after more appends: both still hold.
        #expect(
            try touchlog(
                ["append", "-"],
                stdin:
                    "{\"time\":\"2022-07-02T00:00:00Z\",\"profile\":\"zed\",\"type\":\"click\",\"touchpoint\":\"summer-2022-collection\"}\n",
                environment: environment
            ).status == 0)
        let anchored = try touchlog(["verify", "--anchor", head], environment: environment)
        #expect(anchored.status == 0, "\(anchored.stdout)")
        #expect(anchored.stdout.contains("anchor \(head): log/"))
        #expect(anchored.stdout.contains("1 block was committed after it"))
        let check = try touchlog(["audit", "check", record, "--public-key", key + ".pub"], environment: environment)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("signature: verifies"))
        #expect(check.stdout.hasSuffix("ok\n"))
        // From standard input too.
        #expect(try touchlog(["audit", "check", "-"], stdin: audit.stdout, environment: environment).status == 0)

        // The signature checks with openssl alone: the signed bytes are the record up to ,"signature": and then }.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") {
            let text = audit.stdout.trimmingCharacters(in: .newlines)
            let cut = text.range(of: ",\"signature\":\"")!
            let message = scratch.file("signed", String(text[..<cut.lowerBound]) + "}")
            let hex = String(text[cut.upperBound...].prefix(128))
            let signature = scratch.file(
                "signature",
                bytes: stride(from: 0, to: 128, by: 2).map {
                    UInt8(
                        hex[hex.index(hex.startIndex, offsetBy: $0)..<hex.index(hex.startIndex, offsetBy: $0 + 2)],
                        radix: 16)!
                })
            let openssl = try run(
                "/usr/bin/openssl",
                [
                    "pkeyutl", "-verify", "-pubin", "-inkey", key + ".pub", "-rawin", "-in", message, "-sigfile",
                    signature,
                ])
            #expect(openssl.status == 0, "\(openssl.stdout)\(openssl.stderr)")
        }

        // An edited record fails, naming the part; so does another key.
        let edited = scratch.file(
            "edited.json", audit.stdout.replacingOccurrences(of: "\"members\":2", with: "\"members\":3"))
        let failed = try touchlog(["audit", "check", edited], environment: environment)
        #expect(failed.status == 1)
        #expect(failed.stdout.contains("differs: signature: the signature does not verify"))
        #expect(failed.stdout.contains("differs: members: the record says 3 members, the store gives 2"))
        #expect(failed.stdout.contains("FAILED"))
        let other = scratch.path + "/other"
        #expect(try touchlog(["audit", "keygen", other]).status == 0)
        let wrongKey = try touchlog(
            ["audit", "check", record, "--public-key", other + ".pub"], environment: environment)
        #expect(wrongKey.status == 1 && wrongKey.stdout.contains("differs: signature: signed by the key"))

        // An anchor the store does not hold.
        let missing = try touchlog(
            ["verify", "--anchor", String(repeating: "ab", count: 32)], environment: environment)
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("missing: anchor abab"))
    }

    @Test func badInputGetsOneClearLineAndItsExitCode() throws {
        let scratch = TemporaryDirectory()
        let environment = try Self.store(scratch)
        let key = scratch.path + "/k"
        #expect(try touchlog(["audit", "keygen", key]).status == 0)
        func expectFailure(_ arguments: [String], _ status: Int32, _ text: String, stdin: String? = nil) throws {
            let result = try touchlog(arguments, stdin: stdin, environment: environment)
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(text), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
        let asOf = ["--as-of", "2022-07-03T00:00:00Z"]
        try expectFailure(["audit", "check", scratch.file("not", "hello\n")], 65, "not an audit record")
        try expectFailure(["audit", "check", scratch.path + "/absent.json"], 66, "cannot read")
        try expectFailure(["audit", "summer-2022-clickers"] + asOf + ["--sign", key + ".pub"], 65, "is a public key")
        try expectFailure(
            ["audit", "summer-2022-clickers"] + asOf + ["--sign", scratch.path + "/none"], 66, "cannot read")
        try expectFailure(
            ["audit", "summer-2022-clickers"] + asOf + [
                "--sign", scratch.file("short", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            ],
            65, "not an Ed25519 private key")
        chmod(key, 0o640)
        try expectFailure(["audit", "summer-2022-clickers"] + asOf + ["--sign", key], 65, "chmod 600")
        try expectFailure(["audit", "no-such-segment"] + asOf, 66, "no segment named")
        let record = try touchlog(["audit", "summer-2022-clickers"] + asOf, environment: environment).stdout
        try expectFailure(["audit", "check", "-", "--public-key", key], 65, "is a private key", stdin: record)
        try expectFailure(["verify", "--anchor", "xyz"], 65, "is not a chain head")
        try expectFailure(["verify", "--anchor", String(repeating: "g", count: 64)], 65, "is not a chain head")
    }

    @Test func replayKnownAtPrintsWhatTheStoreKnewThen() throws {
        let scratch = TemporaryDirectory()
        let environment = try Self.store(scratch)
        let first = try touchlog(["replay"], environment: environment).stdout
        Thread.sleep(forTimeInterval: 0.01)
        #expect(
            try touchlog(
                ["append", "-"],
                stdin: "{\"time\":\"2022-06-01T00:00:00Z\",\"profile\":\"late\",\"type\":\"conversion\"}\n",
                environment: environment
            )
            .status == 0)
        let recorded = first.split(separator: "\n").last!.split(separator: "\"recorded\":\"")[1].prefix(24)
        let knownThen = try touchlog(["replay", "--known-at", String(recorded)], environment: environment)
        #expect(knownThen.stdout == first)
        #expect(try touchlog(["replay"], environment: environment).stdout.split(separator: "\n").count == 43)
    }
}
