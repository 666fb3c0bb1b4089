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
}
