import Dispatch
import Synchronization

/// One `.tlog` file of a log directory.
public struct LogFile: Hashable, Sendable {
    /// The file name, such as `00000000000000000000.tlog`.
    public var name: String
    /// The offset of its first record, as its name says.
    public var firstOffset: UInt64

    /// The damage a file of format `version` is among files of format `known` (every file of a log has one format),
    /// or nil when they agree or either is unknown.
    static func versionMismatch(_ version: UInt16?, among known: UInt16?, file: String) -> StorageError? {
        guard let version, let known, version != known else { return nil }
        return StorageError(
            code: .corrupt, message: "a log file of format \(version) among files of format \(known)",
            location: .init(file: file))
    }

    /// The log files in `directory`, ordered by first offset. Other names are ignored.
    static func list(in directory: String) throws(SystemCallError) -> [LogFile] {
        try SystemFile.list(directory)
            .compactMap { name in LogFileHeader.firstOffset(fileName: name).map { LogFile(name: name, firstOffset: $0) }
            }
            .sorted { $0.firstOffset < $1.firstOffset }
    }
}

/// Where a block lives and what its header says.
public struct BlockLocation: Hashable, Sendable {
    /// Index of the file in the log's file list.
    public var fileIndex: Int
    /// Index of the block inside its file.
    public var blockIndex: Int
    /// Byte position of the block header inside its file.
    public var position: Int64
    /// The block's header.
    public var header: BlockHeader

    /// Bytes the block takes in its file, header included.
    public var length: Int64 { Int64(BlockHeader.size) + Int64(header.storedLength) }
}

/// The result of walking one log file's blocks.
struct FileScan {
    /// Blocks up to and including the last commit block, in order.
    var committed: [BlockLocation] = []
    /// Byte position just after the last commit block (the file header's end when there is none).
    var committedEnd: Int64 = Int64(LogFileHeader.size)
    /// Valid blocks after the last commit block (an unfinished commit).
    var uncommitted: [BlockLocation] = []
    var uncommittedBlocks: Int { uncommitted.count }
    /// Where the walk stopped before the end of the file, and why; nil when it reached the end cleanly.
    var stop: (position: Int64, blockIndex: Int, reason: String)?
    /// The file's size when scanned.
    var size: Int64 = 0
    /// The format version its header names (nil when the header was bad or the walk resumed past it).
    var version: UInt16?
    /// True when bytes past `committedEnd` hold a later valid commit block: the stop is damage, not a torn tail.
    var committedDataAfterStop = false
    /// True when the stop cannot come from a torn write: a bad file header (files are created whole, by rename),
    /// or a valid block header that breaks the offsets or the hash chain.
    var stopIsDamage = false

    /// True when the bytes where the walk stopped must be reported as damage rather than cut as a torn tail.
    var isDamaged: Bool { stop != nil && (stopIsDamage || committedDataAfterStop) }
}

/// Walks the blocks of a log file, checking headers, the hash chain and offsets (and payloads on request).
struct LogFileScanner {
    let directory: String
    let file: LogFile
    let fileIndex: Int
    /// Check every payload against its block hash (recovery of the active file, `verify`).
    var checkPayloads: Bool
    /// Without `checkPayloads`, still check the payload of the last commit block, and if it does not match its hash,
    /// walk the file again checking every payload. A reader of the active file needs this: a commit block whose
    /// header is on disk but whose payload is not (yet, or ever: a torn write) does not commit anything.
    var checkLastCommit = false
    /// Continue a walk from this known-good point instead of the file start.
    var resume: (position: Int64, blockIndex: Int, nextOffset: UInt64, previousHash: BlockHash)?
    /// With `resume`: the format version of the file (its blocks must have it).
    var resumeVersion: UInt16?

    var path: String { directory + "/" + file.name }

    /// Walks the file. `expectedOffset` and `previousHash` are those the chain requires of the file's first block.
    ///
    /// With `checkPayloads`, the headers are walked first and then every payload is checked on all cores; only when
    /// one does not match its hash is the file walked again one block after the other, which stops at the first such
    /// block (and so tells damage from a torn tail exactly as before). A writer opening a 64 MiB active file spent
    /// most of its open hashing it on one core.
    func scan(expectedOffset: UInt64, previousHash: BlockHash) throws(StorageError) -> FileScan {
        guard checkPayloads else { return try walk(expectedOffset: expectedOffset, previousHash: previousHash) }
        var headers = self
        headers.checkPayloads = false
        headers.checkLastCommit = false
        let quick = try headers.walk(expectedOffset: expectedOffset, previousHash: previousHash)
        if try allPayloadsMatch(quick.committed + quick.uncommitted) { return quick }
        return try walk(expectedOffset: expectedOffset, previousHash: previousHash)
    }

    /// True when the payload of every one of `blocks` (all in this file) matches its hash, checked on as many threads
    /// as there are cores, interleaved so that they read the file front to back together.
    private func allPayloadsMatch(_ blocks: [BlockLocation]) throws(StorageError) -> Bool {
        guard !blocks.isEmpty else { return true }
        let handle: SystemFile
        do { handle = try SystemFile.open(path, .readOnly) } catch {
            throw StorageError(
                code: .io, message: "cannot open log file", location: .init(file: file.name), cause: error)
        }
        defer { handle.close() }
        let workers = max(1, min(Platform.processorCount, blocks.count))
        let outcome = Mutex<(mismatch: Bool, failure: SystemCallError?)>((false, nil))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var payload: [UInt8] = []
            for k in stride(from: worker, to: blocks.count, by: workers) {
                let block = blocks[k]
                let count = Int(block.header.storedLength)
                payload.resize(to: count, filler: 0)
                do throws(SystemCallError) {
                    let got = try handle.read(at: block.position + Int64(BlockHeader.size), into: &payload)
                    if got == count && block.header.matches(storedPayload: payload[...]) { continue }
                    outcome.withLock { $0.mismatch = true }
                } catch {
                    outcome.withLock { $0.failure = $0.failure ?? error }
                }
                return
            }
        }
        let (mismatch, failure) = outcome.withLock { $0 }
        if let failure {
            throw StorageError(
                code: .io, message: "cannot read log file", location: .init(file: file.name), cause: failure)
        }
        return !mismatch
    }

    /// ``scan(expectedOffset:previousHash:)`` one block after the other, each payload checked as it is reached when
    /// `checkPayloads`.
    private func walk(expectedOffset: UInt64, previousHash: BlockHash) throws(StorageError) -> FileScan {
        let handle: SystemFile
        do { handle = try SystemFile.open(path, .readOnly) } catch {
            throw StorageError(
                code: .io, message: "cannot open log file", location: .init(file: file.name), cause: error)
        }
        defer { handle.close() }
        var result = FileScan()
        do {
            result.size = try handle.size()
            var position = Int64(LogFileHeader.size)
            var blockIndex = 0
            var nextOffset = expectedOffset
            var previous = previousHash
            if let resume {
                (position, blockIndex, nextOffset, previous) = resume
                result.committedEnd = position
                result.version = resumeVersion
            } else {
                let headerBytes = try handle.read(at: 0, count: LogFileHeader.size)
                guard let fileHeader = LogFileHeader.parse(headerBytes) else {
                    result.stop = (
                        0, 0, headerBytes.count < LogFileHeader.size ? "file header cut short" : "bad file header"
                    )
                    result.committedEnd = 0
                    result.stopIsDamage = true
                    return result
                }
                guard fileHeader.firstOffset == file.firstOffset, file.firstOffset == expectedOffset else {
                    result.stop = (
                        0, 0, "file header names first offset \(fileHeader.firstOffset), expected \(expectedOffset)"
                    )
                    result.committedEnd = 0
                    result.stopIsDamage = true
                    return result
                }
                result.version = fileHeader.version
            }
            var pending: [BlockLocation] = []
            while position < result.size {
                let headerBytes = try handle.read(at: position, count: BlockHeader.size)
                let parsed = BlockHeader.parse(headerBytes[...])
                guard case .success(let header) = parsed else {
                    if case .failure(let defect) = parsed { result.stop = (position, blockIndex, defect.description) }
                    break
                }
                let end = position + Int64(BlockHeader.size) + Int64(header.storedLength)
                if end > result.size {
                    result.stop = (
                        position, blockIndex,
                        "block cut short: needs \(end - position) bytes, file has \(result.size - position)"
                    )
                    break
                }
                if let version = result.version, header.version != version {
                    result.stop = (
                        position, blockIndex, "a block of format \(header.version) in a log file of format \(version)"
                    )
                    result.stopIsDamage = true
                    break
                }
                if header.firstOffset != nextOffset {
                    result.stop = (
                        position, blockIndex, "block starts at offset \(header.firstOffset), expected \(nextOffset)"
                    )
                    result.stopIsDamage = true
                    break
                }
                if header.previousHash != previous {
                    result.stop = (position, blockIndex, "hash chain broken: block does not follow the block before it")
                    result.stopIsDamage = true
                    break
                }
                if checkPayloads {
                    let payload = try handle.read(
                        at: position + Int64(BlockHeader.size), count: Int(header.storedLength))
                    if !header.matches(storedPayload: payload[...]) {
                        result.stop = (position, blockIndex, BlockFileReader.checksumMismatch)
                        break
                    }
                }
                pending.append(
                    BlockLocation(fileIndex: fileIndex, blockIndex: blockIndex, position: position, header: header))
                position = end
                blockIndex += 1
                nextOffset = header.endOffset
                previous = header.hash
                if header.isCommit {
                    result.committed.append(contentsOf: pending)
                    pending.removeAll()
                    result.committedEnd = position
                }
            }
            result.uncommitted = pending
            if checkLastCommit && !checkPayloads, let last = result.committed.last,
                !last.header.matches(
                    storedPayload: try handle.read(
                        at: last.position + Int64(BlockHeader.size), count: Int(last.header.storedLength))[...])
            {
                var careful = self
                careful.checkPayloads = true
                return try careful.walk(expectedOffset: expectedOffset, previousHash: previousHash)
            }
            if let stop = result.stop {
                result.committedDataAfterStop = try Self.findsCommitBlock(
                    in: handle, after: stop.position, size: result.size)
            }
        } catch {
            throw StorageError(
                code: .io, message: "cannot read log file", location: .init(file: file.name), cause: error)
        }
        return result
    }

    /// Searches `handle` past `position` for any valid header of a commit block.
    ///
    /// After a torn write nothing valid can follow (commits are written strictly in order, each after the
    /// previous one was synced), so a later commit block means the bytes at the stop are damage.
    static func findsCommitBlock(in handle: SystemFile, after position: Int64, size: Int64) throws(SystemCallError)
        -> Bool
    {
        try nextHeader(in: handle, after: position, size: size, where: { $0.isCommit }) != nil
    }

    /// The first position past `position` where a valid block header satisfying `predicate` starts.
    static func nextHeader(
        in handle: SystemFile, after position: Int64, size: Int64, where predicate: (BlockHeader) -> Bool
    ) throws(SystemCallError) -> (position: Int64, header: BlockHeader)? {
        let chunk = 4 << 20
        var start = position + 1
        while start + Int64(BlockHeader.size) <= size {
            let bytes = try handle.read(at: start, count: min(chunk + BlockHeader.size, Int(size - start)))
            let limit = min(chunk, bytes.count - BlockHeader.size + 1)
            var i = 0
            while i < limit {
                if bytes[i] == BlockHeader.magic[0], bytes[i + 1] == BlockHeader.magic[1],
                    bytes[i + 2] == BlockHeader.magic[2], bytes[i + 3] == BlockHeader.magic[3],
                    case .success(let header) = BlockHeader.parse(bytes[i...]), predicate(header)
                {
                    return (start + Int64(i), header)
                }
                i += 1
            }
            start += Int64(chunk)
        }
        return nil
    }
}
