import Foundation
import Glibc
import Testing
import TouchLogTestSupport

@testable import TouchLog
@testable import TouchLogStorage

@Suite struct AuditTests {
    static let day: Int64 = 86_400_000
    static let start: Int64 = 1_656_806_400_000  // 2022-07-03T00:00:00Z
    static let clickers = """
        {"name":"clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"summer"},\
        "timeframe":{"last":"30d"}}]}
        """

    /// A store with a segment and three commits, recorded a day apart by a manual clock.
    static func store(_ dir: TemporaryDirectory, clock: ManualClock, format: UInt16 = 3) async throws -> TouchLogStore {
        let store = try TouchLogStore(
            directory: dir.store, options: LogOptions(clock: { clock.read() }, formatVersion: format), blockEvents: 4)
        try await store.putSegment(try SegmentDefinition(json: clickers))
        for commit in 0..<3 {
            clock.set(start + Int64(commit) * day)
            try await store.append(
                (0..<10).map { i in click("p-\(commit)-\(i)", at: start - day + Int64(i) * 1000, "summer") }
                    + [click("other-\(commit)", at: start, "winter")])
        }
        return store
    }

    @Test func aRecordChecksOutAfterLaterAppendsAndIsTheSameBytesEveryTime() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        let store = try await Self.store(dir, clock: clock)
        let time = QueryTime(asOf: Self.start + Self.day)
        let record = try await store.audit("clickers", at: time)
        #expect(record.members == 30)
        #expect(record.knownAt == Self.start + 2 * Self.day)
        #expect(record.offset == 33)
        #expect(record.chainHead == (try store.headHash()))
        let members = try await store.members(of: "clickers", at: QueryTime(asOf: time.asOf, knownAt: record.knownAt))
        #expect(record.memberDigest == AuditRecord.digest(of: members))
        // The same answer, the same bytes; and the text parses back to the same record.
        #expect(try await store.audit("clickers", at: time).json == record.json)
        #expect(try AuditRecord(json: record.json) == record)
        #expect(try await store.check(record.json).isValid)

        // More events, in the same millisecond as K: the record is pinned to its offset, so it still checks out.
        try await store.append([click("late", at: Self.start, "summer")])
        clock.set(Self.start + 5 * Self.day)
        try await store.append([click("later", at: Self.start, "summer")])
        let check = try await store.check(record.json + "\n")
        #expect(check.isValid, "\(check.problems)")
        #expect(check.anchor?.blocksAfter == 2)
        #expect(try await store.audit("clickers", at: time).members == 32)
        // With K given, K is kept; and a past K gives what the store knew then.
        let past = try await store.audit("clickers", at: QueryTime(asOf: time.asOf, knownAt: Self.start))
        #expect(past.knownAt == Self.start && past.members == 10)
        #expect(try await store.check(past.json).isValid)
    }

    @Test func theDigestIsTheSHA256OfTheQueryOutput() throws {
        // `touchlog query … | sha256sum`: each member and a line feed, sorted by bytes.
        #expect(AuditRecord.digest(of: ["a", "b"]) == BlockHash.sha256(of: Array("a\nb\n".utf8)))
        #expect(AuditRecord.digest(of: []) == BlockHash.sha256(of: []))
    }

    @Test func aSignedRecordVerifiesAndAnyEditedByteIsFound() async throws {
        let dir = TemporaryDirectory()
        let store = try await Self.store(dir, clock: ManualClock())
        let key = AuditSigningKey.generate()
        let record = try await store.audit("clickers", at: QueryTime(asOf: Self.start), signingKey: key)
        #expect(record.publicKey == key.publicKey && record.signature?.count == 64)
        #expect(try await store.check(record.json, publicKey: key.publicKey).isValid)
        // Signing is deterministic: the same record, the same bytes.
        #expect(try await store.audit("clickers", at: QueryTime(asOf: Self.start), signingKey: key).json == record.json)
        // The signed bytes are the record up to `,"signature":`, then `}`.
        let text = record.json
        let cut = text.range(of: ",\"signature\":")!.lowerBound
        #expect(record.signedBytes == Array((text[..<cut] + "}").utf8))

        // Every single-byte edit is found: the record no longer parses, or a part fails.
        var bytes = Array(text.utf8)
        for position in stride(from: 0, to: bytes.count, by: 7) {
            let original = bytes[position]
            bytes[position] = original == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
            let edited = String(decoding: bytes, as: UTF8.self)
            bytes[position] = original
            // A text that no longer parses is refused as not a record (invalid input).
            guard (try? AuditRecord(json: edited)) != nil else { continue }
            let check = try await store.check(edited)
            #expect(!check.isValid, "edit at byte \(position) not found: \(edited)")
        }
        // A reformatted record (same fields) is found by its bytes.
        let spaced = text.replacingOccurrences(of: "\",\"", with: "\", \"")
        #expect(try await store.check(spaced).problems.map(\.part).contains(.record))
        // Another key.
        let other = AuditSigningKey.generate()
        #expect(try await store.check(record.json, publicKey: other.publicKey).problems.map(\.part) == [.signature])
        // An unsigned record, when a key is asked for.
        let unsigned = try await store.audit("clickers", at: QueryTime(asOf: Self.start))
        #expect(try await store.check(unsigned.json, publicKey: key.publicKey).problems.map(\.part) == [.signature])
        // An unsigned record edited: the recomputed parts differ.
        var wrongCount = unsigned
        wrongCount.members += 1
        #expect(try await store.check(wrongCount.json).problems.map(\.part) == [.members])
        // An edited offset: the anchored block ends elsewhere, said once.
        var wrongOffset = unsigned
        wrongOffset.offset -= 1
        #expect(try await store.check(wrongOffset.json).problems.map(\.part) == [.anchor])
        var wrongDigest = unsigned
        wrongDigest.memberDigest = BlockHash.sha256(of: [1])
        #expect(try await store.check(wrongDigest.json).problems.map(\.part) == [.memberDigest])
    }

    @Test func aRebuiltOrTruncatedStoreOrAnotherVersionFailsNamingThePart() async throws {
        let dir = TemporaryDirectory()
        let store = try await Self.store(dir, clock: ManualClock())
        let record = try await store.audit("clickers", at: QueryTime(asOf: Self.start))

        // Another version: the record names version 1, which the store still holds; a record naming a version the
        // store holds with another definition, or not at all, fails on the version.
        try await store.putSegment(
            try SegmentDefinition(json: Self.clickers.replacingOccurrences(of: "30d", with: "7d")))
        #expect(try await store.check(record.json).isValid)
        var renumbered = record
        renumbered.version = 2
        #expect(try await store.check(renumbered.json).problems.map(\.part) == [.version])
        renumbered.version = 9
        let missing = try await store.check(renumbered.json)
        #expect(missing.problems.map(\.part) == [.version])
        #expect(missing.problems[0].message.contains("no version 9"))

        // A store rebuilt from a replay with one event changed: same offsets, another chain.
        let events = try await store.events()
        let rebuilt = TemporaryDirectory()
        let copy = try TouchLogStore(directory: rebuilt.store, options: LogOptions(formatVersion: 3), blockEvents: 4)
        try await copy.putSegment(try SegmentDefinition(json: Self.clickers))
        var changed = events.map(\.event)
        changed[3].profile = "someone-else"
        try await copy.append(changed)
        let rebuiltCheck = try await copy.check(record.json)
        // The anchor is gone; recomputed from the rebuilt log's first 33 events, the answer differs too (they were
        // recorded now, after the record's K).
        #expect(rebuiltCheck.problems.map(\.part) == [.anchor, .members, .memberDigest])
        #expect(rebuiltCheck.problems[0].message.contains("rebuilt"))
        #expect(rebuiltCheck.notes.contains { $0.contains("not the ones the record is anchored to") })

        // The last commit cut off: the head the record is anchored to is gone.
        store.close()
        let log = dir.store + "/log"
        let file = log + "/" + (try SystemFile.list(log)).filter { $0.hasSuffix(".tlog") }.sorted().last!
        let reader = try LogReader(directory: log)
        let lastCommitStart =
            reader.blocks.last { $0.header.firstOffset < 22 }!.position
            + reader.blocks.last { $0.header.firstOffset < 22 }!.length
        #expect(truncate(file, off_t(lastCommitStart)) == 0)
        let truncated = try TouchLogStore(readingFrom: dir.store)
        #expect(truncated.endOffset == 22)
        let truncatedCheck = try await truncated.check(record.json)
        #expect(truncatedCheck.problems.map(\.part) == [.anchor])
        #expect(!(try await truncated.verify(anchors: [record.chainHead])).isIntact)
    }

    @Test func aRecordPinsTheVersionsOfTheSegmentsItRefersTo() async throws {
        let dir = TemporaryDirectory()
        let store = try await Self.store(dir, clock: ManualClock())
        try await store.putSegment(
            try SegmentDefinition(
                json: """
                    {"name":"not-clickers","match":"all","rules":[{"interaction":"any","touchpoint":{"exactly":"winter"}},\
                    {"segment":"clickers","negate":true}]}
                    """))
        let time = QueryTime(asOf: Self.start + Self.day)
        let record = try await store.audit("not-clickers", at: time)
        #expect(record.references == [AuditRecord.Reference(segment: "clickers", version: 1)])
        #expect(record.members == 3)
        #expect(record.json.contains(#""references":[{"segment":"clickers","version":1}]"#))
        // The referenced segment changes: queries follow it, the record still checks out against version 1.
        try await store.putSegment(
            try SegmentDefinition(json: Self.clickers.replacingOccurrences(of: "\"summer\"", with: "\"winter\"")))
        #expect(try await store.count(of: "not-clickers", at: time) == 0)
        #expect(try await store.check(record.json).isValid)
        var unpinned = record
        unpinned.references = []
        #expect(try await store.check(unpinned.json).problems.map(\.part) == [.version])
    }

    @Test func verifyFindsAnAnchorOrSaysItIsMissing() async throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        let store = try await Self.store(dir, clock: clock)
        let noted = try store.headHash()
        try await store.append([click("more", at: Self.start, "summer")])
        let report = try await store.verify(anchors: [noted, BlockHash.sha256(of: [7])])
        #expect(report.anchors.count == 2)
        #expect(report.anchors[0].isFound && report.anchors[0].endOffset == 33 && report.anchors[0].blocksAfter == 1)
        #expect(report.anchors[0].summary.contains("1 block was committed after it"))
        #expect(!report.anchors[1].isFound && !report.isIntact)
        #expect(try await store.verify(anchors: [noted]).isIntact)
    }

    @Test func replayKnownAtIsWhatTheSQLReferenceHasRecordedByK() async throws {
        let dir = TemporaryDirectory()
        let data = try await SegmentDifferentialTests.dataset(seed: 19, store: dir.store, formatVersion: 3)
        let reference = SQLiteReference(events: data.events)
        let store = try TouchLogStore(readingFrom: dir.store)
        for k in data.commitTimes.flatMap({ [$0 - 1, $0, $0 + 1] }) + [0, .max] {
            let replayed = try await store.events(matching: ReplayFilter(knownAt: k)).map(\.offset)
            #expect(replayed == reference.offsets(recordedBy: k), "K = \(k)")
            var streamed: [UInt64] = []
            for try await event in store.replay(
                matching: ReplayFilter(since: SegmentDifferentialTests.start, knownAt: k))
            {
                streamed.append(event.offset)
            }
            #expect(streamed == reference.offsets(recordedBy: k, since: SegmentDifferentialTests.start))
        }
    }

    @Test func anAuditIsTheSQLReferencesAnswerAtRandomTimes() async throws {
        let dir = TemporaryDirectory()
        let data = try await SegmentDifferentialTests.dataset(seed: 23, store: dir.store, formatVersion: 3)
        let reference = SQLiteReference(events: data.events)
        let store = try TouchLogStore(directory: dir.store)
        let definition = try SegmentDefinition(
            json: """
                {"name":"d","match":"all","rules":[{"interaction":"click","touchpoint":{"contains":"e"},"timeframe":{"last":"7d"}},\
                {"interaction":"conversion","negate":true}]}
                """)
        try await store.putSegment(definition)
        var random = TestRandom(seed: 29)
        for _ in 0..<12 {
            let t = SegmentDifferentialTests.start + Int64(random.below(Int(SegmentDifferentialTests.span)))
            let k = data.commitTimes[random.below(data.commitTimes.count)] + Int64(random.below(3)) - 1
            let record = try await store.audit("d", at: QueryTime(asOf: t, knownAt: k))
            let expected = reference.members(definition, at: QueryTime(asOf: t, knownAt: k))
            #expect(record.members == expected.count)
            #expect(record.memberDigest == AuditRecord.digest(of: expected), "T = \(t), K = \(k)")
            #expect(try await store.check(record.json).isValid)
        }
    }

    @Test func aRecordOfAMigratedStoreStillChecksOut() async throws {
        let dir = TemporaryDirectory()
        let store = try await Self.store(dir, clock: ManualClock(), format: 1)
        let record = try await store.audit("clickers", at: QueryTime(asOf: Self.start))
        store.close()
        let report = try await TouchLogStore.migrate(directory: dir.store)
        #expect(report.fromVersion == 1)
        let migrated = try TouchLogStore(readingFrom: dir.store)
        let check = try await migrated.check(record.json)
        #expect(check.isValid, "\(check.problems)")
        #expect(check.anchor?.log == "log-format1")
        #expect(try await migrated.verify(anchors: [record.chainHead]).isIntact)
    }

    @Test func keysAreFilesOnlyTheirOwnerReadsAndKeysOfAnotherKindAreRefused() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/audit-key"
        let key = AuditSigningKey.generate()
        try key.write(to: path)
        #expect(SystemFile.status(path)?.permissions == 0o600)
        #expect(try AuditSigningKey(contentsOf: path).publicKey == key.publicKey)
        #expect(try AuditPublicKey(contentsOf: path + ".pub") == key.publicKey)
        // Never overwritten.
        #expect(throws: TouchLogError.self) { try AuditSigningKey.generate().write(to: path) }
        #expect(try AuditSigningKey(contentsOf: path).publicKey == key.publicKey)
        // Readable by others: refused, as ssh refuses.
        chmod(path, 0o644)
        let open = #expect(throws: TouchLogError.self) { try AuditSigningKey(contentsOf: path) }
        #expect(open?.code == .invalidInput && open?.message.contains("chmod 600") == true)
        chmod(path, 0o600)
        // A public key where a private one belongs, and the other way round; another kind of key; not a key at all.
        let swapped = #expect(throws: TouchLogError.self) { try AuditSigningKey(contentsOf: path + ".pub") }
        #expect(swapped?.message.contains("is a public key") == true)
        #expect(throws: TouchLogError.self) { try AuditPublicKey(contentsOf: path) }
        // A key of another kind (48 bytes, such as a P-384 secret) in a PEM block.
        let p384 =
            "-----BEGIN PRIVATE KEY-----\n\(Data(repeating: 1, count: 48).base64EncodedString())\n-----END PRIVATE KEY-----\n"
        let other = #expect(throws: TouchLogError.self) { try AuditSigningKey(pem: p384) }
        #expect(other?.code == .invalidInput && other?.message.contains("another kind of key") == true)
        #expect(throws: TouchLogError.self) { try AuditSigningKey(pem: "hello") }
        let absent = #expect(throws: TouchLogError.self) { try AuditSigningKey(contentsOf: dir.path + "/none") }
        #expect(absent?.code == .notFound)
    }

    @Test func textsThatAreNotRecordsAreRefusedNamingWhy() throws {
        for (text, why) in [
            ("hello", "not an audit record"), ("[]", "expected a JSON object"), ("{}", "no \"touchlogAudit\""),
            ("{\"touchlogAudit\":2}", "only layout"), ("{\"touchlogAudit\":1,\"extra\":1}", "unknown field \"extra\""),
        ] {
            let error = #expect(throws: TouchLogError.self) { try AuditRecord(json: text) }
            #expect(error?.code == .invalidInput)
            #expect(error?.message.contains(why) == true, "\(text): \(error?.message ?? "")")
        }
    }
}
