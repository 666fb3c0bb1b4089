import Glibc
import Synchronization
import Testing

@testable import TouchLog
@testable import TouchLogStorage

@Suite struct StoreMigrationTests {
    /// A format-1 store with the differential test's events (8 commits, late arrivals), one segment and snapshots.
    static func formatOneStore(_ directory: String) async throws -> SegmentDifferentialTests.Dataset {
        let data = try await SegmentDifferentialTests.dataset(seed: 31, store: directory)
        let store = try TouchLogStore(directory: directory)
        try await store.putSegment(
            SegmentDefinition(
                json: """
                    {"name":"s","match":"any","rules":[{"interaction":"click","touchpoint":{"contains":"iphone"},"timeframe":{"last":"7d"}},
                      {"match":"all","negate":true,"rules":[{"interaction":"conversion"},{"interaction":"view","touchpoint":{"startsWith":"s"},"count":{"atLeast":2}}]}]}
                    """))
        _ = try await store.createSnapshots(of: "s")
        store.close()
        return data
    }

    @Test func everyEventOffsetRecordedTimeAndAnswerSurvivesTheMigration() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        let data = try await Self.formatOneStore(path)
        let definition = try SegmentCatalog(layout: StoreLayout(root: path)).current("s").definition
        var random = TestRandom(seed: 5)
        let times = (0..<40).map { _ in SegmentDifferentialTests.randomQueryTime(&random, data) }
        let before = try StoreReader(directory: path)
        let events = try before.events()
        let answers = try times.map { try before.members(of: definition, at: $0) }
        let oldHead = before.headHash

        let progress = Mutex<(calls: Int, done: UInt64, total: UInt64)>((0, 0, 0))
        let report = try await TouchLogStore.migrate(directory: path) { done, total in
            progress.withLock { $0 = ($0.calls + 1, done, total) }
        }
        #expect(report.fromVersion == 1)
        #expect(report.events == UInt64(events.count))
        #expect(report.commits == 8)
        #expect(report.previousHead == oldHead)
        #expect(report.archivedLog == "log-format1")
        #expect(progress.withLock { $0 } == (8, UInt64(events.count), UInt64(events.count)))

        let after = try StoreReader(directory: path)
        #expect(after.formatVersion == 3)
        #expect(try after.events() == events)
        #expect(try times.map { try after.members(of: definition, at: $0) } == answers)
        #expect(after.snapshots().isEmpty)
        let reference = SQLiteReference(events: data.events)
        #expect(
            try times.map { try after.members(of: definition, at: $0) }
                == times.map { reference.members(definition, at: $0) })

        // The new chain's first commit names the old one, which is kept and verified with it.
        let log = try LogReader(directory: path + "/log")
        let firstCommit = log.blocks.first(where: \.header.isCommit)!
        let link = try #require(try log.metadata(of: firstCommit).flatMap { StoreMigration.Link($0) })
        #expect(link == StoreMigration.Link(fromVersion: 1, head: oldHead, events: UInt64(events.count)))
        let verified = try await TouchLogStore(readingFrom: path).verify()
        #expect(verified.isIntact, "\(verified.log.problems) \(verified.otherProblems)")
        #expect(verified.archivedLog?.head == oldHead)

        // Already migrated: nothing to do. And the store takes appends in format 3.
        let again = try await TouchLogStore.migrate(directory: path)
        #expect(again.fromVersion == nil && again.archivedLog == nil)
        let store = try TouchLogStore(directory: path)
        try await store.append([Event(time: 1_700_000_000_000, profile: "p-new", type: .view, touchpoint: "store")])
        store.close()
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }

    @Test func aMigrationStoppedBetweenItsRenamesIsCompletedWhenTheStoreIsOpened() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        _ = try await Self.formatOneStore(path)
        let events = try StoreReader(directory: path).events()
        _ = try StoreMigration.migrate(directory: path)
        // Undo the second rename: the state a crash between the two leaves.
        #expect(mkdir(path + "/migrating", 0o755) == 0)
        #expect(rename(path + "/log", path + "/migrating/log") == 0)
        #expect(try StoreReader(directory: path).events() == events)
        #expect(!SystemFile.isDirectory(path + "/migrating"))
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }

    @Test func aChangedOrUnlinkedArchivedLogIsReportedByVerify() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        _ = try await Self.formatOneStore(path)
        _ = try StoreMigration.migrate(directory: path)
        // Replace the archived log by another format-1 log: its head is not the one the migration named.
        let other = dir.path + "/other"
        _ = try await SegmentDifferentialTests.dataset(seed: 32, store: other)
        _ = system("rm -rf '\(path)/log-format1' && mv '\(other)/log' '\(path)/log-format1'")
        let report = try StoreVerifier.verify(directory: path)
        #expect(!report.isIntact)
        #expect(report.otherProblems.contains { $0.contains("does not name this log") })
    }

    @Test func aStoreWithAWriterIsNotMigrated() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        _ = try await Self.formatOneStore(path)
        let writer = try TouchLogStore(directory: path)
        #expect {
            try StoreMigration.migrate(directory: path)
        } throws: { error in
            (error as? TouchLogError)?.code == .locked
        }
        writer.close()
        #expect(try StoreReader(directory: path).formatVersion == 1)
        #expect(!SystemFile.isDirectory(path + "/migrating"))
    }
}
