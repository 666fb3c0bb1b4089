import Glibc
import Testing

@testable import TouchLog
@testable import TouchLogStorage

@Suite struct ErasureTests {
    static let formatThree = LogOptions(formatVersion: 3)
    static let summer = """
        {"name":"s","match":"all","rules":[{"interaction":"click","touchpoint":{"contains":"summer"}}]}
        """

    /// Every byte of every file under `directory`, with its path.
    static func files(under directory: String) -> [(path: String, bytes: [UInt8])] {
        var found: [(String, [UInt8])] = []
        for name in (try? SystemFile.list(directory)) ?? [] {
            let path = directory + "/" + name
            if SystemFile.isDirectory(path) {
                found += files(under: path)
            } else if let file = try? SystemFile.open(path, .readOnly), let size = try? file.size(),
                let bytes = try? file.read(at: 0, count: Int(size))
            {
                file.close()
                found.append((path, bytes))
            }
        }
        return found
    }

    /// Whether `identifier` can be read out of the store's files: in clear, or as a sealed entry of the log opened
    /// with any run of bytes of any file (the key file's pads among them).
    static func readable(_ identifier: String, under directory: String) -> Bool {
        let id = Array(identifier.utf8)
        let all = files(under: directory)
        for (_, bytes) in all where contains(bytes, id) { return true }
        // Every run of id.count bytes of the log that could be a sealed entry, XORed with every run of every file.
        let logs = all.filter { $0.path.hasSuffix(".tlog") }.map(\.bytes)
        for log in logs {
            for start in 0...(max(0, log.count - id.count)) where log.count >= id.count {
                let sealed = Array(log[start..<(start + id.count)])
                let pad = zip(sealed, id).map { $0 ^ $1 }
                for (_, bytes) in all where contains(bytes, pad) { return true }
            }
        }
        return false
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }

    @Test func anErasedProfileLeavesSegmentsReplayAndEveryFileWhileTheChainStays() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let store = try TouchLogStore(directory: path, options: Self.formatThree, blockEvents: 4)
        let target = "erase-me-4711@example.com"
        try await store.append([
            Event(time: 1_000, profile: "keep-1", type: .click, touchpoint: "summer-sale"),
            Event(time: 2_000, profile: target, type: .click, touchpoint: "summer-sale"),
            Event(time: 3_000, profile: target, type: .view, touchpoint: "winter"),
            Event(time: 4_000, profile: "keep-2", type: .click, touchpoint: "summer-sale"),
            Event(time: 5_000, profile: target, type: .conversion, touchpoint: nil, value: 12.5),
        ])
        _ = try store.segments.put(try SegmentDefinition(json: Self.summer))
        _ = try await store.createSnapshots(of: "s")
        let definition = try store.segments.current("s").definition
        #expect(
            try await store.members(of: "s", at: QueryTime(asOf: 10_000)) == [
                "erase-me-4711@example.com", "keep-1", "keep-2",
            ])
        let headBefore = try StoreReader(directory: path).headHash

        let report = try await store.erase(profiles: [target], reason: "request 17")
        #expect(report.erased == [target])

        // Segments, at any T and K, never list it; their counts exclude it.
        for asOf: Int64 in [2_500, 10_000] {
            #expect(try await store.members(of: "s", at: QueryTime(asOf: asOf)).contains(target) == false)
            #expect(
                try StoreReader(directory: path).count(of: definition, at: QueryTime(asOf: asOf))
                    == (asOf == 2_500 ? 1 : 2))
        }
        // Replay leaves its events out, or shows them without the identifier.
        let reader = try StoreReader(directory: path)
        #expect(try reader.events().map(\.event.profile) == ["keep-1", "keep-2"])
        let all = try reader.events(matching: ReplayFilter(includeErased: true))
        #expect(all.map(\.offset) == [0, 1, 2, 3, 4] && all.map(\.event.profile) == ["keep-1", "", "", "keep-2", ""])
        // The chain: every block before the erasure as it was; the erasure is recorded after them.
        #expect(reader.log.markers.count == 1)
        #expect(
            reader.erasures.records.map { [$0.profiles.description, $0.reason, $0.headBefore.description] }
                == [["[1]", "request 17", headBefore.description]])
        let stats = try reader.stats()
        #expect(stats.profiles == 2 && stats.erasedProfiles == 1)
        let verified = try StoreVerifier.verify(directory: path)
        #expect(verified.isIntact, "\(verified.log.problems) \(verified.otherProblems)")
        #expect(!Self.readable(target, under: path))
        #expect(Self.readable("keep-2", under: path))

        // The same identifier appended later is a new profile, without the erased events.
        try await store.append([Event(time: 6_000, profile: target, type: .view, touchpoint: "autumn")])
        #expect(try await store.members(of: "s", at: QueryTime(asOf: 10_000)) == ["keep-1", "keep-2"])
        let again = try StoreReader(directory: path).events(matching: ReplayFilter(profiles: [target]))
        #expect(again.map(\.offset) == [5])
        store.close()
        // Reopened, everything holds; so does a store reopened for writing.
        let reopened = try TouchLogStore(directory: path)
        #expect(try await reopened.members(of: "s", at: QueryTime(asOf: 10_000)) == ["keep-1", "keep-2"])
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }

    @Test func unknownEmptyAndOverLongIdentifiersEraseNothing() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let store = try TouchLogStore(directory: path, options: Self.formatThree)
        try await store.append([
            Event(time: 1, profile: "a", type: .view, touchpoint: "t"),
            Event(time: 2, profile: "b", type: .view, touchpoint: "t"),
        ])
        let head = try StoreReader(directory: path).headHash
        func fails(_ profiles: [String], _ code: TouchLogError.Code, _ text: String) async {
            do {
                try await store.erase(profiles: profiles)
                Issue.record("erasing \(profiles) did not fail")
            } catch {
                #expect(error.code == code && error.message.contains(text), "\(error)")
            }
        }
        await fails(["a", "nobody", "ghost"], .notFound, #"no profile "nobody", "ghost"; nothing erased"#)
        await fails(["a", ""], .invalidInput, "empty")
        await fails([String(repeating: "x", count: 257)], .invalidInput, "257 bytes")
        #expect(try StoreReader(directory: path).headHash == head)
        #expect(try StoreReader(directory: path).events().count == 2)
        let report = try await store.erase(profiles: ["a", "nobody", "a"], skipUnknown: true)
        #expect(report.erased == ["a"] && report.unknown == ["nobody"])
        await fails(["a"], .notFound, #"no profile "a""#)  // erased: the store holds it no longer

        let old = try TouchLogStore(directory: dir.path + "/old", options: LogOptions(formatVersion: 2))
        try await old.append([Event(time: 1, profile: "a", type: .view, touchpoint: "t")])
        await #expect(throws: TouchLogError.self) { try await old.erase(profiles: ["a"]) }
    }

    /// Ten thousand profiles in one erasure: one record in the log, every one of them gone.
    @Test func aBatchOfTenThousandIsOneStep() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let store = try TouchLogStore(directory: path, options: Self.formatThree, blockEvents: 5_000)
        let events = (0..<30_000).map {
            Event(time: Int64($0), profile: "p\($0 % 15_000)", type: .click, touchpoint: "summer-\($0 % 7)")
        }
        try await store.append(events)
        _ = try store.segments.put(try SegmentDefinition(json: Self.summer))
        let erased = (0..<10_000).map { "p\($0 * 3 / 2)" }
        try await store.erase(profiles: erased, reason: "batch")
        let reader = try StoreReader(directory: path)
        #expect(reader.log.markers.count == 1 && reader.erasures.profiles.count == 10_000)
        let members = try await store.members(of: "s", at: QueryTime(asOf: 100_000))
        #expect(members.count == 5_000 && Set(members).isDisjoint(with: erased))
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }

    /// The erasure's record is its commit point: a crash after it and before the pads are zeroed leaves the profile
    /// erased for every reader, and the next writer to open the store zeroes the pads.
    @Test func anErasureCutShortAfterItsRecordIsFinishedByTheNextWriter() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let store = try TouchLogStore(directory: path, options: Self.formatThree)
        try await store.append([
            Event(time: 1, profile: "gone-soon", type: .click, touchpoint: "summer"),
            Event(time: 2, profile: "stays", type: .click, touchpoint: "summer"),
        ])
        _ = try store.segments.put(try SegmentDefinition(json: Self.summer))
        // The record alone, as if the process died right after committing it.
        try store.withLogWriter { log throws(TouchLogError) in
            try storage { () throws(StorageError) in
                try log.beginTransaction(metadata: ErasureRecord(profiles: [0], reason: "").encoded())
                try log.commit()
            }
        }
        store.close()
        #expect(
            try StoreReader(directory: path).members(
                of: try SegmentDefinition(json: Self.summer), at: QueryTime(asOf: 10)) == ["stays"])
        let halfway = try StoreVerifier.verify(directory: path)
        #expect(
            !halfway.isIntact
                && halfway.otherProblems.contains { $0.contains("profile 0 as erased, and its key is still there") })
        #expect(Self.readable("gone-soon", under: path))
        _ = try TouchLogStore(directory: path)
        #expect(!Self.readable("gone-soon", under: path))
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }

    @Test func verifyNamesADamagedOrMissingKeyFile() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let store = try TouchLogStore(directory: path, options: Self.formatThree)
        try await store.append([Event(time: 1, profile: "someone", type: .click, touchpoint: "t")])
        store.close()
        let keys = StoreLayout(root: path).profileKeys
        let file = try SystemFile.open(keys, .readWrite)
        let size = try file.size()
        let last = try file.read(at: size - 1, count: 1)
        try file.write([last[0] ^ 0x20], at: size - 1)
        file.close()
        let damaged = try StoreVerifier.verify(directory: path)
        #expect(
            damaged.otherProblems.contains {
                $0.contains("profiles.tlk: the pads of profiles 0..<1 do not match their check")
            }, "\(damaged.otherProblems)")
        try SystemFile.remove(keys)
        let missing = try StoreVerifier.verify(directory: path)
        #expect(!missing.isIntact)
        #expect(throws: TouchLogError.self) { try StoreReader(directory: path).events() }
    }
}
