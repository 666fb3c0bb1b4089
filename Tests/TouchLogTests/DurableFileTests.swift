import Foundation
import Testing
import TouchLogStorage
import TouchLogTestSupport

@testable import TouchLog

@Suite struct DurableFileTests {
    /// Files checked by either hash read back; a changed body byte, a cut file and a foreign header are refused.
    @Test(arguments: [DurableFile.Checksum.sha256, .xxh3])
    func aFileReadsBackAndAnyDamageIsRefused(checksum: DurableFile.Checksum) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/f"
        let body = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try DurableFile.write(body, kind: "snapshot", to: path, checksum: checksum)
        let bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        let header = String(decoding: bytes.prefix { $0 != 0x0A }, as: UTF8.self)
        #expect(header.hasPrefix("touchlog snapshot \(checksum == .sha256 ? "sha256" : "xxh3")="))
        #expect(try DurableFile.read(path, kind: "snapshot") == body)
        #expect(throws: TouchLogError.self) { try DurableFile.read(path, kind: "definition") }

        for change in ["flip", "cut", "header"] {
            var damaged = bytes
            switch change {
            case "flip": damaged[damaged.count - 500] ^= 0x04
            case "cut": damaged.removeLast(10)
            default: damaged[header.utf8.count - 3] = UInt8(ascii: "g")
            }
            _ = FileManager.default.createFile(atPath: path, contents: Data(damaged))
            do {
                _ = try DurableFile.read(path, kind: "snapshot")
                Issue.record("\(change): accepted")
            } catch {
                #expect(error.code == .corrupt, "\(change): \(error)")
            }
        }
    }

    /// Snapshots are checked with XXH3 (a query reads them), and those written with SHA-256 before still serve.
    @Test func snapshotsAreWrittenWithXXH3AndOnesWithSHA256StillServe() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let store = try TouchLogStore(directory: path)
        try await store.append(
            (0..<400).map { i in
                Event(
                    time: Int64(i) * 60_000, profile: "p-\(i % 37)", type: i % 3 == 0 ? .click : .view,
                    touchpoint: "t-\(i % 5)")
            })
        store.close()
        let definition = try SegmentDefinition(
            json:
                #"{"name":"clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"startsWith":"t"}}]}"#
        )
        let time = QueryTime(asOf: 400 * 60_000)
        let reader = try StoreReader(directory: path)
        reader.snapshotInterval = nil
        let expected = try reader.members(of: definition, at: time)
        #expect(!expected.isEmpty)
        #expect(try reader.createSnapshot(of: definition) != nil)
        let files = snapshotFiles(path + "/snapshots")
        #expect(!files.isEmpty)
        for file in files {
            let bytes = [UInt8](FileManager.default.contents(atPath: file)!)
            #expect(String(decoding: bytes.prefix(23), as: UTF8.self) == "touchlog snapshot xxh3=")
            // The same body under a SHA-256 header, as earlier versions wrote it.
            let body = try DurableFile.read(file, kind: "snapshot")
            try DurableFile.write(body, kind: "snapshot", to: file, checksum: .sha256)
        }
        let again = try StoreReader(directory: path)
        #expect(try again.members(of: definition, at: time) == expected)
        #expect(again.lastQuery.snapshotOffset > 0, "the query should start from the snapshot")
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }
}

private func snapshotFiles(_ directory: String) -> [String] {
    let enumerator = FileManager.default.enumerator(atPath: directory)
    var found: [String] = []
    while let name = enumerator?.nextObject() as? String {
        if name.hasSuffix(".snap") { found.append(directory + "/" + name) }
    }
    return found.sorted()
}
