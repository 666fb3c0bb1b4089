import Foundation
import Testing

@testable import TouchLog

@Suite struct SegmentCatalogTests {
    @Test func everyVersionIsKeptAndRemovalIsAVersionToo() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let first = try SegmentDefinition(json: SegmentDefinitionTests.valid)
        #expect(try await store.putSegment(first) == (1, true))
        #expect(try await store.putSegment(first) == (1, false))
        var second = first
        second.description = "changed"
        #expect(try await store.putSegment(second) == (2, true))
        #expect(try store.segments.current("s").version == 2)
        #expect(try store.segments.version("s", 1) == first)
        #expect(try await store.removeSegment("s") == 3)
        #expect(throws: TouchLogError.self) { try store.segments.current("s") }
        #expect(try store.segments.list().isEmpty)
        #expect(try store.segments.version("s", 2) == second)
        #expect(try await store.putSegment(first) == (4, true))
        #expect(try store.segments.history("s").map(\.number) == [1, 2, 3, 4])
    }

    @Test func aDamagedDefinitionFileIsRefusedNotMisread() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await store.putSegment(try SegmentDefinition(json: SegmentDefinitionTests.valid))
        let path = dir.path + "/s/segments/s/000001.json"
        var bytes = Array(try String(contentsOfFile: path, encoding: .utf8).utf8)
        bytes[bytes.count - 10] ^= 0x01
        dir.file("s/segments/s/000001.json", bytes: bytes)
        #expect { try store.segments.current("s") } throws: { "\($0)".contains("checksum mismatch") }
    }
}
