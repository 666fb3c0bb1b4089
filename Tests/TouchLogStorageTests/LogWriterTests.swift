import Testing

@testable import TouchLogStorage

@Suite struct LogWriterTests {
    @Test func appendedBlocksAreReadBackInOrderWithContiguousOffsets() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
        #expect(try writer.append([testBlock(1), testBlock(2, count: 5)]) == 0..<15)
        #expect(try writer.append([testBlock(3, count: 1)]) == 15..<16)
        let reader = try LogReader(directory: dir.log)
        #expect(reader.endOffset == 16)
        #expect(reader.blocks.map(\.header.firstOffset) == [0, 10, 15])
        #expect(try reader.read(reader.blocks[1]) == testBlock(2, count: 5).servedBytes)
        #expect(reader.blocks.map(\.header.isCommit) == [false, true, true])
        #expect(reader.headHash == writer.headHash)
    }

    @Test func recordedTimeNeverDecreasesEvenWhenTheClockGoesBack() throws {
        let dir = TemporaryDirectory()
        let clock = ManualClock()
        var options = LogOptions()
        options.clock = { clock.read() }
        clock.set(5_000)
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: options)
        try writer.append([testBlock(1)])
        clock.set(3_000)
        try writer.append([testBlock(2)])
        writer.close()
        clock.set(1_000)
        let reopened = try LogWriter(directory: dir.log, lockPath: dir.lock, options: options)
        try reopened.append([testBlock(3)])
        let reader = try LogReader(directory: dir.log)
        #expect(reader.blocks.map(\.header.maxRecorded) == [5_000, 5_000, 5_000])
    }

    @Test func filesRollAtCommitBoundariesAndTheChainCrossesThem() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: LogOptions(rollSize: 300))
        for marker in 1...6 { try writer.append([testBlock(UInt8(marker))]) }
        let files = try LogFile.list(in: dir.log)
        #expect(files.count > 1)
        #expect(files.first?.firstOffset == 0)
        let reader = try LogReader(directory: dir.log)
        #expect(reader.endOffset == 60)
        for (previous, next) in zip(reader.blocks, reader.blocks.dropFirst()) {
            #expect(next.header.previousHash == previous.header.hash)
        }
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(report.isIntact)
        #expect(report.records == 60)
        #expect(report.head == writer.headHash)
    }

    /// A reader refreshed after each commit finds the files the writer rolls over to (it lists the directory only
    /// when a file named for its end offset exists) and ends up where a reader opened afterwards starts.
    @Test func aRefreshedReaderFollowsTheWriterAcrossFiles() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: LogOptions(rollSize: 300))
        try writer.append([testBlock(1)])
        let reader = try LogReader(directory: dir.log)
        for marker in 2...9 {
            try writer.append([testBlock(UInt8(marker))])
            try reader.refresh()
            #expect(reader.endOffset == UInt64(marker) * 10)
            #expect(reader.files.count == (try LogFile.list(in: dir.log)).count)
        }
        #expect(reader.files.count > 2)
        let fresh = try LogReader(directory: dir.log)
        #expect(reader.blocks == fresh.blocks)
        #expect(reader.headHash == writer.headHash)
    }

    @Test func aRolledBackTransactionLeavesNoTrace() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
        try writer.append([testBlock(1)])
        let sizeBefore = fileBytes(logFilePaths(dir.log)[0]).count
        try writer.beginTransaction()
        try writer.add(testBlock(2))
        try writer.add(testBlock(3))
        try writer.add(testBlock(4))
        try writer.rollback()
        #expect(fileBytes(logFilePaths(dir.log)[0]).count == sizeBefore)
        #expect(try writer.append([testBlock(5)]) == 10..<20)
        #expect(try LogReader(directory: dir.log).endOffset == 20)
    }

    @Test func aReaderNeverSeesAnUnfinishedTransaction() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
        try writer.append([testBlock(1)])
        try writer.beginTransaction()
        for marker in 2...5 { try writer.add(testBlock(UInt8(marker))) }
        // Blocks 2–4 are on disk now (only the last is held back), but the commit is not.
        let reader = try LogReader(directory: dir.log)
        #expect(reader.endOffset == 10)
        #expect(reader.uncommittedTailBytes > 0)
        try writer.commit()
        try reader.refresh()
        #expect(reader.endOffset == 50)
    }

    @Test func aSecondWriterIsRefusedWhileTheFirstHoldsTheLock() throws {
        let dir = TemporaryDirectory()
        let first = try LogWriter(directory: dir.log, lockPath: dir.lock)
        #expect {
            _ = try LogWriter(directory: dir.log, lockPath: dir.lock)
        } throws: { error in
            (error as? StorageError)?.code == .locked && "\(error)".contains("locked by another writer")
        }
        first.close()
        _ = try LogWriter(directory: dir.log, lockPath: dir.lock)
    }

    @Test func groupCommitSharesSyncsAndKeepsEveryAppendWhole() async throws {
        let dir = TemporaryDirectory()
        let shared = GroupCommitWriter(try LogWriter(directory: dir.log, lockPath: dir.lock))
        let ranges = try await withThrowingTaskGroup(of: Range<UInt64>.self) { group in
            for i in 0..<200 {
                group.addTask { try await shared.append([testBlock(UInt8(i % 250), count: 1 + i % 7)]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        #expect(sorted.first?.lowerBound == 0)
        for (a, b) in zip(sorted, sorted.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
        let syncs = shared.withWriter { $0.syncCount }
        #expect(syncs < 200, "group commit shares fsyncs (got \(syncs) for 200 appends)")
        #expect(try LogVerifier.verify(directory: dir.log).isIntact)
    }
}
