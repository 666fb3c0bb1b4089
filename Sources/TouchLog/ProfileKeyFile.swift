import Synchronization
import TouchLogStorage

/// The key file of a format-3 store (`STORE/keys/profiles.tlk`): the one-time pads its profile identifiers are
/// sealed with in the log (see ``ProfileSealing``). Erasing a profile overwrites its pad with zeros; without the
/// pad, the bytes in the log can never be turned back into the identifier, and the log itself is never changed.
///
/// Layout (all integers little-endian): a 32-byte file header — `TLKY`, version 1 (2 bytes), 18 zero bytes, the
/// first 8 bytes of SHA-256 of bytes 0..<24 — then one record per block that introduced profiles, in log order: a
/// 40-byte record header — `TLKR`; the id of the first profile (4 bytes); how many (4 bytes, at least 1); the pad
/// bytes that follow (4 bytes: the sum of the profiles' lengths); the *binding*, the XXH3-64 of the block's raw
/// new-profiles section (8 bytes); the XXH3-64 of record header bytes 0..<24 (8 bytes); the *pad check*, the
/// XXH3-64 of the pad bytes as they are now, erased pads zero (8 bytes, the one field an erasure rewrites, so it is
/// outside the header's own check) — then the pads, one per profile, in id order, each as long as its identifier.
///
/// Records are written before the commit that uses them (and synced with it, before its commit block); a record
/// past the log's last commit is left by a commit that never happened, and the writer removes it. An erasure is
/// first committed to the log; then its pads are zeroed and their records' checks rewritten, and synced. A crash
/// in between leaves the log saying "erased" and the writer finishes the zeroing when it next opens the store.
final class ProfileKeyFile: Sendable {
    static let fileHeaderSize = 32
    static let recordHeaderSize = 40
    static let fileMagic = Array("TLKY".utf8)
    static let recordMagic = Array("TLKR".utf8)

    let path: String
    let writable: Bool
    private let state: Mutex<State>

    /// Where each record lies, and what its header says.
    struct Record: Sendable {
        var position: Int64
        var firstProfile: Int
        var count: Int
        var padBytes: Int
        var binding: UInt64
        var padCheck: UInt64
        var profiles: Range<Int> { firstProfile..<(firstProfile + count) }
        var end: Int64 { position + Int64(ProfileKeyFile.recordHeaderSize + padBytes) }
    }

    private struct State: ~Copyable {
        var file: SystemFile?
        var records: [Record] = []
        var end = Int64(ProfileKeyFile.fileHeaderSize)
        /// Bytes after the last whole record (a record being written, or cut short by a crash).
        var tornTail: Int64 = 0
        /// Where a damaged record lies that later whole records follow (so it is not a torn tail), if one does.
        var damagedAt: Int64?
        /// Written to since the last sync.
        var dirty = false
    }

    /// Opens the key file at `path`. A writer creates it when missing and cuts a torn last record; a reader of a
    /// store without one sees no keys.
    init(path: String, writable: Bool) throws(TouchLogError) {
        self.path = path
        self.writable = writable
        var state = State()
        do {
            if !SystemFile.exists(path) {
                if writable { try Self.create(path) }
            }
            if SystemFile.exists(path) {
                let file = try SystemFile.open(path, writable ? .readWrite : .readOnly)
                state.file = file
                let size = try file.size()
                let header = try file.read(at: 0, count: Self.fileHeaderSize)
                guard header.count == Self.fileHeaderSize, header.prefix(4).elementsEqual(Self.fileMagic),
                    header[4] == 1, header[5] == 0,
                    header[24..<32].elementsEqual(Self.headerCheck(header[0..<24]))
                else {
                    file.close()
                    throw TouchLogError(
                        code: .corrupt, message: "\(path): not a touchlog key file, or its header is damaged")
                }
                try Self.scan(&state, size: size)
                if writable, let damaged = state.damagedAt {
                    file.close()
                    throw TouchLogError(
                        code: .corrupt,
                        message: "\(path): damaged record at byte \(damaged), with whole records after it; "
                            + "run `touchlog verify` for a full report")
                }
                if writable && state.tornTail > 0 {
                    let position = state.end
                    try file.truncate(to: position)
                    try file.sync()
                    state.tornTail = 0
                }
            }
        } catch let error as TouchLogError {
            throw error
        } catch {
            throw TouchLogError(code: .io, message: "cannot open the key file \(path): \(error)")
        }
        self.state = Mutex(state)
    }

    deinit {
        state.withLock { $0.file?.close() }
    }

    /// Reads the record headers from `state.end` to `size`, up to the first that is not whole and valid; notes
    /// whether a whole record follows that one (damage, not a torn tail left by an unfinished append).
    private static func scan(_ state: inout State, size: Int64) throws(SystemCallError) {
        var position = state.end
        while position < size {
            guard let record = try readRecordHeader(state.file!, at: position), record.end <= size,
                record.firstProfile == (state.records.last.map { $0.profiles.upperBound } ?? 0)
            else { break }
            state.records.append(record)
            position = record.end
        }
        state.end = position
        state.tornTail = size - position
        state.damagedAt = nil
        if state.tornTail > Int64(recordHeaderSize) {
            // Look for a whole record header after the bad one (only an append in progress or a crash leaves a tail).
            let rest = try state.file!.read(at: position + 1, count: Int(size - position - 1))
            var k = 0
            while k + recordHeaderSize <= rest.count {
                if rest[k] == recordMagic[0] && isRecordHeader(rest[k..<(k + recordHeaderSize)]) {
                    state.damagedAt = position
                    break
                }
                k += 1
            }
        }
    }

    /// A reader's look for records the writer appended since it opened (or since the last look).
    private func refresh(_ state: inout State) throws(SystemCallError) {
        if state.file == nil {
            guard SystemFile.exists(path) else { return }
            state.file = try SystemFile.open(path, .readOnly)
        }
        try Self.scan(&state, size: try state.file!.size())
    }

    private static func create(_ path: String) throws(SystemCallError) {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        try SystemFile.makeDirectory(directory)
        var header = fileMagic + [1, 0] + [UInt8](repeating: 0, count: 18)
        header += headerCheck(header[...])
        let temporary = path + ".new"
        let file = try SystemFile.open(temporary, .createReadWrite)
        defer { file.close() }
        try file.truncate(to: 0)
        try file.write(header, at: 0)
        try file.sync()
        try SystemFile.rename(temporary, path)
        try SystemFile.syncDirectory(directory)
    }

    /// Whether `bytes` (a record header's worth) begin with the record magic and carry their own check.
    private static func isRecordHeader(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.count == recordHeaderSize && bytes.prefix(4).elementsEqual(recordMagic)
            && bytes.littleEndian(at: 24, as: UInt64.self) == XXH3.hash(bytes.prefix(24))
    }

    private static func readRecordHeader(_ file: SystemFile, at position: Int64) throws(SystemCallError) -> Record? {
        let bytes = try file.read(at: position, count: recordHeaderSize)
        guard isRecordHeader(bytes[...]) else { return nil }
        let count = Int(bytes.littleEndian(at: 8, as: UInt32.self))
        guard count > 0 else { return nil }
        return Record(
            position: position, firstProfile: Int(bytes.littleEndian(at: 4, as: UInt32.self)), count: count,
            padBytes: Int(bytes.littleEndian(at: 12, as: UInt32.self)), binding: bytes.littleEndian(at: 16),
            padCheck: bytes.littleEndian(at: 32))
    }

    private static func recordHeader(_ record: Record) -> [UInt8] {
        var bytes = recordMagic
        bytes.appendLittleEndian(UInt32(record.firstProfile))
        bytes.appendLittleEndian(UInt32(record.count))
        bytes.appendLittleEndian(UInt32(record.padBytes))
        bytes.appendLittleEndian(record.binding)
        bytes.appendLittleEndian(XXH3.hash(bytes[...]))
        bytes.appendLittleEndian(record.padCheck)
        return bytes
    }

    /// The file header's check: the first 8 bytes of the SHA-256 of its first 24 bytes.
    private static func headerCheck(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        Array(BlockHash.sha256(of: Array(bytes)).bytes.prefix(8))
    }

    /// The records, in order.
    var records: [Record] { state.withLock { $0.records } }

    /// Bytes after the last whole record, which a writer will remove.
    var tornTail: Int64 { state.withLock { $0.tornTail } }

    /// Where a damaged record lies that whole records follow, if one does.
    var damagedAt: Int64? { state.withLock { $0.damagedAt } }

    /// The record of the block that introduced profiles from `firstProfile` on, and its pads.
    func pads(from firstProfile: Int) throws(TouchLogError) -> (record: Record, pads: [UInt8])? {
        try state.withLock { state throws(TouchLogError) -> (record: Record, pads: [UInt8])? in
            do {
                if !writable && Self.index(of: firstProfile, in: state.records) == nil { try refresh(&state) }
                guard let k = Self.index(of: firstProfile, in: state.records), let file = state.file else { return nil }
                let record = state.records[k]
                let pads = try file.read(at: record.position + Int64(Self.recordHeaderSize), count: record.padBytes)
                guard pads.count == record.padBytes else {
                    throw TouchLogError(code: .corrupt, message: "\(path): a record cut short")
                }
                return (record, pads)
            } catch let error as TouchLogError {
                throw error
            } catch {
                throw TouchLogError(code: .io, message: "cannot read \(path): \(error)")
            }
        }
    }

    /// Opens the raw sealed new-profiles section of the block `summary` describes with its record's pads (checking
    /// that the record is this block's), erased profiles left empty (see ``ProfileSealing/open(_:count:firstProfile:pads:erased:)``);
    /// returns the record, its pads and where each profile's lies, for what `verify` checks of them (nil record:
    /// the block introduces no profile).
    func open(_ raw: inout [UInt8], _ summary: BlockSummary, erased: Set<Int>) throws(DecodeError)
        -> (record: Record?, pads: [UInt8], ranges: [Range<Int>])
    {
        guard summary.newProfiles > 0 else { return (nil, [], []) }
        let (record, pads) = try pads(of: raw, summary)
        let (opened, ranges) = try raw.withDecodedBytes { section throws(DecodeError) in
            try ProfileSealing.open(
                section, count: summary.newProfiles, firstProfile: Int(summary.firstNewProfile), pads: pads
            ) { erased.contains($0) }
        }
        raw = opened
        return (record, pads, ranges)
    }

    /// Appends to `strings` the identifiers of profiles `wanted` (ascending, all introduced by the block `summary`
    /// describes) read from its raw sealed section with its record's pads, without opening the others; an erased
    /// one is empty.
    func copy(
        _ raw: [UInt8], _ summary: BlockSummary, wanted: ArraySlice<Int>, erased: Set<Int>,
        into strings: inout StringTable
    ) throws(DecodeError) {
        guard !wanted.isEmpty else { return }
        let (_, pads) = try pads(of: raw, summary)
        try raw.withDecodedBytes { section throws(DecodeError) in
            try ProfileSealing.copy(
                section, firstProfile: Int(summary.firstNewProfile), pads: pads, wanted: wanted, erased: erased,
                into: &strings)
        }
    }

    /// The record and pads of the block `summary` describes, whose raw sealed section is `raw`, checked to be bound to
    /// that section.
    private func pads(of raw: [UInt8], _ summary: BlockSummary) throws(DecodeError) -> (record: Record, pads: [UInt8]) {
        let first = Int(summary.firstNewProfile)
        let profiles = first..<(first + summary.newProfiles)
        let found: (record: Record, pads: [UInt8])?
        do { found = try pads(from: first) } catch { throw DecodeError(byte: 0, reason: error.message) }
        guard let (record, pads) = found, record.count == summary.newProfiles else {
            throw DecodeError(
                byte: 0,
                reason:
                    "no key for the profiles it introduces (ids \(profiles)): the key file \(path) is missing or damaged"
            )
        }
        guard record.binding == XXH3.hash(raw[...]) else {
            throw DecodeError(
                byte: 0,
                reason:
                    "the key file's record for profiles \(profiles) belongs to other sealed bytes (\(path) is not this "
                    + "store's key file, or it is damaged)")
        }
        return (record, pads)
    }

    private static func index(of firstProfile: Int, in records: [Record]) -> Int? {
        var low = 0
        var high = records.count
        while low < high {
            let mid = (low + high) / 2
            if records[mid].firstProfile < firstProfile { low = mid + 1 } else { high = mid }
        }
        return low < records.count && records[low].firstProfile == firstProfile ? low : nil
    }

    /// Appends the pads of the profiles one block introduces (ids from `firstProfile` on, `count` of them, the pads
    /// back to back), bound to the block's sealed section by `binding`. Not synced: see ``sync()``.
    func append(firstProfile: Int, count: Int, binding: UInt64, pads: [UInt8]) throws(TouchLogError) {
        precondition(writable && count > 0, "a writer appends records of at least one profile")
        try state.withLock { state throws(TouchLogError) in
            // Records of a commit that did not happen (when removing them failed then) go now.
            if state.records.last.map({ $0.profiles.upperBound > firstProfile }) == true {
                try cut(&state, profiles: firstProfile, syncing: false)
            }
            guard firstProfile == (state.records.last?.profiles.upperBound ?? 0) else {
                throw TouchLogError(
                    code: .corrupt,
                    message: "\(path): keys for profiles from \(firstProfile) cannot follow the records it holds")
            }
            let record = Record(
                position: state.end, firstProfile: firstProfile, count: count, padBytes: pads.count, binding: binding,
                padCheck: XXH3.hash(pads[...]))
            do { try state.file!.write(Self.recordHeader(record) + pads, at: record.position) } catch {
                throw TouchLogError(code: .io, message: "cannot write the key file \(path): \(error)")
            }
            state.records.append(record)
            state.end = record.end
            state.dirty = true
        }
    }

    /// Makes what was appended or erased durable (nothing to do when nothing was: most commits introduce no profile).
    func sync() throws(TouchLogError) {
        try state.withLock { state throws(TouchLogError) in
            guard state.dirty else { return }
            do { try state.file?.sync() } catch {
                throw TouchLogError(code: .io, message: "cannot sync the key file \(path): \(error)")
            }
            state.dirty = false
        }
    }

    /// Removes the records of profiles `count` and later (a commit that did not happen, or that the log lost).
    func truncate(profiles count: Int) throws(TouchLogError) {
        try state.withLock { state throws(TouchLogError) in try cut(&state, profiles: count, syncing: true) }
    }

    /// Removes the records of profiles `count` and later from the file (synced when `syncing`) and the index.
    private func cut(_ state: inout State, profiles count: Int, syncing: Bool) throws(TouchLogError) {
        guard let k = state.records.firstIndex(where: { $0.profiles.upperBound > count }) else { return }
        guard state.records[k].firstProfile == count else {
            throw TouchLogError(
                code: .corrupt,
                message: "\(path): the log ends inside the key record of profiles \(state.records[k].profiles)")
        }
        state.end = state.records[k].position
        state.records.removeSubrange(k...)
        do {
            try state.file!.truncate(to: state.end)
            if syncing { try state.file!.sync() }
        } catch {
            throw TouchLogError(code: .io, message: "cannot cut the key file \(path): \(error)")
        }
    }

    /// Overwrites with zeros the pads at byte ranges `ranges` (within the pads) of the record of profiles from
    /// `firstProfile` on, and rewrites its pad check (the check of the pads as they then are). Not synced: see ``sync()``.
    func zero(_ ranges: [Range<Int>], inRecordFrom firstProfile: Int) throws(TouchLogError) {
        try state.withLock { state throws(TouchLogError) in
            guard let k = Self.index(of: firstProfile, in: state.records), let file = state.file else {
                throw TouchLogError(code: .corrupt, message: "\(path): no key record for profiles from \(firstProfile)")
            }
            var record = state.records[k]
            let padStart = record.position + Int64(Self.recordHeaderSize)
            do {
                var pads = try file.read(at: padStart, count: record.padBytes)
                for range in ranges {
                    precondition(range.upperBound <= pads.count, "a pad inside its record")
                    for i in range { pads[i] = 0 }
                    try file.write([UInt8](repeating: 0, count: range.count), at: padStart + Int64(range.lowerBound))
                }
                record.padCheck = XXH3.hash(pads[...])
                var check: [UInt8] = []
                check.appendLittleEndian(record.padCheck)
                try file.write(check, at: record.position + 32)
                state.dirty = true
            } catch {
                throw TouchLogError(code: .io, message: "cannot erase keys in \(path): \(error)")
            }
            state.records[k] = record
        }
    }
}
