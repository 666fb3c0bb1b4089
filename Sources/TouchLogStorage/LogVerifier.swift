import Dispatch
import Synchronization

/// What `verify` found in a log.
public struct VerifyReport: Sendable {
    /// Log files checked.
    public var files = 0
    /// Blocks checked.
    public var blocks = 0
    /// Records (events) in the checked blocks.
    public var records: UInt64 = 0
    /// Bytes of all log files.
    public var bytes: Int64 = 0
    /// Payload bytes before compression.
    public var rawBytes: Int64 = 0
    /// The hash of the last committed block.
    public var head = BlockHash.zero
    /// Bytes past the last commit: a torn or unfinished write that the writer removes when it next opens.
    public var uncommittedTailBytes: Int64 = 0
    /// Every problem found, each naming the file, block and byte.
    public var problems: [StorageError] = []

    /// True when no problem was found.
    public var isIntact: Bool { problems.isEmpty }
}

/// Checks a whole log: every header and payload checksum, the hash chain, offsets, file names and headers,
/// recorded times, and (through `checkPayload`) each payload's contents.
///
/// Unlike a reader it does not stop at the first problem: after damage it searches forward for the next
/// valid block and goes on, so that one report names every damaged place.
public enum LogVerifier {
    /// Checks one decompressed payload (format 2: the stored bytes, commit metadata and summary in front) against its
    /// header; returns what is wrong, or nil.
    public typealias PayloadCheck = (BlockHeader, [UInt8]) -> String?

    /// Verifies the log in `directory`. Payloads are checked on every core: `makePayloadCheck` is called once per
    /// thread, and the check it returns gets each block's header and decompressed payload and returns a
    /// description of what is wrong with it, or nil (it may keep buffers between calls).
    public static func verify(
        directory: String,
        progress: (_ bytesDone: Int64, _ bytesTotal: Int64) -> Void = { _, _ in },
        makePayloadCheck: @escaping @Sendable () -> PayloadCheck = { { _, _ in nil } }
    ) throws(StorageError) -> VerifyReport {
        guard SystemFile.isDirectory(directory) else {
            throw StorageError(code: .notFound, message: "no log directory at \(directory)")
        }
        let files = try LogWriter.wrap("list the log directory", LogFile.list(in: directory))
        var report = VerifyReport()
        report.files = files.count
        var sizes: [Int64] = []
        for file in files {
            let handle = try LogWriter.wrap(
                "open \(file.name)", SystemFile.open(directory + "/" + file.name, .readOnly))
            sizes.append((try? handle.size()) ?? 0)
            handle.close()
        }
        let total = sizes.reduce(0, +)
        var done: Int64 = 0
        var expectedOffset: UInt64 = 0
        var previous = BlockHash.zero
        var lastRecorded = Int64.min
        var version: UInt16?
        if files.isEmpty {
            report.problems.append(StorageError(code: .corrupt, message: "the log has no files"))
        }
        for (index, file) in files.enumerated() {
            let isLast = index == files.count - 1
            let name = "log/" + file.name
            // Fast path: walk the headers, then check every payload's hash and contents on all cores. When that
            // finds anything wrong, the file is walked again the careful way below, which checks each hash as it
            // goes and so tells damage from a torn tail exactly as a reader and the writer do.
            let quick = try LogFileScanner(directory: directory, file: file, fileIndex: index, checkPayloads: false)
                .scan(expectedOffset: expectedOffset, previousHash: previous)
            if let mismatch = LogFile.versionMismatch(quick.version, among: version, file: name) {
                report.problems.append(mismatch)
            }
            version = version ?? quick.version
            var quickProblems: [StorageError?]?
            if quick.stop == nil {
                let problems = checkPayloads(
                    quick.committed, directory: directory, files: files, hashes: true, makePayloadCheck)
                if !problems.contains(where: { $0 != nil }) { quickProblems = problems }
            }
            var scanner = LogFileScanner(directory: directory, file: file, fileIndex: index, checkPayloads: true)
            while true {
                let scan =
                    quickProblems != nil
                    ? quick : try scanner.scan(expectedOffset: expectedOffset, previousHash: previous)
                let payloadProblems =
                    quickProblems
                    ?? checkPayloads(
                        scan.committed, directory: directory, files: files, hashes: false, makePayloadCheck)
                quickProblems = nil
                for (k, block) in scan.committed.enumerated() {
                    report.blocks += 1
                    report.records += UInt64(block.header.count)
                    report.rawBytes += Int64(block.header.rawLength)
                    if block.header.minRecorded < lastRecorded {
                        report.problems.append(
                            StorageError(
                                code: .corrupt, message: "recorded time goes backwards",
                                location: .init(file: name, block: block.blockIndex, byte: block.position)))
                    }
                    lastRecorded = block.header.maxRecorded
                    if let problem = payloadProblems[k] { report.problems.append(problem) }
                    progress(done + block.position + block.length, total)
                }
                if let last = scan.committed.last {
                    expectedOffset = last.header.endOffset
                    previous = last.header.hash
                }
                guard let stop = scan.stop else {
                    if !isLast && scan.committedEnd != scan.size {
                        report.problems.append(
                            StorageError(
                                code: .corrupt, message: "a sealed log file ends with an unfinished commit",
                                location: .init(file: name, byte: scan.committedEnd)))
                    } else if isLast {
                        report.uncommittedTailBytes = scan.size - scan.committedEnd
                    }
                    break
                }
                if isLast && !scan.isDamaged {
                    report.uncommittedTailBytes = scan.size - scan.committedEnd
                    break
                }
                report.problems.append(
                    StorageError(
                        code: .corrupt, message: stop.reason,
                        location: .init(file: name, block: stop.blockIndex, byte: stop.position)))
                // Go on from the next valid block header, taking its offset and predecessor as given.
                guard let next = try nextValidHeader(in: directory + "/" + file.name, after: stop.position) else {
                    break
                }
                scanner.resume = (next.position, stop.blockIndex + 1, next.header.firstOffset, next.header.previousHash)
                expectedOffset = next.header.firstOffset
                previous = next.header.previousHash
            }
            done += sizes[index]
        }
        report.bytes = total
        report.head = previous
        return report
    }

    /// Decompresses and checks the payloads of `blocks` (checking them against their hashes first when `hashes`), on as many
    /// threads as there are cores, each reading with its own file handles. Returns each block's problem or nil.
    private static func checkPayloads(
        _ blocks: [BlockLocation], directory: String, files: [LogFile], hashes: Bool,
        _ makePayloadCheck: @escaping @Sendable () -> PayloadCheck
    ) -> [StorageError?] {
        let workers = max(1, min(Platform.processorCount, blocks.count))
        let results = Mutex<[StorageError?]>(Array(repeating: nil, count: blocks.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let reader = BlockFileReader(directory: directory, files: files)
            let checkPayload = makePayloadCheck()
            var stored: [UInt8] = []
            var raw: [UInt8] = []
            // Interleaved, so that the workers read the file front to back together.
            for k in stride(from: worker, to: blocks.count, by: workers) {
                let block = blocks[k]
                do throws(StorageError) {
                    try reader.readPayload(block, stored: &stored, into: &raw, checkingHash: hashes)
                    if block.header.version >= 2
                        && !block.header.matches(summary: raw[..<Int(block.header.summaryLength)])
                    {
                        throw StorageError(
                            code: .corrupt, message: "block summary checksum mismatch",
                            location: reader.location(of: block))
                    }
                    if let problem = checkPayload(block.header, raw) {
                        let error = StorageError(code: .corrupt, message: problem, location: reader.location(of: block))
                        results.withLock { $0[k] = error }
                    }
                } catch {
                    results.withLock { $0[k] = error }
                }
            }
        }
        return results.withLock { $0 }
    }

    private static func nextValidHeader(in path: String, after position: Int64) throws(StorageError) -> (
        position: Int64, header: BlockHeader
    )? {
        try LogWriter.wrap("search \(path) for the next block") {
            () throws(SystemCallError) -> (position: Int64, header: BlockHeader)? in
            let handle = try SystemFile.open(path, .readOnly)
            defer { handle.close() }
            return try LogFileScanner.nextHeader(
                in: handle, after: position, size: try handle.size(), where: { _ in true })
        }
    }
}
