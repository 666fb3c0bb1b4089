import Foundation
import Glibc
import Testing
import TouchLogStorage
import TouchLogTestSupport

@testable import TouchLog

@Suite struct SnapshotRetentionTests {
    func info(_ offset: UInt64) -> SnapshotInfo {
        SnapshotInfo(path: "snapshots/k/\(offset)", key: "k", endOffset: offset, watermark: 0, recorded: 0, bytes: 0)
    }

    @Test func thinningKeepsTheEndsAndSpreadsTheRest() {
        let offsets: [UInt64] = [100, 200, 210, 220, 230, 500, 900, 905, 1_000, 2_000]
        let doomed = Set(SnapshotStore.thinned(offsets.map(info), keep: 5).map(\.endOffset))
        let kept = offsets.filter { !doomed.contains($0) }
        #expect(kept.count == 5)
        #expect(kept.first == 100 && kept.last == 2_000)
        // The clustered ones go first: of 200…230 and 900/905 at most one each stays.
        #expect(kept.filter { (200...230).contains($0) }.count <= 1)
        #expect(kept.filter { (900...905).contains($0) }.count <= 1)
        #expect(SnapshotStore.thinned(offsets.prefix(3).map(info), keep: 8).isEmpty)
    }

    /// The decoded snapshots a store's readers share are bounded by their bytes: the least recently used go first,
    /// and one bigger than the whole capacity is not kept.
    @Test func decodedSnapshotsAreKeptWithinTheirBytes() {
        func snapshot(ids: Int) -> GroupedSnapshot {
            var s = GroupedSnapshot()
            s.rules = [
                GroupedSnapshot.Entries(ids: (0..<UInt32(ids)).map { $0 }, counts: [UInt32](repeating: 1, count: ids))
            ]
            return s
        }
        #expect(snapshot(ids: 100).decodedBytes == 800)
        let cache = SnapshotCache(snapshotBytes: 2_000)
        cache.keep(snapshot(ids: 100), at: "a")
        cache.keep(snapshot(ids: 100), at: "b")
        #expect(cache.snapshot(at: "a") != nil)  // a is now used after b
        cache.keep(snapshot(ids: 50), at: "c")  // 2,000 bytes: all three fit
        #expect(cache.usage == (2_000, 3))
        cache.keep(snapshot(ids: 100), at: "d")  // b, the least recently used, goes
        #expect(cache.snapshot(at: "b") == nil && cache.usage == (2_000, 3))
        cache.keep(snapshot(ids: 150), at: "f")  // 1,200 bytes: a, then c go
        #expect(cache.snapshot(at: "a") == nil && cache.snapshot(at: "c") == nil)
        #expect(cache.snapshot(at: "f")?.rules[0]?.ids.count == 150 && cache.usage == (2_000, 2))
        cache.keep(snapshot(ids: 300), at: "e")  // bigger than the capacity
        #expect(cache.snapshot(at: "e") == nil && cache.usage == (2_000, 2))
        cache.keep(snapshot(ids: 10), at: "d")  // kept again: replaced, not added
        #expect(cache.usage == (1_280, 2))
    }

    /// The readers of one store share its decoded snapshots: a query of a second reader finds the snapshot the
    /// first one's query decoded.
    @Test func aStoresReadersShareTheSnapshotsTheyDecoded() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(
            directory: dir.path + "/s", options: LogOptions(formatVersion: 3), blockEvents: 100)
        let events = randomEvents(2_000, seed: 3)
        try await store.append(events)
        // (A past time: "now" is answered by a live audience, not from snapshots.)
        let end = QueryTime(asOf: events.map(\.time).max()!)
        let definition = try SegmentDefinition(
            json:
                #"{"name":"s","match":"all","rules":[{"interaction":"conversion","timeframe":{"from":"2000-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}}]}"#
        )
        try await store.putSegment(definition)
        _ = try await store.createSnapshots(of: "s")
        let first = try await store.members(of: "s", at: end)
        let pool = store.readers
        #expect(pool.snapshots.usage.values == 1)
        // Two readers at once: the second is a new one, with nothing decoded of its own.
        let (a, b) = try pool.withReader { outer throws(TouchLogError) in
            try pool.withReader { inner throws(TouchLogError) in
                (
                    Result { try outer.members(of: definition, at: end) },
                    Result { try inner.members(of: definition, at: end) }
                )
            }
        }
        #expect(try a.get() == first && b.get() == first)
        #expect(pool.snapshots.usage.values == 1)
    }
}
