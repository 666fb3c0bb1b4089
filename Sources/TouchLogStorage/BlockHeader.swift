/// The fixed 136-byte header in front of every block's payload.
///
/// The byte layout is documented in the `LogFormat` article of this module and pinned by a golden file in
/// `Fixtures/format/`. All integers are little-endian.
///
/// | bytes | field |
/// |---|---|
/// | 0..<4 | magic `TLBK` |
/// | 4..<6 | format version (1) |
/// | 6 | codec (1 = LZ4 block) |
/// | 7 | flags (bit 0: the last block of a commit) |
/// | 8..<16 | first offset |
/// | 16..<20 | record count |
/// | 20..<24 | stored (compressed) payload length |
/// | 24..<28 | raw payload length |
/// | 28..<32 | reserved, zero |
/// | 32..<40, 40..<48 | min, max record time (ms) |
/// | 48..<56, 56..<64 | min, max recorded time (ms) |
/// | 64..<96 | hash of the previous block (zeros for the first block of the log) |
/// | 96..<128 | block hash: SHA-256 of bytes 0..<96 followed by the stored payload |
/// | 128..<136 | header check: the first 8 bytes of SHA-256 of bytes 0..<128 |
public struct BlockHeader: Hashable, Sendable {
    public static let size = 136
    public static let magic: [UInt8] = Array("TLBK".utf8)
    public static let formatVersion: UInt16 = 1
    public static let codecLZ4: UInt8 = 1
    /// The largest raw payload a block may hold (64 MiB); larger claims are treated as damage.
    public static let maxPayloadLength = 64 << 20
    static let commitFlag: UInt8 = 1

    public var codec: UInt8 = BlockHeader.codecLZ4
    /// True on the last block of a commit; a reader serves no block after the last such block.
    public var isCommit: Bool
    public var firstOffset: UInt64
    public var count: UInt32
    public var storedLength: UInt32
    public var rawLength: UInt32
    public var minTime: Int64
    public var maxTime: Int64
    public var minRecorded: Int64
    public var maxRecorded: Int64
    public var previousHash: BlockHash
    public var hash: BlockHash

    /// The offset after this block's last record.
    public var endOffset: UInt64 { firstOffset + UInt64(count) }

    /// The header bytes 0..<96, which the block hash covers together with the payload.
    func hashedPrefix() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(BlockHeader.size)
        bytes.append(contentsOf: BlockHeader.magic)
        bytes.appendLittleEndian(BlockHeader.formatVersion)
        bytes.append(codec)
        bytes.append(isCommit ? BlockHeader.commitFlag : 0)
        bytes.appendLittleEndian(firstOffset)
        bytes.appendLittleEndian(count)
        bytes.appendLittleEndian(storedLength)
        bytes.appendLittleEndian(rawLength)
        bytes.appendLittleEndian(UInt32(0))
        bytes.appendLittleEndian(minTime)
        bytes.appendLittleEndian(maxTime)
        bytes.appendLittleEndian(minRecorded)
        bytes.appendLittleEndian(maxRecorded)
        bytes.append(contentsOf: previousHash.bytes)
        return bytes
    }

    /// Builds the header for `storedPayload`, computing the block hash and the header check.
    static func sealed(
        isCommit: Bool, firstOffset: UInt64, count: UInt32, storedPayload: [UInt8], rawLength: Int,
        minTime: Int64, maxTime: Int64, recorded: Int64, previousHash: BlockHash
    ) -> (header: BlockHeader, bytes: [UInt8]) {
        var header = BlockHeader(
            isCommit: isCommit, firstOffset: firstOffset, count: count, storedLength: UInt32(storedPayload.count),
            rawLength: UInt32(rawLength), minTime: minTime, maxTime: maxTime, minRecorded: recorded,
            maxRecorded: recorded, previousHash: previousHash, hash: .zero)
        var bytes = header.hashedPrefix()
        header.hash = BlockHash(bytes: Digest.sha256(bytes[...], storedPayload[...]))
        bytes.append(contentsOf: header.hash.bytes)
        bytes.append(contentsOf: Digest.sha256(bytes[...]).prefix(8))
        return (header, bytes)
    }

    /// Why a header's bytes were refused.
    public enum Defect: Error, Hashable, Sendable, CustomStringConvertible {
        case truncated(available: Int)
        case badMagic
        case badHeaderCheck
        case unsupportedVersion(UInt16)
        case unknownCodec(UInt8)
        case implausible(String)

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
        guard version == formatVersion else { return .failure(.unsupportedVersion(version)) }
        let codec = b[b.startIndex + 6]
        guard codec == codecLZ4 else { return .failure(.unknownCodec(codec)) }
        // The block hash is computed over the header as it is re-encoded, so bits this version does not know must be 0.
        guard b[b.startIndex + 7] & ~commitFlag == 0 else { return .failure(.implausible("unknown flags \(b[b.startIndex + 7])")) }
        guard b[(b.startIndex + 28)..<(b.startIndex + 32)].allSatisfy({ $0 == 0 }) else {
            return .failure(.implausible("reserved bytes are not zero"))
        }
        let header = BlockHeader(
            codec: codec,
            isCommit: b[b.startIndex + 7] & commitFlag != 0,
            firstOffset: b.littleEndian(at: 8),
            count: b.littleEndian(at: 16),
            storedLength: b.littleEndian(at: 20),
            rawLength: b.littleEndian(at: 24),
            minTime: b.littleEndian(at: 32),
            maxTime: b.littleEndian(at: 40),
            minRecorded: b.littleEndian(at: 48),
            maxRecorded: b.littleEndian(at: 56),
            previousHash: BlockHash(bytes: Array(b[(b.startIndex + 64)..<(b.startIndex + 96)])),
            hash: BlockHash(bytes: Array(b[(b.startIndex + 96)..<(b.startIndex + 128)])))
        if header.count == 0 { return .failure(.implausible("zero records")) }
        if Int(header.rawLength) > maxPayloadLength { return .failure(.implausible("payload of \(header.rawLength) bytes")) }
        if header.minTime > header.maxTime { return .failure(.implausible("min time after max time")) }
        if header.minRecorded > header.maxRecorded { return .failure(.implausible("min recorded after max recorded")) }
        return .success(header)
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
/// | 4..<6 | format version (1) |
/// | 6..<8 | reserved, zero |
/// | 8..<16 | offset of the file's first record (also its name) |
/// | 16..<24 | reserved, zero |
/// | 24..<32 | header check: the first 8 bytes of SHA-256 of bytes 0..<24 |
public struct LogFileHeader: Hashable, Sendable {
    public static let size = 32
    public static let magic: [UInt8] = Array("TLOG".utf8)
    public var firstOffset: UInt64

    func encoded() -> [UInt8] {
        var bytes = LogFileHeader.magic
        bytes.appendLittleEndian(BlockHeader.formatVersion)
        bytes.appendLittleEndian(UInt16(0))
        bytes.appendLittleEndian(firstOffset)
        bytes.appendLittleEndian(UInt64(0))
        bytes.append(contentsOf: Digest.sha256(bytes[...]).prefix(8))
        return bytes
    }

    static func parse(_ bytes: [UInt8]) -> LogFileHeader? {
        guard bytes.count >= size, bytes.prefix(4).elementsEqual(magic),
            bytes[24..<32].elementsEqual(Digest.sha256(bytes[0..<24]).prefix(8)),
            bytes.littleEndian(at: 4, as: UInt16.self) == BlockHeader.formatVersion,
            bytes[6..<8].allSatisfy({ $0 == 0 }), bytes[16..<24].allSatisfy({ $0 == 0 })
        else { return nil }
        return LogFileHeader(firstOffset: bytes.littleEndian(at: 8))
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
