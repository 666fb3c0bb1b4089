import Testing

@testable import TouchLogStorage

/// A format-2 block: a summary naming the marker, and a body of `count` copies of it.
func summaryBlock(_ marker: UInt8, count: Int = 10, time: Int64 = 1_000) -> RawBlock {
    RawBlock(
        summary: Array("summary \(marker)".utf8), body: [UInt8](repeating: marker, count: count * 4), count: count,
        minTime: time, maxTime: time + Int64(count), version: 2)
}

@Suite struct FormatTwoTests {
    let formatTwo = LogOptions(clock: fixedClock, formatVersion: 2)

    @Test func summariesAndBodiesAreReadBackTogetherAndApart() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: formatTwo)
        #expect(writer.formatVersion == 2)
        #expect(try writer.append([summaryBlock(1), summaryBlock(2, count: 5)]) == 0..<15)
        let reader = try LogReader(directory: dir.log)
        #expect(reader.formatVersion == 2)
        #expect(reader.blocks.map(\.header.version) == [2, 2])
        let second = reader.blocks[1]
        #expect(try reader.summary(of: second) == Array("summary 2".utf8))
        #expect(try reader.read(second) == Array("summary 2".utf8) + [UInt8](repeating: 2, count: 20))
        var part: [UInt8] = []
        try reader.readBody(of: second, at: 3, count: 4, into: &part)
        #expect(part == [2, 2, 2, 2])
        #expect(throws: StorageError.self) { try reader.readBody(of: second, at: 18, count: 4, into: &part) }
        #expect(try LogVerifier.verify(directory: dir.log).isIntact)
    }

    @Test func aCommitCarriesItsMetadataAndAGivenRecordedTime() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: formatTwo)
        try writer.beginTransaction(recorded: 1_800_000_000_000, metadata: Array("stream-3:41".utf8))
        try writer.add(summaryBlock(1))
        try writer.add(summaryBlock(2))
        try writer.commit()
        // A recorded time earlier than the last commit's is refused; the writer stays usable.
        #expect(throws: StorageError.self) { try writer.beginTransaction(recorded: 1_700_000_000_000) }
        try writer.append([summaryBlock(3)])
        let reader = try LogReader(directory: dir.log)
        #expect(reader.blocks.map(\.header.hasMetadata) == [false, true, false])
        #expect(try reader.metadata(of: reader.blocks[1]) == Array("stream-3:41".utf8))
        #expect(try reader.metadata(of: reader.blocks[2]) == nil)
        #expect(try reader.summary(of: reader.blocks[1]) == Array("summary 2".utf8))
        #expect(reader.blocks.map(\.header.maxRecorded) == [1_800_000_000_000, 1_800_000_000_000, 1_800_000_000_000])
        #expect(try LogVerifier.verify(directory: dir.log).isIntact)
    }

    @Test func aFormatOneLogStaysFormatOneAndTakesNoFormatTwoBlocks() throws {
        let dir = TemporaryDirectory()
        try LogWriter(directory: dir.log, lockPath: dir.lock, options: LogOptions(formatVersion: 1)).append([
            formatOneBlock(1)
        ])
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: formatTwo)
        #expect(writer.formatVersion == 1)
        #expect(throws: StorageError.self) { try writer.append([summaryBlock(2)]) }
        #expect(throws: StorageError.self) { try writer.beginTransaction(metadata: [1]) }
        try writer.append([formatOneBlock(3)])
        #expect(try LogReader(directory: dir.log).blocks.map(\.header.version) == [1, 1])
    }

    @Test func aDamagedSummaryIsCaughtByItsCheckAndByVerify() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: formatTwo)
        for marker: UInt8 in 1...3 { try writer.append([summaryBlock(marker)]) }
        writer.close()
        let path = logFilePaths(dir.log)[0]
        var bytes = fileBytes(path)
        let second = try LogReader(directory: dir.log).blocks[1]
        bytes[Int(second.position) + BlockHeader.size + 2] ^= 0x10
        writeFileBytes(path, bytes)
        let reader = try LogReader(directory: dir.log)
        #expect(throws: StorageError.self) { try reader.summary(of: reader.blocks[1]) }
        #expect(throws: StorageError.self) { try reader.read(reader.blocks[1]) }
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(!report.isIntact)
        #expect(report.problems.first?.location?.block == 1)
    }

    @Test func headersOfEitherVersionAreParsedAsWritten() throws {
        for version: UInt16 in [1, 2] {
            let stored: [UInt8] = Array(repeating: 7, count: 40)
            let (header, bytes) = BlockHeader.sealed(
                version: version, isCommit: true, hasMetadata: version == 2, firstOffset: 5, count: 3,
                storedPayload: stored,
                rawLength: 99, summaryLength: version == 2 ? 12 : 0, minTime: -4, maxTime: 9, recorded: 77,
                previousHash: .zero)
            let parsed = try BlockHeader.parse(bytes[...]).get()
            #expect(parsed == header)
            #expect(parsed.version == version)
            #expect(parsed.summaryLength == (version == 2 ? 12 : 0))
            #expect(parsed.rawLength == (version == 2 ? 40 : 99))
            #expect(parsed.matches(storedPayload: stored[...]))
        }
    }

    /// Format 3: a commit of metadata alone is a marker, one block of no records that links the chain; a reader lists
    /// it apart from the blocks that hold records. In format 2 such a commit is nothing.
    @Test func aCommitOfMetadataAloneIsAMarkerInFormatThree() throws {
        let dir = TemporaryDirectory()
        let writer = try LogWriter(
            directory: dir.log, lockPath: dir.lock, options: LogOptions(clock: fixedClock, formatVersion: 3))
        try writer.append([summaryBlock(1).withVersion(3)])
        let before = writer.headHash
        try writer.beginTransaction(metadata: Array("erased".utf8))
        #expect(try writer.commit() == 10..<10)
        #expect(writer.headHash != before && writer.endOffset == 10)
        try writer.append([summaryBlock(2).withVersion(3)])
        writer.close()
        let reader = try LogReader(directory: dir.log)
        #expect(reader.blocks.count == 2 && reader.markers.count == 1 && reader.endOffset == 20)
        let marker = reader.markers[0]
        #expect(marker.header.isMarker && marker.header.previousHash == before && marker.header.firstOffset == 10)
        #expect(try reader.metadata(of: marker) == Array("erased".utf8))
        #expect(reader.blocks[1].header.previousHash == marker.header.hash)
        #expect(try LogVerifier.verify(directory: dir.log).isIntact)
        // Reopened, the writer continues the chain after the marker.
        let again = try LogWriter(
            directory: dir.log, lockPath: dir.lock, options: LogOptions(clock: fixedClock, formatVersion: 3))
        #expect(again.headHash == reader.headHash && again.endOffset == 20)

        let two = TemporaryDirectory()
        let formatTwoWriter = try LogWriter(directory: two.log, lockPath: two.lock, options: formatTwo)
        try formatTwoWriter.beginTransaction(metadata: Array("erased".utf8))
        #expect(try formatTwoWriter.commit() == 0..<0)
        #expect(try LogReader(directory: two.log).markers.isEmpty)
    }
}

extension RawBlock {
    func withVersion(_ version: UInt16) -> RawBlock {
        RawBlock(summary: summary!, body: payload, count: count, minTime: minTime, maxTime: maxTime, version: version)
    }
}
