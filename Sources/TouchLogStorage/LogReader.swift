/// Reads the committed prefix of a log, in this process or another, while a writer may be appending.
///
/// Opening walks every block header (checking each header, the offsets and the hash chain) to build an
/// in-memory index; ``read(_:)`` checks each payload against its block hash before decompressing it.
/// Blocks past the last commit (a commit being written, or a torn write that the writer will remove) are
/// never served. ``refresh()`` picks up commits made since.
///
/// Not thread-safe: give each task its own reader.
public final class LogReader {
    public let directory: String
    /// The log files, ordered by first offset.
    public private(set) var files: [LogFile] = []
    /// Every committed block, in log order.
    public private(set) var blocks: [BlockLocation] = []
    /// The offset after the last committed record.
    public private(set) var endOffset: UInt64 = 0
    /// Bytes past the last commit of the last file, not served.
    public private(set) var uncommittedTailBytes: Int64 = 0

    private let blockFiles: BlockFileReader
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

    /// The chain head: the hash of the last committed block.
    public var headHash: BlockHash { blocks.last?.header.hash ?? .zero }

    /// Picks up commits made since the last refresh.
    public func refresh() throws(StorageError) {
        let listed = try LogWriter.wrap("list the log directory", LogFile.list(in: directory))
        guard listed.starts(with: files) else {
            throw StorageError(code: .corrupt, message: "log files were removed or renamed while the log was open")
        }
        files = listed
        blockFiles.files = listed
        // Resume in the file of the last committed block, just after it; later files are walked whole.
        var index = blocks.last?.fileIndex ?? 0
        while index < files.count {
            let isLast = index == files.count - 1
            var scanner = LogFileScanner(directory: directory, file: files[index], fileIndex: index, checkPayloads: false)
            scanner.checkLastCommit = isLast
            let previous = blocks.last
            if let previous, previous.fileIndex == index {
                scanner.resume = (previous.position + previous.length, previous.blockIndex + 1, previous.header.endOffset, previous.header.hash)
            }
            let scan = try scanner.scan(expectedOffset: previous?.header.endOffset ?? 0, previousHash: previous?.header.hash ?? .zero)
            let name = "log/" + files[index].name
            if let stop = scan.stop, !isLast || scan.isDamaged {
                throw StorageError(code: .corrupt, message: stop.reason, location: .init(file: name, block: stop.blockIndex, byte: stop.position))
            }
            if !isLast && scan.committedEnd != scan.size {
                throw StorageError(code: .corrupt, message: "a sealed log file ends with an unfinished commit",
                                   location: .init(file: name, byte: scan.committedEnd))
            }
            blocks.append(contentsOf: scan.committed)
            uncommittedTailBytes = max(0, scan.size - scan.committedEnd)
            index += 1
        }
        endOffset = blocks.last?.header.endOffset ?? 0
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

    /// Reads a block's payload, checks it against the block hash and returns it decompressed.
    public func read(_ block: BlockLocation) throws(StorageError) -> [UInt8] {
        var payload: [UInt8] = []
        try read(block, into: &payload)
        return payload
    }

    /// Reads a block's payload into `payload` (reusing its storage), checked against the block hash and decompressed.
    public func read(_ block: BlockLocation, into payload: inout [UInt8]) throws(StorageError) {
        try blockFiles.readPayload(block, stored: &stored, into: &payload, checkingHash: true)
    }

    /// The file, block and byte of `block`, for messages.
    public func location(of block: BlockLocation) -> StorageError.Location {
        blockFiles.location(of: block)
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
    /// decompresses them into `raw` (both buffers are reused).
    func readPayload(_ block: BlockLocation, stored: inout [UInt8], into raw: inout [UInt8], checkingHash: Bool) throws(StorageError) {
        let handle = try handle(for: block.fileIndex)
        let length = Int(block.header.storedLength)
        stored.resize(to: length, filler: 0)
        let got: Int
        do {
            got = try handle.read(at: block.position + Int64(BlockHeader.size), into: &stored)
        } catch {
            throw StorageError(code: .io, message: "cannot read a block", location: location(of: block), cause: error)
        }
        guard got == length else {
            throw StorageError(code: .corrupt, message: "block cut short: the file ends inside it", location: location(of: block))
        }
        if checkingHash && !block.header.matches(storedPayload: stored[...]) {
            throw StorageError(code: .corrupt, message: Self.checksumMismatch, location: location(of: block))
        }
        raw.resize(to: Int(block.header.rawLength), filler: 0)
        let ok = stored.withUnsafeBytes { source in raw.withUnsafeMutableBytes { LZ4.decompress(source, into: $0) } }
        guard ok else {
            throw StorageError(code: .corrupt, message: "block payload does not decompress to its stated \(block.header.rawLength) bytes",
                               location: location(of: block))
        }
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
            throw StorageError(code: .io, message: "cannot open log file", location: .init(file: "log/" + name), cause: error)
        }
    }
}
