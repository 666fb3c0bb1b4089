/// Reads the committed prefix of a log, in this process or another, while a writer may be appending.
///
/// Opening walks every block header (checking each header, the offsets and the hash chain) to build an
/// in-memory index; ``read(_:)`` checks each payload against its block hash before decompressing it.
/// Blocks past the last commit (a commit being written, or a torn write that the writer will remove) are
/// never served. ``refresh()`` picks up commits made since.
///
/// Not thread-safe: give each task its own reader.
public final class LogReader {
    /// The log directory.
    public let directory: String
    /// The log files, ordered by first offset.
    public private(set) var files: [LogFile] = []
    /// Every committed block that holds records, in log order.
    public private(set) var blocks: [BlockLocation] = []
    /// The committed markers (format 3: commits of one block without records, only metadata, such as erasures), in
    /// log order. They are links of the hash chain like any block, but hold no records, so ``blocks`` leaves them out.
    public private(set) var markers: [BlockLocation] = []
    /// The last committed block, a marker or not.
    public private(set) var lastBlock: BlockLocation?
    /// The offset after the last committed record.
    public private(set) var endOffset: UInt64 = 0
    /// Bytes past the last commit of the last file, not served.
    public private(set) var uncommittedTailBytes: Int64 = 0
    /// The format version of the log's files (nil for a log without files yet).
    public private(set) var formatVersion: UInt16?

    private let blockFiles: BlockFileReader
    /// The blocks ``showPrefix(endingAt:)`` left out, given back by the next ``refresh()``.
    private var hidden: [BlockLocation] = []
    /// The last block's stored bytes (kept to reuse the buffer).
    private var stored: [UInt8] = []

    /// Opens the log in `directory` for reading.
    public init(directory: String) throws(StorageError) {
        self.directory = directory
        self.blockFiles = BlockFileReader(directory: directory, files: [])
        guard SystemFile.isDirectory(directory) else {
            throw StorageError(code: .notFound, message: "no log directory at \(directory)")
        }
        try refresh()
    }

    /// The chain head: the hash of the last committed block (which may be a marker).
    public var headHash: BlockHash { lastBlock?.header.hash ?? .zero }

    /// Shows only the blocks that end at or before offset `end`, as if the log's records ended there (an audit
    /// recomputes an answer the store gave then); ``markers``, ``lastBlock`` and ``headHash`` stay those of the whole
    /// log, and the next ``refresh()`` shows every block again. Returns false, changing nothing, when no committed
    /// block ends at `end` (0 always qualifies).
    public func showPrefix(endingAt end: UInt64) -> Bool {
        var keep = 0
        if end > 0 {
            guard let last = blockIndex(containing: end - 1), blocks[last].header.endOffset == end else { return false }
            keep = last + 1
        }
        hidden = Array(blocks[keep...]) + hidden
        blocks.removeSubrange(keep...)
        endOffset = end
        return true
    }

    /// Picks up commits made since the last refresh.
    public func refresh() throws(StorageError) {
        if !hidden.isEmpty {
            blocks += hidden
            hidden = []
        }
        // Commits go to the last file until the writer rolls over to a new one, named for the offset it starts at:
        // while no file of that name exists, the last file holds every new commit, and the directory is not listed.
        if !files.isEmpty {
            try scanFiles()
            if !SystemFile.exists(directory + "/" + LogFileHeader.fileName(firstOffset: endOffset)) { return }
        }
        let listed = try LogWriter.wrap("list the log directory", LogFile.list(in: directory))
        guard listed.starts(with: files) else {
            throw StorageError(code: .corrupt, message: "log files were removed or renamed while the log was open")
        }
        files = listed
        blockFiles.files = listed
        try scanFiles()
    }

    /// Reads the blocks committed to ``files`` since the last block read.
    private func scanFiles() throws(StorageError) {
        // Resume in the file of the last committed block, just after it; later files are walked whole.
        var index = lastBlock?.fileIndex ?? 0
        while index < files.count {
            let isLast = index == files.count - 1
            var scanner = LogFileScanner(
                directory: directory, file: files[index], fileIndex: index, checkPayloads: false)
            scanner.checkLastCommit = isLast
            let previous = lastBlock
            if let previous, previous.fileIndex == index {
                scanner.resume = (
                    previous.position + previous.length, previous.blockIndex + 1, previous.header.endOffset,
                    previous.header.hash
                )
                scanner.resumeVersion = previous.header.version
            }
            let scan = try scanner.scan(
                expectedOffset: previous?.header.endOffset ?? 0, previousHash: previous?.header.hash ?? .zero)
            let name = "log/" + files[index].name
            if let stop = scan.stop, !isLast || scan.isDamaged {
                throw StorageError(
                    code: .corrupt, message: stop.reason,
                    location: .init(file: name, block: stop.blockIndex, byte: stop.position))
            }
            if !isLast && scan.committedEnd != scan.size {
                throw StorageError(
                    code: .corrupt, message: "a sealed log file ends with an unfinished commit",
                    location: .init(file: name, byte: scan.committedEnd))
            }
            if let mismatch = LogFile.versionMismatch(scan.version, among: formatVersion, file: name) { throw mismatch }
            formatVersion = formatVersion ?? scan.version
            for block in scan.committed {
                if block.header.isMarker { markers.append(block) } else { blocks.append(block) }
            }
            lastBlock = scan.committed.last ?? lastBlock
            uncommittedTailBytes = max(0, scan.size - scan.committedEnd)
            index += 1
        }
        endOffset = lastBlock?.header.endOffset ?? 0
    }

    /// The index in ``blocks`` of the block holding `offset`, or nil when it is not committed.
    public func blockIndex(containing offset: UInt64) -> Int? {
        var low = 0
        var high = blocks.count
        while low < high {
            let mid = (low + high) / 2
            if blocks[mid].header.endOffset <= offset { low = mid + 1 } else { high = mid }
        }
        return low < blocks.count && blocks[low].header.firstOffset <= offset ? low : nil
    }

    /// Reads a block's payload, checks it against the block hash and returns it decompressed (format 2: the summary
    /// and the body, commit metadata included, as stored).
    public func read(_ block: BlockLocation) throws(StorageError) -> [UInt8] {
        var payload: [UInt8] = []
        try read(block, into: &payload)
        return payload
    }

    /// Reads a block's payload into `payload` (reusing its storage), checked against the block hash and decompressed.
    public func read(_ block: BlockLocation, into payload: inout [UInt8]) throws(StorageError) {
        try blockFiles.readPayload(block, stored: &stored, into: &payload, checkingHash: true)
    }

    /// Reads a format-2 block's summary (without commit metadata), checked against the header's summary check,
    /// without reading its body.
    public func summary(of block: BlockLocation) throws(StorageError) -> [UInt8] {
        var summary: [UInt8] = []
        try blockFiles.readSummary(block, into: &summary)
        return summary
    }

    /// Reads a format-2 block's summary into `summary` (reusing its storage); see ``summary(of:)``.
    public func readSummary(of block: BlockLocation, into summary: inout [UInt8]) throws(StorageError) {
        try blockFiles.readSummary(block, into: &summary)
    }

    /// The metadata a format-2 commit carries (on its commit block), or nil.
    public func metadata(of block: BlockLocation) throws(StorageError) -> [UInt8]? {
        guard block.header.hasMetadata else { return nil }
        var summary: [UInt8] = []
        return try blockFiles.readSummary(block, into: &summary)
    }

    /// Reads `count` bytes at `start` of a format-2 block's body into `bytes` (reusing its storage), *unchecked*:
    /// the caller checks them (touchlog's summaries carry a checksum of each section).
    public func readBody(of block: BlockLocation, at start: Int, count: Int, into bytes: inout [UInt8])
        throws(StorageError)
    {
        try blockFiles.readBody(block, at: start, count: count, into: &bytes)
    }

    /// The file, block and byte of `block`, for messages.
    public func location(of block: BlockLocation) -> StorageError.Location {
        blockFiles.location(of: block)
    }

    /// A reader of format-2 block bodies with file handles of its own, for another thread (a query reads blocks on
    /// every core).
    public func bodyReader() -> BlockBodyReader {
        BlockBodyReader(BlockFileReader(directory: directory, files: files))
    }
}

/// What reads parts of format-2 block bodies: a ``LogReader``, or a ``BlockBodyReader`` of its for another thread.
public protocol BlockBodyReading {
    /// Reads `count` bytes at `start` of a block's body into `bytes` (reusing its storage), unchecked.
    func readBody(of block: BlockLocation, at start: Int, count: Int, into bytes: inout [UInt8]) throws(StorageError)
    /// The file, block and byte of `block`, for messages.
    func location(of block: BlockLocation) -> StorageError.Location
}

extension LogReader: BlockBodyReading {}

/// Reads parts of format-2 block bodies (see ``LogReader/bodyReader()``). Use each from one thread at a time.
public final class BlockBodyReader: BlockBodyReading, @unchecked Sendable {
    // @unchecked: its file-handle cache is not synchronized; the documented contract is one thread at a time.
    private let files: BlockFileReader

    init(_ files: BlockFileReader) {
        self.files = files
    }

    /// Reads a format-2 block's summary into `summary`, checked, as ``LogReader/readSummary(of:into:)``.
    public func readSummary(of block: BlockLocation, into summary: inout [UInt8]) throws(StorageError) {
        try files.readSummary(block, into: &summary)
    }

    /// Reads `count` bytes at `start` of a block's body into `bytes`, unchecked, as ``LogReader/readBody(of:at:count:into:)``.
    public func readBody(of block: BlockLocation, at start: Int, count: Int, into bytes: inout [UInt8])
        throws(StorageError)
    {
        try files.readBody(block, at: start, count: count, into: &bytes)
    }

    /// The file, block and byte of `block`, for messages.
    public func location(of block: BlockLocation) -> StorageError.Location {
        files.location(of: block)
    }
}

/// Reads blocks' payload bytes from log files, keeping the files open.
final class BlockFileReader {
    let directory: String
    var files: [LogFile]
    private var handles: [Int: SystemFile] = [:]

    init(directory: String, files: [LogFile]) {
        self.directory = directory
        self.files = files
    }

    deinit {
        for handle in handles.values { handle.close() }
    }

    static let checksumMismatch = "block checksum mismatch"

    /// Reads the block's stored bytes into `stored`, checks them against the block hash when `checkingHash`, and
    /// decompresses them into `raw` (both buffers are reused; format 2: `raw` gets the stored bytes as they are).
    func readPayload(_ block: BlockLocation, stored: inout [UInt8], into raw: inout [UInt8], checkingHash: Bool)
        throws(StorageError)
    {
        let length = Int(block.header.storedLength)
        try readStored(block, at: 0, count: length, into: &stored)
        if checkingHash && !block.header.matches(storedPayload: stored[...]) {
            throw StorageError(code: .corrupt, message: Self.checksumMismatch, location: location(of: block))
        }
        if block.header.version >= 2 {
            swap(&raw, &stored)
            return
        }
        raw.resize(to: Int(block.header.rawLength), filler: 0)
        let ok = stored.withUnsafeBytes { source in raw.withUnsafeMutableBytes { LZ4.decompress(source, into: $0) } }
        guard ok else {
            throw StorageError(
                code: .corrupt,
                message: "block payload does not decompress to its stated \(block.header.rawLength) bytes",
                location: location(of: block))
        }
    }

    /// Reads `count` of the block's stored bytes from `start` (after its header) into `bytes`.
    private func readStored(_ block: BlockLocation, at start: Int, count: Int, into bytes: inout [UInt8])
        throws(StorageError)
    {
        let handle = try handle(for: block.fileIndex)
        bytes.resize(to: count, filler: 0)
        let got: Int
        do {
            got = try handle.read(at: block.position + Int64(BlockHeader.size + start), into: &bytes)
        } catch {
            throw StorageError(code: .io, message: "cannot read a block", location: location(of: block), cause: error)
        }
        guard got == count else {
            throw StorageError(
                code: .corrupt, message: "block cut short: the file ends inside it", location: location(of: block))
        }
    }

    /// Reads a format-2 block's summary into `summary`, checked against the header's summary check; returns the
    /// commit metadata in front of it, if any.
    @discardableResult
    func readSummary(_ block: BlockLocation, into summary: inout [UInt8]) throws(StorageError) -> [UInt8]? {
        precondition(block.header.version >= 2, "format-1 blocks have no summary")
        try readStored(block, at: 0, count: Int(block.header.summaryLength), into: &summary)
        guard block.header.matches(summary: summary[...]) else {
            throw StorageError(
                code: .corrupt, message: "block summary checksum mismatch", location: location(of: block))
        }
        guard block.header.hasMetadata else { return nil }
        guard let metadata = BlockHeader.metadataRange(inSummary: summary[...]) else {
            throw StorageError(
                code: .corrupt, message: "commit metadata runs past its summary", location: location(of: block))
        }
        let bytes = Array(summary[metadata])
        summary.removeSubrange(0..<metadata.upperBound)
        return bytes
    }

    /// Reads `count` bytes at `start` of a format-2 block's body.
    func readBody(_ block: BlockLocation, at start: Int, count: Int, into bytes: inout [UInt8]) throws(StorageError) {
        let summary = Int(block.header.summaryLength)
        guard start >= 0, count >= 0, start + count <= Int(block.header.storedLength) - summary else {
            throw StorageError(
                code: .corrupt, message: "a read of body bytes \(start)..<\(start + count) past the block's end",
                location: location(of: block))
        }
        try readStored(block, at: summary + start, count: count, into: &bytes)
    }

    func location(of block: BlockLocation) -> StorageError.Location {
        .init(file: "log/" + files[block.fileIndex].name, block: block.blockIndex, byte: block.position)
    }

    private func handle(for fileIndex: Int) throws(StorageError) -> SystemFile {
        if let handle = handles[fileIndex] { return handle }
        let name = files[fileIndex].name
        do {
            let handle = try SystemFile.open(directory + "/" + name, .readOnly)
            handles[fileIndex] = handle
            return handle
        } catch {
            throw StorageError(
                code: .io, message: "cannot open log file", location: .init(file: "log/" + name), cause: error)
        }
    }
}
