/// Settings of a log writer.
public struct LogOptions: Sendable {
    /// A new file is started at the first commit that begins when the active file is at least this large.
    public var rollSize: Int64
    /// The source of recorded times, in milliseconds since the epoch (tests pass a fake clock).
    public var clock: @Sendable () -> Int64
    /// The format version of a log this writer creates; an existing log keeps the version it has.
    public var formatVersion: UInt16

    /// The format new logs get unless asked otherwise (format 1 logs are still read and appended to).
    public static let defaultFormatVersion: UInt16 = 3

    /// Options for a log: its roll size, clock and the format version of a new log.
    public init(
        rollSize: Int64 = 64 << 20, clock: @escaping @Sendable () -> Int64 = LogOptions.systemClock,
        formatVersion: UInt16 = LogOptions.defaultFormatVersion
    ) {
        self.rollSize = rollSize
        self.clock = clock
        self.formatVersion = formatVersion
    }

    /// The real-time clock in milliseconds since the epoch.
    public static let systemClock: @Sendable () -> Int64 = { Platform.nowMilliseconds() }
}

/// The contents of one block and what its header must say about them.
///
/// A format-1 block is an uncompressed payload that the writer compresses with LZ4; a format-2 block is a summary
/// and a body, stored as given (the layer above compresses what is worth compressing, section by section, so that
/// readers can read sections on their own).
public struct RawBlock: Sendable {
    /// Format 1: the uncompressed payload. Format 2: the body.
    public var payload: [UInt8] { didSet { compressed = nil } }
    /// Format 2: the summary (nil: a format-1 block).
    public var summary: [UInt8]?
    /// How many records (events) the block holds.
    public var count: Int
    /// The earliest event time in the block.
    public var minTime: Int64
    /// The latest event time in the block.
    public var maxTime: Int64
    /// The payload compressed by ``compress()`` ahead of ``LogWriter/add(_:)`` (which otherwise compresses it),
    /// so that callers can compress blocks on several threads.
    public private(set) var compressed: [UInt8]?

    /// A format-1 block: `payload` is compressed with LZ4 when written.
    public init(payload: [UInt8], count: Int, minTime: Int64, maxTime: Int64) {
        self.payload = payload
        self.count = count
        self.minTime = minTime
        self.maxTime = maxTime
    }

    /// A block of format 2 or later (`version`, by default the one new logs get): `summary` and `body` are stored as
    /// they are.
    public init(
        summary: [UInt8], body: [UInt8], count: Int, minTime: Int64, maxTime: Int64,
        version: UInt16 = LogOptions.defaultFormatVersion
    ) {
        precondition(version >= 2, "a block with a summary is of format 2 or later")
        self.payload = body
        self.summary = summary
        self.count = count
        self.minTime = minTime
        self.maxTime = maxTime
        self.version = version
    }

    /// The format version of the block.
    public private(set) var version: UInt16 = 1

    /// Compresses a format-1 payload now (a format-2 block needs nothing).
    public mutating func compress() {
        if compressed == nil && summary == nil { compressed = LZ4.compress(payload) }
    }

    /// The bytes that follow the block's header, with `metadata` (format 2, a commit block) in front of the summary.
    func stored(metadata: [UInt8]?) -> (bytes: [UInt8], summaryLength: Int) {
        guard let summary else { return (compressed ?? LZ4.compress(payload), 0) }
        var bytes: [UInt8] = []
        if let metadata {
            var n = UInt64(metadata.count)
            while n >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: n) | 0x80)
                n >>= 7
            }
            bytes.append(UInt8(n))
            bytes.append(contentsOf: metadata)
        }
        bytes.append(contentsOf: summary)
        let summaryLength = bytes.count
        bytes.append(contentsOf: payload)
        return (bytes, summaryLength)
    }
}

/// What opening a log removed: the bytes past its last commit, left by a write that never finished.
public struct RecoveryReport: Hashable, Sendable, CustomStringConvertible {
    /// The log file that was cut, relative to the log directory.
    public var file: String
    /// Where it was cut.
    public var position: Int64
    /// How many bytes were removed.
    public var bytesRemoved: Int64
    /// Whole, valid blocks of an unfinished commit that were removed.
    public var uncommittedBlocks: Int
    /// What the first removed bytes were.
    public var reason: String

    /// What was removed, where and why, in one sentence.
    public var description: String {
        var text =
            "recovered \(file): removed \(bytesRemoved) bytes after byte \(position) left by an unfinished commit"
        if uncommittedBlocks > 0 { text += " (\(uncommittedBlocks) uncommitted blocks)" }
        return text + " [\(reason)]"
    }
}

/// The one writer of a log directory: appends blocks in atomic, durable commits.
///
/// Opening takes an exclusive lock (a second writer gets ``StorageError/Code-swift.struct/locked``), checks the
/// log and removes a torn tail left by a crash (see ``recovery``), and refuses to open a log that is damaged
/// before its last commit.
///
/// A commit is any number of blocks written between ``beginTransaction(recorded:metadata:)`` and ``commit()``. Its last block carries
/// the commit flag and is written only after every earlier block of the commit was synced, so after a crash the log
/// holds each commit whole or not at all. ``commit()`` returns only once the commit is on stable storage.
/// After any failed write or sync the writer refuses further work (``StorageError/Code-swift.struct/writerFailed``):
/// reopen it to recover.
///
/// Not thread-safe: use it from one task or thread at a time (``GroupCommitWriter`` shares one among many tasks).
public final class LogWriter {
    /// The log directory.
    public let directory: String
    /// The options it was opened with.
    public let options: LogOptions
    /// What opening removed from the end of the log, if anything.
    public let recovery: RecoveryReport?
    /// The offset the next committed record will get; every offset below it is committed.
    public private(set) var endOffset: UInt64
    /// The hash of the last committed block (the chain head).
    public private(set) var headHash: BlockHash
    /// The recorded time of the last commit.
    public private(set) var lastRecorded: Int64
    /// The format version of the log's blocks: the version of its files, or ``LogOptions/formatVersion`` for a new log.
    public let formatVersion: UInt16
    /// How many times the writer has called fsync on a log file.
    public private(set) var syncCount = 0
    /// Called at the start of every commit that writes blocks, before any of them is synced: what the commit's blocks
    /// depend on outside the log (format 3: the pads of the profiles they introduce) is made durable here, so that it
    /// is on disk before the commit is. A failure stops the writer, as a failed sync of the log does.
    public var beforeCommit: (() throws -> Void)?

    private var lock: SystemFile?
    private var activeFile: SystemFile
    private var activeName: String
    private var activeSize: Int64
    private var failure: StorageError?
    private var transaction: Transaction?
    private let metrics = LogMetrics()

    private struct Transaction {
        var startPosition: Int64
        var startOffset: UInt64
        var recorded: Int64
        var position: Int64
        var writeOffset: UInt64
        var previousHash: BlockHash
        var assignOffset: UInt64
        var held: RawBlock?
        var written = 0
        var metadata: [UInt8]?
        var started = Platform.monotonicNanoseconds()
    }

    /// Opens (creating if needed) the log in `directory`, locking `lockPath` for this process.
    public init(directory: String, lockPath: String, options: LogOptions = LogOptions()) throws(StorageError) {
        self.directory = directory
        self.options = options
        let lock = try Self.acquireLock(lockPath)
        do {
            _ = try Self.wrap("create the log directory", SystemFile.makeDirectory(directory))
            for name in try Self.wrap("list the log directory", SystemFile.list(directory))
            where name.hasSuffix(".tlog.new") {
                // A file whose creation a crash interrupted: it was never renamed into the log.
                try Self.wrap("remove \(name)", SystemFile.remove(directory + "/" + name))
            }
            var files = try Self.wrap("list the log directory", LogFile.list(in: directory))
            if files.isEmpty {
                files = [try Self.createFile(directory: directory, firstOffset: 0, version: options.formatVersion)]
            }
            var version: UInt16?
            var expectedOffset: UInt64 = 0
            var previous = BlockHash.zero
            var lastRecorded: Int64 = .min
            var recovery: RecoveryReport?
            for (index, file) in files.enumerated() {
                let isLast = index == files.count - 1
                let scanner = LogFileScanner(directory: directory, file: file, fileIndex: index, checkPayloads: isLast)
                let scan = try scanner.scan(expectedOffset: expectedOffset, previousHash: previous)
                if let mismatch = LogFile.versionMismatch(scan.version, among: version, file: "log/" + file.name) {
                    throw mismatch
                }
                version = version ?? scan.version
                if let last = scan.committed.last {
                    expectedOffset = last.header.endOffset
                    previous = last.header.hash
                    lastRecorded = last.header.maxRecorded
                }
                let damaged = scan.stop.map { stop in
                    StorageError(
                        code: .corrupt, message: stop.reason + "; run `touchlog verify` for a full report",
                        location: .init(file: "log/" + file.name, block: stop.blockIndex, byte: stop.position))
                }
                if !isLast {
                    if let damaged { throw damaged }
                    if scan.committedEnd != scan.size || scan.uncommittedBlocks > 0 {
                        throw StorageError(
                            code: .corrupt, message: "a sealed log file ends with an unfinished commit",
                            location: .init(file: "log/" + file.name, byte: scan.committedEnd))
                    }
                    continue
                }
                if let damaged, scan.isDamaged { throw damaged }
                if scan.size > scan.committedEnd {
                    recovery = RecoveryReport(
                        file: file.name, position: scan.committedEnd, bytesRemoved: scan.size - scan.committedEnd,
                        uncommittedBlocks: scan.uncommittedBlocks,
                        reason: scan.stop?.reason ?? "valid blocks without a commit")
                }
            }
            let active = files[files.count - 1]
            let path = directory + "/" + active.name
            let handle = try Self.wrap("open the active log file", SystemFile.open(path, .readWrite))
            self.activeFile = handle
            self.activeName = active.name
            self.endOffset = expectedOffset
            self.headHash = previous
            self.lastRecorded = lastRecorded
            self.formatVersion = version ?? options.formatVersion
            self.recovery = recovery
            if let recovery {
                try Self.wrap("remove a torn tail", handle.truncate(to: recovery.position))
                try Self.wrap("sync the recovered file", handle.sync())
            }
            self.activeSize = try Self.wrap("size the active log file", handle.size())
            self.lock = lock
        } catch let error as StorageError {
            lock.close()
            throw error
        } catch {
            lock.close()
            throw StorageError(code: .io, message: "cannot open the log", cause: error as? SystemCallError)
        }
    }

    deinit { close() }

    /// Releases the files and the writer lock. Further calls fail.
    public func close() {
        guard let lock else { return }
        activeFile.close()
        lock.close()
        self.lock = nil
        failure = failure ?? StorageError(code: .writerFailed, message: "the log writer is closed")
    }

    /// Appends `blocks` as one commit and returns their offsets once durable.
    @discardableResult
    public func append(_ blocks: [RawBlock]) throws(StorageError) -> Range<UInt64> {
        try beginTransaction()
        do {
            for block in blocks { _ = try add(block) }
            return try commit()
        } catch {
            if transaction != nil { try? rollback() }
            throw error
        }
    }

    /// Starts a commit. Its recorded time is fixed now: `recorded` when given (a time from elsewhere, such as the
    /// message that carried the events; it may not be earlier than the previous commit's), else the clock, but never
    /// earlier than the previous commit's. `metadata` (format 2 only, at most 64 KiB) is kept with the commit, for
    /// instance the source and sequence number it applied; ``LogReader/metadata(of:)`` reads it back.
    public func beginTransaction(recorded: Int64? = nil, metadata: [UInt8]? = nil) throws(StorageError) {
        try checkUsable()
        precondition(transaction == nil, "a transaction is already open")
        if let recorded, recorded < lastRecorded {
            throw StorageError(
                code: .invalidArgument,
                message:
                    "recorded time \(recorded) is earlier than the previous commit's (\(lastRecorded)); recorded times never decrease"
            )
        }
        if let metadata {
            guard formatVersion >= 2 else {
                throw StorageError(
                    code: .invalidArgument,
                    message: "commit metadata needs a log of format 2 (this one is format \(formatVersion))")
            }
            let limit = formatVersion >= 3 ? BlockHeader.maxMarkerMetadataLength : BlockHeader.maxMetadataLength
            guard metadata.count <= limit else {
                throw StorageError(
                    code: .invalidArgument,
                    message: "commit metadata is at most \(limit >> 10) KiB, not \(metadata.count) bytes")
            }
        }
        if activeSize >= options.rollSize && activeSize > Int64(LogFileHeader.size) {
            try roll()
        }
        transaction = Transaction(
            startPosition: activeSize, startOffset: endOffset, recorded: recorded ?? max(options.clock(), lastRecorded),
            position: activeSize, writeOffset: endOffset, previousHash: headHash, assignOffset: endOffset,
            metadata: metadata)
    }

    /// Adds a block to the open commit and returns the offsets its records will have.
    ///
    /// The block is compressed here; it reaches the file before the commit ends, but no reader sees it until then.
    @discardableResult
    public func add(_ block: RawBlock) throws(StorageError) -> Range<UInt64> {
        try checkUsable()
        guard var tx = transaction else { preconditionFailure("add(_:) outside a transaction") }
        guard block.count > 0, block.count <= Int(UInt32.max) else {
            throw StorageError(
                code: .invalidArgument, message: "a block holds 1 to \(UInt32.max) records, not \(block.count)")
        }
        guard block.version == formatVersion else {
            throw StorageError(
                code: .invalidArgument,
                message: "a block of format \(block.version) cannot go into a log of format \(formatVersion)")
        }
        guard block.payload.count <= BlockHeader.maxPayloadLength else {
            throw StorageError(
                code: .invalidArgument, message: "a block payload is at most \(BlockHeader.maxPayloadLength) bytes")
        }
        if let metadata = tx.metadata, metadata.count > BlockHeader.maxMetadataLength {
            throw StorageError(
                code: .invalidArgument,
                message: "commit metadata over 64 KiB is kept only by a commit without records (a marker)")
        }
        guard (block.summary?.count ?? 0) <= BlockHeader.maxOwnSummaryLength else {
            throw StorageError(
                code: .invalidArgument, message: "a block summary is at most \(BlockHeader.maxOwnSummaryLength) bytes")
        }
        guard block.minTime <= block.maxTime else {
            throw StorageError(code: .invalidArgument, message: "a block's min time is after its max time")
        }
        if let held = tx.held {
            try write(held, commit: false, into: &tx)
        }
        var block = block
        block.compress()
        tx.held = block
        let range = tx.assignOffset..<(tx.assignOffset + UInt64(block.count))
        tx.assignOffset = range.upperBound
        transaction = tx
        return range
    }

    /// Makes the open commit durable and visible, and returns the offsets of all its records.
    ///
    /// Blocks written before the last one are synced first, then the last block (with the commit flag) is written
    /// and synced. A commit with no blocks is a no-op and returns an empty range, except in format 3 when it has
    /// metadata: then it is a *marker*, one block of no records holding only the metadata (an erasure is recorded so).
    @discardableResult
    public func commit() throws(StorageError) -> Range<UInt64> {
        try checkUsable()
        guard var tx = transaction else { preconditionFailure("commit() outside a transaction") }
        if tx.held == nil && tx.metadata != nil && formatVersion >= 3 {
            tx.held = RawBlock(
                summary: [], body: [], count: 0, minTime: tx.recorded, maxTime: tx.recorded, version: formatVersion)
        }
        guard let held = tx.held else {
            transaction = nil
            return endOffset..<endOffset
        }
        if let beforeCommit {
            do { try beforeCommit() } catch {
                throw fail(
                    StorageError(
                        code: .io, message: "\(error); nothing more will be written until the store is reopened",
                        cause: error as? SystemCallError))
            }
        }
        if tx.written > 0 { try sync() }
        try write(held, commit: true, into: &tx)
        try sync()
        transaction = nil
        activeSize = tx.position
        endOffset = tx.writeOffset
        headHash = tx.previousHash
        lastRecorded = tx.recorded
        metrics.commits.increment()
        metrics.commitDuration.recordNanoseconds(Int64(Platform.monotonicNanoseconds() - tx.started))
        return tx.startOffset..<tx.writeOffset
    }

    /// Abandons the open commit and removes what it wrote.
    public func rollback() throws(StorageError) {
        guard let tx = transaction else { return }
        transaction = nil
        if tx.written > 0 {
            do { try activeFile.truncate(to: tx.startPosition) } catch {
                throw fail(
                    StorageError(
                        code: .io, message: "cannot remove a rolled-back commit", location: location(tx.startPosition),
                        cause: error))
            }
        }
    }

    private func write(_ block: RawBlock, commit: Bool, into tx: inout Transaction) throws(StorageError) {
        let metadata = commit ? tx.metadata : nil
        let (stored, summaryLength) = block.stored(metadata: metadata)
        let (header, headerBytes) = BlockHeader.sealed(
            version: block.version, isCommit: commit, hasMetadata: metadata != nil, firstOffset: tx.writeOffset,
            count: UInt32(block.count), storedPayload: stored, rawLength: block.payload.count,
            summaryLength: summaryLength,
            minTime: block.minTime, maxTime: block.maxTime, recorded: tx.recorded, previousHash: tx.previousHash)
        do {
            try activeFile.write(headerBytes + stored, at: tx.position)
        } catch {
            throw fail(
                StorageError(code: .io, message: "cannot write a block", location: location(tx.position), cause: error))
        }
        tx.position += Int64(headerBytes.count + stored.count)
        tx.writeOffset = header.endOffset
        tx.previousHash = header.hash
        tx.written += 1
    }

    private func sync() throws(StorageError) {
        let started = Platform.monotonicNanoseconds()
        defer { metrics.fsyncDuration.recordNanoseconds(Int64(Platform.monotonicNanoseconds() - started)) }
        do { try activeFile.sync() } catch {
            throw fail(
                StorageError(
                    code: .io, message: "fsync failed; nothing more will be written until the store is reopened",
                    location: .init(file: "log/" + activeName), cause: error))
        }
        syncCount += 1
    }

    private func roll() throws(StorageError) {
        // Like a failed fsync, a failed roll stops the writer: what reached the directory is only known after a reopen.
        let file: LogFile
        do { file = try Self.createFile(directory: directory, firstOffset: endOffset, version: formatVersion) } catch {
            throw fail(error)
        }
        do {
            let handle = try SystemFile.open(directory + "/" + file.name, .readWrite)
            activeFile.close()
            activeFile = handle
            activeName = file.name
            activeSize = try handle.size()
        } catch {
            throw fail(
                StorageError(
                    code: .io, message: "cannot open a new log file", location: .init(file: "log/" + file.name),
                    cause: error))
        }
    }

    private func checkUsable() throws(StorageError) {
        if let failure {
            throw StorageError(
                code: .writerFailed, message: failure.message, location: failure.location, cause: failure.cause)
        }
    }

    private func fail(_ error: StorageError) -> StorageError {
        failure = error
        return error
    }

    private func location(_ byte: Int64) -> StorageError.Location {
        .init(file: "log/" + activeName, byte: byte)
    }

    /// Creates an empty log file (just its header), durable together with its directory entry.
    private static func createFile(directory: String, firstOffset: UInt64, version: UInt16) throws(StorageError)
        -> LogFile
    {
        let name = LogFileHeader.fileName(firstOffset: firstOffset)
        let path = directory + "/" + name
        let temporary = path + ".new"
        try wrap("create log file \(name)") { () throws(SystemCallError) in
            let handle = try SystemFile.open(temporary, .createReadWrite)
            defer { handle.close() }
            try handle.truncate(to: 0)
            try handle.write(LogFileHeader(firstOffset: firstOffset, version: version).encoded(), at: 0)
            try handle.sync()
            try SystemFile.rename(temporary, path)
            try SystemFile.syncDirectory(directory)
        }
        return LogFile(name: name, firstOffset: firstOffset)
    }

    private static func acquireLock(_ path: String) throws(StorageError) -> SystemFile {
        let handle = try wrap("open the writer lock", SystemFile.open(path, .createReadWrite))
        var locked = false
        var holder: Substring?  // the pid the lock file names
        do {
            locked = try handle.tryLockExclusive()
            if !locked {
                holder = (try? handle.read(at: 0, count: 32)).flatMap {
                    String(decoding: $0, as: UTF8.self).split(separator: "\n").first
                }
            }
            // Held by this very process: a writer closed a moment ago can still hold it through a child process being
            // spawned (the child has the descriptor until its exec closes it). Give that a moment before refusing.
            var waits = 0
            while !locked && holder == "\(Platform.processID)"[...] && waits < 50 {
                Platform.sleep(milliseconds: 10)
                waits += 1
                locked = try handle.tryLockExclusive()
            }
        } catch {
            handle.close()
            throw StorageError(code: .io, message: "cannot lock \(path)", cause: error)
        }
        guard locked else {
            handle.close()
            let pid = holder.map { " (pid \($0))" } ?? ""
            throw StorageError(
                code: .locked, message: "the store is locked by another writer\(pid); one writing process per store")
        }
        _ = try? handle.truncate(to: 0)
        _ = try? handle.write(Array("\(Platform.processID)\n".utf8), at: 0)
        return handle
    }

    static func wrap<T>(_ what: String, _ body: @autoclosure () throws(SystemCallError) -> T) throws(StorageError) -> T
    {
        do { return try body() } catch { throw StorageError(code: .io, message: "cannot \(what)", cause: error) }
    }

    static func wrap<T>(_ what: String, _ body: () throws(SystemCallError) -> T) throws(StorageError) -> T {
        do { return try body() } catch { throw StorageError(code: .io, message: "cannot \(what)", cause: error) }
    }
}
