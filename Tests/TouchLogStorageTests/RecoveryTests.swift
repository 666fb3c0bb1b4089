import Testing

@testable import TouchLogStorage

@Suite struct RecoveryTests {
    /// Builds a log of three commits and returns the active file's path and where its last block starts.
    private func threeCommits(_ dir: TemporaryDirectory) throws -> (path: String, lastBlockStart: Int) {
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: LogOptions(clock: fixedClock))
        try writer.append([testBlock(1)])
        try writer.append([testBlock(2), testBlock(3)])
        let path = logFilePaths(dir.log)[0]
        let start = fileBytes(path).count
        try writer.append([testBlock(4)])
        writer.close()
        return (path, start)
    }

    @Test func truncatingTheActiveFileAtEveryByteOfItsLastBlockRecoversThePreviousCommit() throws {
        let dir = TemporaryDirectory()
        let (path, start) = try threeCommits(dir)
        let whole = fileBytes(path)
        for cut in start..<whole.count {
            writeFileBytes(path, Array(whole[..<cut]))
            // A reader in another process sees the committed prefix without complaint.
            #expect(try LogReader(directory: dir.log).endOffset == 30)
            let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
            #expect(writer.endOffset == 30, "cut at \(cut)")
            if cut > start {
                #expect(writer.recovery?.position == Int64(start))
                #expect(writer.recovery?.bytesRemoved == Int64(cut - start))
            } else {
                #expect(writer.recovery == nil)
            }
            #expect(try writer.append([testBlock(9)]) == 30..<40)
            writer.close()
            #expect(try LogVerifier.verify(directory: dir.log).isIntact)
        }
    }

    /// A commit block whose header reached the disk but whose payload did not (a torn write after power loss, or a
    /// write in progress seen by a reader in another process) commits nothing: readers, the writer and verify agree.
    /// Found by the log-file fuzz target: the reader used to serve the commit's first block.
    @Test func aCommitBlockWithATornPayloadCommitsNothingForReadersToo() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: LogOptions(clock: fixedClock))
        try writer.append([testBlock(1)])
        try writer.append([testBlock(2), testBlock(3)])
        writer.close()
        let path = logFilePaths(dir.log)[0]
        let whole = fileBytes(path)
        for torn in 1...8 {
            var bytes = whole
            for i in (whole.count - torn)..<whole.count { bytes[i] ^= 0xFF }
            writeFileBytes(path, bytes)
            let reader = try LogReader(directory: dir.log)
            #expect(reader.endOffset == 10)
            #expect(reader.blocks.count == 1)
            #expect(throws: Never.self) { _ = try reader.read(reader.blocks[0]) }
            let report = try LogVerifier.verify(directory: dir.log)
            #expect(report.isIntact && report.records == 10)
            let reopened = try LogWriter(directory: dir.log, lockPath: dir.lock)
            #expect(reopened.endOffset == 10 && reopened.recovery?.uncommittedBlocks == 1)
            reopened.close()
            writeFileBytes(path, whole)
        }
    }

    @Test func anUnfinishedMultiBlockCommitIsRemovedWhole() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
        try writer.append([testBlock(1)])
        try writer.beginTransaction()
        for marker in 2...4 { try writer.add(testBlock(UInt8(marker))) }
        writer.close()  // as if the process died before commit(): blocks 2 and 3 are on disk without a commit
        let reopened = try LogWriter(directory: dir.log, lockPath: dir.lock)
        #expect(reopened.endOffset == 10)
        #expect(reopened.recovery?.uncommittedBlocks == 2)
        #expect(try reopened.append([testBlock(5)]) == 10..<20)
    }

    @Test func garbageAfterTheLastCommitIsATornTailNotDamage() throws {
        let dir = TemporaryDirectory()
        let (path, _) = try threeCommits(dir)
        var random = TestRandom(seed: 7)
        writeFileBytes(path, fileBytes(path) + random.bytes(700))
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(report.isIntact)
        #expect(report.uncommittedTailBytes == 700)
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
        #expect(writer.endOffset == 40)
        #expect(writer.recovery?.bytesRemoved == 700)
    }

    @Test func aLeftoverFileFromAnInterruptedRollIsRemoved() throws {
        let dir = TemporaryDirectory()
        _ = try threeCommits(dir)
        writeFileBytes(dir.log + "/00000000000000000040.tlog.new", [1, 2, 3])
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock)
        #expect(writer.endOffset == 40)
        #expect(try SystemFile.list(dir.log).filter { $0.hasSuffix(".new") }.isEmpty)
    }
}
