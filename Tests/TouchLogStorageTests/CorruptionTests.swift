import Glibc
import Testing

@testable import TouchLogStorage

@Suite struct CorruptionTests {
    /// A log of five single-block commits; returns the file and each block's start.
    private func fiveCommits(_ dir: TemporaryDirectory, rollSize: Int64 = 64 << 20, version: UInt16 = 2) throws -> (
        path: String, starts: [Int]
    ) {
        let options = LogOptions(rollSize: rollSize, clock: fixedClock, formatVersion: version)
        let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: options)
        for marker in 1...5 {
            try writer.append([
                version == 1 ? formatOneBlock(UInt8(marker)) : testBlock(UInt8(marker), version: version)
            ])
        }
        writer.close()
        let reader = try LogReader(directory: dir.log)
        return (logFilePaths(dir.log)[0], reader.blocks.map { Int($0.position) })
    }

    /// The parts of a block of each format: every header field, the payload (format 1) or the summary ("block 3")
    /// and the body (format 2), the checksums.
    static let parts: [(version: UInt16, name: String, range: Range<Int>)] = {
        let common: [(String, Range<Int>)] = [
            ("magic", 0..<4), ("version", 4..<6), ("codec", 6..<7), ("flags", 7..<8), ("first offset", 8..<16),
            ("count", 16..<20), ("stored length", 20..<24), ("min time", 32..<40), ("max time", 40..<48),
            ("min recorded", 48..<56), ("max recorded", 56..<64), ("previous hash", 64..<96), ("block hash", 96..<128),
            ("header check", 128..<136),
        ]
        let one = common + [("raw length", 24..<28), ("reserved", 28..<32), ("payload", 136..<146)]
        let two =
            common + [
                ("summary length", 24..<28), ("summary check", 28..<32), ("summary", 136..<143), ("body", 143..<153),
            ]
        return one.map { (1, $0.0, $0.1) } + two.map { (2, $0.0, $0.1) }
    }()

    @Test(arguments: parts.map { "format \($0.version): \($0.name)" })
    func aFlippedBitInAnyPartOfABlockIsDetectedByVerifyReadsAndTheWriter(part: String) throws {
        let (version, _, range) = Self.parts.first { "format \($0.version): \($0.name)" == part }!
        for bit in [0, 3, 7] {
            for byteInPart in [range.lowerBound, range.upperBound - 1] {
                let dir = TemporaryDirectory()
                let (path, starts) = try fiveCommits(dir, version: version)
                var bytes = fileBytes(path)
                let target = starts[2] + byteInPart
                #expect(target < starts[3], "the flipped byte must be inside block 2")
                bytes[target] ^= UInt8(1 << bit)
                writeFileBytes(path, bytes)

                let report = try LogVerifier.verify(directory: dir.log)
                #expect(!report.isIntact, "\(part) byte \(byteInPart) bit \(bit) undetected by verify")
                let named = report.problems.first?.location
                #expect(named?.file == "log/00000000000000000000.tlog")
                #expect(named?.block == 2)
                #expect(named?.byte == Int64(starts[2]))

                // A reader either refuses to open or refuses to serve the block; it never returns wrong bytes.
                var served = false
                if let reader = try? LogReader(directory: dir.log) {
                    for block in reader.blocks where block.header.firstOffset == 20 {
                        served = (try? reader.read(block)) != nil
                    }
                    if reader.endOffset < 50 && reader.blocks.count < 5 { served = false }
                }
                #expect(!served, "\(part) byte \(byteInPart) bit \(bit) served by a reader")

                // The writer refuses a log damaged before its last commit.
                #expect(throws: StorageError.self) { try LogWriter(directory: dir.log, lockPath: dir.lock) }
            }
        }
    }

    /// The writer checks the payloads of its active file on every core; with two damaged blocks it still names the
    /// first, and with none it opens where the log ends.
    @Test(arguments: [1, 2] as [UInt16])
    func theWriterNamesTheFirstDamagedPayloadOfItsActiveFile(version: UInt16) throws {
        let dir = TemporaryDirectory()
        let (path, starts) = try fiveCommits(dir, version: version)
        let reopened = try LogWriter(directory: dir.log, lockPath: dir.lock)
        #expect(reopened.endOffset == 50 && reopened.recovery == nil)
        reopened.close()
        var bytes = fileBytes(path)
        let payload = BlockHeader.size + 2
        bytes[starts[3] + payload] ^= 0x01
        bytes[starts[1] + payload] ^= 0x80
        writeFileBytes(path, bytes)
        do {
            _ = try LogWriter(directory: dir.log, lockPath: dir.lock)
            Issue.record("a damaged log was accepted by the writer")
        } catch {
            #expect(error.location?.block == 1 && error.location?.byte == Int64(starts[1]), "\(error)")
            #expect(error.message.contains("checksum mismatch"), "\(error)")
        }
    }

    /// Writes `bytes` over the log file and checks that block `block` (starting at `start`) is named by verify,
    /// refused by the writer, and never served by a reader; returns what was wrong for the failure message.
    private func expectDamageNamed(
        _ dir: TemporaryDirectory, _ path: String, _ bytes: [UInt8], block: Int, start: Int, _ label: String
    ) throws {
        writeFileBytes(path, bytes)
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(!report.isIntact, "\(label): undetected by verify")
        let named = report.problems.first?.location
        #expect(
            named?.block == block && named?.byte == Int64(start),
            "\(label): verify named \(report.problems.first.map(\.description) ?? "nothing")")
        if let reader = try? LogReader(directory: dir.log) {
            for location in reader.blocks where location.position == Int64(start) {
                #expect((try? reader.read(location)) == nil, "\(label): served by a reader")
            }
        }
        #expect(throws: StorageError.self, "\(label): accepted by the writer") {
            try LogWriter(directory: dir.log, lockPath: dir.lock)
        }
    }

    /// Every byte of a block header (each with a different bit flipped) and 64 sampled payload bits of a block in the
    /// middle of the log: each is named by verify at that block, refused by the writer, never served.
    @Test func everyHeaderByteAndSampledPayloadBitsAreDetected() throws {
        let dir = TemporaryDirectory()
        let (path, starts) = try fiveCommits(dir)
        let whole = fileBytes(path)
        var random = TestRandom(seed: 11)
        let payload = starts[2] + BlockHeader.size..<starts[3]
        var targets = (0..<BlockHeader.size).map { (starts[2] + $0, UInt8(1) << UInt8($0 % 8)) }
        targets += (0..<64).map { _ in
            (payload.lowerBound + Int(random.next() % UInt64(payload.count)), UInt8(1) << UInt8(random.next() % 8))
        }
        for (position, mask) in targets {
            var bytes = whole
            bytes[position] ^= mask
            try expectDamageNamed(
                dir, path, bytes, block: 2, start: starts[2], "byte \(position - starts[2]) of block 2, mask \(mask)")
        }
        // And every byte of the file header.
        for position in 0..<LogFileHeader.size {
            var bytes = whole
            bytes[position] ^= UInt8(1) << UInt8(position % 8)
            writeFileBytes(path, bytes)
            let report = try LogVerifier.verify(directory: dir.log)
            #expect(
                report.problems.first?.location?.byte == 0,
                "file header byte \(position): \(report.problems.first.map(\.description) ?? "undetected")")
            #expect(throws: StorageError.self) { try LogReader(directory: dir.log) }
            #expect(throws: StorageError.self) { try LogWriter(directory: dir.log, lockPath: dir.lock) }
        }
    }

    /// A misdirected write (a block's bytes landing on another block's place) and a block from another log of the
    /// same shape: both break the chain or the offsets at exactly that block.
    @Test func aMisdirectedWriteAndABlockFromAnotherLogAreDetected() throws {
        let dir = TemporaryDirectory()
        let (path, starts) = try fiveCommits(dir)
        let whole = fileBytes(path)
        var misdirected = whole
        misdirected.replaceSubrange(starts[1]..<starts[2], with: whole[starts[3]..<starts[4]])
        try expectDamageNamed(dir, path, misdirected, block: 1, start: starts[1], "block 3 written over block 1")

        let other = TemporaryDirectory()
        let writer = try LogWriter(
            directory: other.log, lockPath: other.lock, options: LogOptions(clock: { 2_000 }, formatVersion: 2))
        for marker in 1...5 { try writer.append([testBlock(UInt8(marker) &+ 100, version: 2)]) }
        writer.close()
        let foreign = fileBytes(logFilePaths(other.log)[0])
        var mixed = whole
        mixed.replaceSubrange(starts[2]..<starts[3], with: foreign[starts[2]..<starts[3]])
        try expectDamageNamed(dir, path, mixed, block: 2, start: starts[2], "block 2 of another log")
    }

    /// Reserved bytes or unknown flag bits set in a block, with both checksums recomputed over the raw bytes: the
    /// header itself is refused and named as such (the block hash is defined over the header as this version encodes
    /// it, so such bits used to surface as a baffling payload checksum mismatch). Found by the log-file fuzz target.
    @Test func unknownHeaderBitsAreRefusedEvenWithMatchingChecksums() throws {
        for (version, byte, value, reason) in [
            (UInt16(1), 28, UInt8(1), "reserved bytes are not zero"),
            (1, 31, UInt8(0x80), "reserved bytes are not zero"), (1, 7, UInt8(0x02), "unknown flags 2"),
            (2, 7, UInt8(0x04), "unknown flags 4"),
        ] {
            let dir = TemporaryDirectory()
            let (path, starts) = try fiveCommits(dir, version: version)
            var bytes = fileBytes(path)
            let at = starts[2]
            bytes[at + byte] = value
            let payload = Array(bytes[(at + BlockHeader.size)..<starts[3]])
            bytes.replaceSubrange(
                at + 96..<at + 128, with: BlockHash.sha256(of: Array(bytes[at..<at + 96]) + payload).bytes)
            bytes.replaceSubrange(
                at + 128..<at + 136, with: BlockHash.sha256(of: Array(bytes[at..<at + 128])).bytes[0..<8])
            try expectDamageNamed(
                dir, path, bytes, block: 2, start: at, "format \(version): byte \(byte) set to \(value)")
            let report = try LogVerifier.verify(directory: dir.log)
            #expect(
                report.problems.first?.message.contains(reason) == true,
                "byte \(byte): \(report.problems.first.map(\.description) ?? "")")
        }
    }

    @Test func reorderedBlocksAreDetected() throws {
        let dir = TemporaryDirectory()
        let (path, starts) = try fiveCommits(dir)
        var bytes = fileBytes(path)
        let second = Array(bytes[starts[1]..<starts[2]])
        let third = Array(bytes[starts[2]..<starts[3]])
        #expect(second.count == third.count)
        bytes.replaceSubrange(starts[1]..<starts[3], with: third + second)
        writeFileBytes(path, bytes)
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(report.problems.contains { $0.location?.byte == Int64(starts[1]) })
        #expect(throws: StorageError.self) { try LogReader(directory: dir.log) }
    }

    @Test func aMissingOrTruncatedSealedFileIsDetected() throws {
        let dir = TemporaryDirectory()
        _ = try fiveCommits(dir, rollSize: 200)
        let paths = logFilePaths(dir.log)
        #expect(paths.count >= 3)
        let middle = fileBytes(paths[1])
        try SystemFile.remove(paths[1])
        #expect(!(try LogVerifier.verify(directory: dir.log)).isIntact)
        #expect(throws: StorageError.self) { try LogWriter(directory: dir.log, lockPath: dir.lock) }
        writeFileBytes(paths[1], Array(middle.dropLast(5)))
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(
            report.problems.contains {
                $0.location?.file.hasSuffix(String(paths[1].split(separator: "/").last!)) == true
            })
        #expect(throws: StorageError.self) { try LogReader(directory: dir.log) }
    }

    @Test func verifyGoesOnPastDamageAndNamesEveryDamagedBlock() throws {
        let dir = TemporaryDirectory()
        let (path, starts) = try fiveCommits(dir)
        var bytes = fileBytes(path)
        bytes[starts[1] + 140] ^= 1
        bytes[starts[3] + 140] ^= 1
        writeFileBytes(path, bytes)
        let report = try LogVerifier.verify(directory: dir.log)
        #expect(report.problems.compactMap { $0.location?.block } == [1, 3])
    }

    /// A change to the on-disk format must show up as a diff of Fixtures/format/: one golden file per format
    /// version (format 1 is still read and appended to; new logs are format 2).
    @Test(arguments: [(UInt16(1), "format/two-blocks-v1.tlog"), (UInt16(2), "format/two-blocks-v2.tlog")])
    func theBlockFormatMatchesTheGoldenFile(version: UInt16, file: String) throws {
        let golden = fixturePath(file)
        let dir = TemporaryDirectory()
        let writer = try LogWriter(
            directory: dir.log, lockPath: dir.lock, options: LogOptions(clock: fixedClock, formatVersion: version))
        let blocks =
            version == 1
            ? [formatOneBlock(1, count: 3), formatOneBlock(2, count: 2)]
            : [testBlock(1, count: 3, version: version), testBlock(2, count: 2, version: version)]
        try writer.append(blocks)
        writer.close()
        let produced = fileBytes(logFilePaths(dir.log)[0])
        if getenv("TOUCHLOG_UPDATE_GOLDEN") != nil { writeFileBytes(golden, produced) }
        #expect(produced == fileBytes(golden))
        let reader = try LogReader(directory: dir.log)
        #expect(reader.formatVersion == version)
        #expect(reader.blocks.count == 2)
        #expect(try reader.read(reader.blocks[0]) == blocks[0].servedBytes)
    }
}

/// The path of a file under the package's `Fixtures/`.
func fixturePath(_ relative: String) -> String { fixturePath(relative, from: #filePath) }
