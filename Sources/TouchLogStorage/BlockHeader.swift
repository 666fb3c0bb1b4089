/// The fixed 136-byte header in front of every block.
///
/// The byte layout is documented in the `LogFormat` article of this module and pinned by golden files in
/// `Fixtures/format/`. All integers are little-endian. Two versions share one layout:
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | magic `TLBK` |
/// | 4..<6 | format version (1 or 2) |
/// | 6 | codec: version 1, 1 = the payload is one LZ4 block; version 2, 0 = stored as the writer gave it |
/// | 7 | flags (bit 0: the last block of a commit; version 2, bit 1: the summary begins with commit metadata) |
/// | 8..<16 | first offset |
/// | 16..<20 | record count |
/// | 20..<24 | stored length: the bytes after the header (version 2: summary, then body) |
/// | 24..<28 | version 1: raw (decompressed) payload length; version 2: summary length |
/// | 28..<32 | version 1: zero; version 2: summary check, the low 32 bits of XXH3-64 of the summary |
/// | 32..<40, 40..<48 | min, max record time (ms) |
/// | 48..<56, 56..<64 | min, max recorded time (ms) |
/// | 64..<96 | hash of the previous block (zeros for the first block of the log) |
/// | 96..<128 | block hash: SHA-256 of bytes 0..<96 followed by the stored bytes |
/// | 128..<136 | header check: the first 8 bytes of SHA-256 of bytes 0..<128 |
///
/// A version-2 block's *summary* is what the layer above says about the block (for touchlog events: which
/// touchpoints and types it holds, when, and where each section of its body lies), kept apart from the body so
/// that a reader can decide from it alone whether, and which part of, the block to read.
public struct BlockHeader: Hashable, Sendable {
    /// Bytes of a block header.
    public static let size = 136
    /// The first four bytes of every block header.
    public static let magic: [UInt8] = Array("TLBK".utf8)
    /// The newest format version this touchlog reads and writes; it reads every version from 1 on.
    public static let formatVersion: UInt16 = 3
    /// The block format versions this touchlog reads and writes.
    public static let supportedVersions: ClosedRange<UInt16> = 1...3
    /// Codec byte of a version-1 block whose payload is LZ4-compressed.
    public static let codecLZ4: UInt8 = 1
    /// Codec byte of a block stored as given.
    public static let codecStored: UInt8 = 0
    /// The largest raw payload a block may hold (64 MiB); larger claims are treated as damage.
    public static let maxPayloadLength = 64 << 20
    /// The largest summary a version-2 block may have (1 MiB), commit metadata included.
    public static let maxSummaryLength = 1 << 20
    /// The largest commit metadata (64 KiB); with its length (a varint of at most 10 bytes) it takes part of the summary.
    public static let maxMetadataLength = 64 << 10
    /// The largest commit metadata of a marker (format 3), which has no summary of its own.
    public static let maxMarkerMetadataLength = maxSummaryLength - 10
    /// The largest summary a block may bring of its own, leaving room for the commit metadata.
    public static let maxOwnSummaryLength = maxSummaryLength - maxMetadataLength - 10
    static let commitFlag: UInt8 = 1
    static let metadataFlag: UInt8 = 2

    /// The block's format version: 1 (an LZ4 payload) or 2 (a summary and a body, stored as given).
    public var version: UInt16 = 1
    /// How the stored bytes are encoded (``codecLZ4`` or ``codecStored``).
    public var codec: UInt8 = BlockHeader.codecLZ4
    /// True on the last block of a commit; a reader serves no block after the last such block.
    public var isCommit: Bool
    /// Version 2: the summary begins with the commit's metadata (a varint length, then the bytes).
    public var hasMetadata = false
    /// The offset of the block's first record.
    public var firstOffset: UInt64
    /// How many records the block holds.
    public var count: UInt32
    /// The bytes that follow the header: version 1, the compressed payload; version 2, the summary and the body.
    public var storedLength: UInt32
    /// Version 1: the payload's length once decompressed. Version 2: the stored length (nothing is compressed here).
    public var rawLength: UInt32
    /// Version 2: how many of the stored bytes are the summary (0 for version 1).
    public var summaryLength: UInt32 = 0
    /// Version 2: the low 32 bits of XXH3-64 of the summary.
    public var summaryCheck: UInt32 = 0
    /// The earliest event time in the block.
    public var minTime: Int64
    /// The latest event time in the block.
    public var maxTime: Int64
    /// The earliest recorded time of the block's records.
    public var minRecorded: Int64
    /// The latest recorded time of the block's records.
    public var maxRecorded: Int64
    /// The hash of the block before it in the log (``BlockHash/zero`` for the first).
    public var previousHash: BlockHash
    /// This block's hash: SHA-256 of header bytes 0..<96 and the stored bytes.
    public var hash: BlockHash

    /// The offset after this block's last record.
    public var endOffset: UInt64 { firstOffset + UInt64(count) }

    /// A *marker* (format 3): a commit of one block with no records, whose stored bytes are only its commit metadata.
    public var isMarker: Bool {
        version >= 3 && count == 0 && isCommit && hasMetadata && summaryLength == storedLength
    }

    /// The header bytes 0..<96, which the block hash covers together with the payload.
    func hashedPrefix() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(BlockHeader.size)
        bytes.append(contentsOf: BlockHeader.magic)
        bytes.appendLittleEndian(version)
        bytes.append(codec)
        bytes.append((isCommit ? BlockHeader.commitFlag : 0) | (hasMetadata ? BlockHeader.metadataFlag : 0))
        bytes.appendLittleEndian(firstOffset)
        bytes.appendLittleEndian(count)
        bytes.appendLittleEndian(storedLength)
        if version == 1 {
            bytes.appendLittleEndian(rawLength)
            bytes.appendLittleEndian(UInt32(0))
        } else {
            bytes.appendLittleEndian(summaryLength)
            bytes.appendLittleEndian(summaryCheck)
        }
        bytes.appendLittleEndian(minTime)
        bytes.appendLittleEndian(maxTime)
        bytes.appendLittleEndian(minRecorded)
        bytes.appendLittleEndian(maxRecorded)
        bytes.append(contentsOf: previousHash.bytes)
        return bytes
    }

    /// Builds the header for `storedPayload` (version 2: the summary's first `summaryLength` bytes, then the body),
    /// computing the summary check, the block hash and the header check.
    static func sealed(
        version: UInt16, isCommit: Bool, hasMetadata: Bool = false, firstOffset: UInt64, count: UInt32,
        storedPayload: [UInt8],
        rawLength: Int, summaryLength: Int = 0, minTime: Int64, maxTime: Int64, recorded: Int64, previousHash: BlockHash
    ) -> (header: BlockHeader, bytes: [UInt8]) {
        var header = BlockHeader(
            version: version, codec: version == 1 ? codecLZ4 : codecStored, isCommit: isCommit,
            hasMetadata: hasMetadata,
            firstOffset: firstOffset, count: count, storedLength: UInt32(storedPayload.count),
            rawLength: UInt32(version == 1 ? rawLength : storedPayload.count), minTime: minTime, maxTime: maxTime,
            minRecorded: recorded, maxRecorded: recorded, previousHash: previousHash, hash: .zero)
        if version >= 2 {
            header.summaryLength = UInt32(summaryLength)
            header.summaryCheck = summaryCheck(of: storedPayload[..<summaryLength])
        }
        var bytes = header.hashedPrefix()
        header.hash = BlockHash(bytes: Digest.sha256(bytes[...], storedPayload[...]))
        bytes.append(contentsOf: header.hash.bytes)
        bytes.append(contentsOf: Digest.sha256(bytes[...]).prefix(8))
        return (header, bytes)
    }

    /// Why a header's bytes were refused.
    public enum Defect: Error, Hashable, Sendable, CustomStringConvertible {
        /// Fewer bytes than a header's size are left in the file.
        case truncated(available: Int)
        /// The bytes do not start with the block magic.
        case badMagic
        /// The header's own checksum does not match its bytes.
        case badHeaderCheck
        /// The block's format version is newer than this build reads.
        case unsupportedVersion(UInt16)
        /// The payload codec is none this build knows.
        case unknownCodec(UInt8)
        /// The fields contradict each other (the reason says how).
        case implausible(String)

        /// The header's fields in one line, for messages.
        public var description: String {
            switch self {
            case .truncated(let available): return "block header cut short (\(available) of \(BlockHeader.size) bytes)"
            case .badMagic: return "no block header here (bad magic)"
            case .badHeaderCheck: return "block header checksum mismatch"
            case .unsupportedVersion(let v): return "block format version \(v) is newer than this touchlog understands"
            case .unknownCodec(let c): return "unknown block codec \(c)"
            case .implausible(let what): return "block header is inconsistent: \(what)"
            }
        }
    }

    /// Parses and checks a header; the payload is checked separately against ``hash``.
    static func parse(_ bytes: ArraySlice<UInt8>) -> Result<BlockHeader, Defect> {
        guard bytes.count >= size else { return .failure(.truncated(available: bytes.count)) }
        let b = bytes.prefix(size)
        guard b.prefix(4).elementsEqual(magic) else { return .failure(.badMagic) }
        let check = Digest.sha256(b.prefix(128)).prefix(8)
        guard b.dropFirst(128).elementsEqual(check) else { return .failure(.badHeaderCheck) }
        let version: UInt16 = b.littleEndian(at: 4)
        guard supportedVersions.contains(version) else { return .failure(.unsupportedVersion(version)) }
        let codec = b[b.startIndex + 6]
        guard codec == (version == 1 ? codecLZ4 : codecStored) else { return .failure(.unknownCodec(codec)) }
        // The block hash is computed over the header as it is re-encoded, so bits this version does not know must be 0.
        let flags = b[b.startIndex + 7]
        guard flags & ~(version == 1 ? commitFlag : commitFlag | metadataFlag) == 0 else {
            return .failure(.implausible("unknown flags \(flags)"))
        }
        if version == 1 && !b[(b.startIndex + 28)..<(b.startIndex + 32)].allSatisfy({ $0 == 0 }) {
            return .failure(.implausible("reserved bytes are not zero"))
        }
        let storedLength: UInt32 = b.littleEndian(at: 20)
        var header = BlockHeader(
            version: version,
            codec: codec,
            isCommit: flags & commitFlag != 0,
            hasMetadata: flags & metadataFlag != 0,
            firstOffset: b.littleEndian(at: 8),
            count: b.littleEndian(at: 16),
            storedLength: storedLength,
            rawLength: version == 1 ? b.littleEndian(at: 24) : storedLength,
            minTime: b.littleEndian(at: 32),
            maxTime: b.littleEndian(at: 40),
            minRecorded: b.littleEndian(at: 48),
            maxRecorded: b.littleEndian(at: 56),
            previousHash: BlockHash(bytes: Array(b[(b.startIndex + 64)..<(b.startIndex + 96)])),
            hash: BlockHash(bytes: Array(b[(b.startIndex + 96)..<(b.startIndex + 128)])))
        if version >= 2 {
            header.summaryLength = b.littleEndian(at: 24)
            header.summaryCheck = b.littleEndian(at: 28)
            if header.summaryLength > header.storedLength {
                return .failure(.implausible("a summary longer than the block"))
            }
            if Int(header.summaryLength) > maxSummaryLength {
                return .failure(.implausible("a summary of \(header.summaryLength) bytes"))
            }
            if header.hasMetadata && !header.isCommit {
                return .failure(.implausible("commit metadata on a block that ends no commit"))
            }
        }
        // Format 3: a commit may be a single block of no records that carries only its metadata (an erasure).
        if header.count == 0 && !header.isMarker { return .failure(.implausible("zero records")) }
        if Int(header.rawLength) > maxPayloadLength {
            return .failure(.implausible("payload of \(header.rawLength) bytes"))
        }
        if header.minTime > header.maxTime { return .failure(.implausible("min time after max time")) }
        if header.minRecorded > header.maxRecorded { return .failure(.implausible("min recorded after max recorded")) }
        return .success(header)
    }

    /// The header a format-2 block with these contents would have, for decoding blocks that never were in a log
    /// (fuzzing, tests); its hashes are zero.
    package static func formatTwo(count: UInt32, storedLength: Int, summaryLength: Int, minTime: Int64, maxTime: Int64)
        -> BlockHeader
    {
        var header = BlockHeader(
            version: 2, codec: codecStored, isCommit: true, firstOffset: 0, count: count,
            storedLength: UInt32(storedLength),
            rawLength: UInt32(storedLength), minTime: minTime, maxTime: maxTime, minRecorded: 0, maxRecorded: 0,
            previousHash: .zero, hash: .zero)
        header.summaryLength = UInt32(summaryLength)
        return header
    }

    /// Where the commit metadata lies in the summary bytes of a block with ``hasMetadata`` (they begin with its
    /// length, a varint); nil when the length runs past them. The block's own summary follows the metadata.
    package static func metadataRange(inSummary summary: ArraySlice<UInt8>) -> Range<Int>? {
        var length = 0
        var shift = 0
        var i = summary.startIndex
        while true {
            guard i < summary.endIndex, shift < 63 else { return nil }
            length |= Int(summary[i] & 0x7f) << shift
            shift += 7
            i += 1
            if summary[i - 1] & 0x80 == 0 { break }
        }
        guard length >= 0, length <= summary.endIndex - i else { return nil }
        return i..<(i + length)
    }

    /// The summary check of `summary`: the low 32 bits of its XXH3-64.
    static func summaryCheck(of summary: ArraySlice<UInt8>) -> UInt32 {
        UInt32(truncatingIfNeeded: XXH3.hash(summary))
    }

    /// True when `summary` (a version-2 block's first ``summaryLength`` stored bytes) is the one it was sealed with.
    func matches(summary: ArraySlice<UInt8>) -> Bool {
        summary.count == Int(summaryLength) && Self.summaryCheck(of: summary) == summaryCheck
    }

    /// True when `storedPayload` is the payload this header was sealed with.
    func matches(storedPayload: ArraySlice<UInt8>) -> Bool {
        storedPayload.count == Int(storedLength)
            && Digest.sha256(hashedPrefix()[...], storedPayload) == hash.bytes
    }
}

/// The 32-byte header at the start of every log file.
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | magic `TLOG` |
/// | 4..<6 | format version (1 or 2): every block of the file has it |
/// | 6..<8 | reserved, zero |
/// | 8..<16 | offset of the file's first record (also its name) |
/// | 16..<24 | reserved, zero |
/// | 24..<32 | header check: the first 8 bytes of SHA-256 of bytes 0..<24 |
public struct LogFileHeader: Hashable, Sendable {
    /// Bytes of a file header.
    public static let size = 32
    /// The first four bytes of every log file.
    public static let magic: [UInt8] = Array("TLOG".utf8)
    /// The offset of the file's first record (also its name).
    public var firstOffset: UInt64
    /// The format version of the file's blocks.
    public var version: UInt16 = BlockHeader.formatVersion

    func encoded() -> [UInt8] {
        var bytes = LogFileHeader.magic
        bytes.appendLittleEndian(version)
        bytes.appendLittleEndian(UInt16(0))
        bytes.appendLittleEndian(firstOffset)
        bytes.appendLittleEndian(UInt64(0))
        bytes.append(contentsOf: Digest.sha256(bytes[...]).prefix(8))
        return bytes
    }

    static func parse(_ bytes: [UInt8]) -> LogFileHeader? {
        guard bytes.count >= size, bytes.prefix(4).elementsEqual(magic),
            bytes[24..<32].elementsEqual(Digest.sha256(bytes[0..<24]).prefix(8)),
            BlockHeader.supportedVersions.contains(bytes.littleEndian(at: 4, as: UInt16.self)),
            bytes[6..<8].allSatisfy({ $0 == 0 }), bytes[16..<24].allSatisfy({ $0 == 0 })
        else { return nil }
        return LogFileHeader(firstOffset: bytes.littleEndian(at: 8), version: bytes.littleEndian(at: 4))
    }

    /// The file name for a log file whose first record has `offset`: 20 decimal digits and `.tlog`.
    static func fileName(firstOffset offset: UInt64) -> String {
        let digits = String(offset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".tlog"
    }

    /// The first offset a log file name encodes, or nil when the name is not a log file's.
    static func firstOffset(fileName name: String) -> UInt64? {
        guard name.hasSuffix(".tlog"), name.utf8.count == 25 else { return nil }
        let digits = name.dropLast(5)
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return UInt64(digits)
    }
}
