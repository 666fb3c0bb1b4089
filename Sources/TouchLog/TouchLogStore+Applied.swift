import TouchLogStorage

/// Commits whose recorded time and metadata come from elsewhere: a cluster node applying a replicated stream message
/// by message. Each call is a commit of its own (never grouped with other appends), so the log's commits follow the
/// messages one to one.
extension TouchLogStore {
    /// Appends `batch` as one commit recorded at `recorded` (raised to the previous commit's time if earlier, so a
    /// clock that stepped back cannot reorder what was known) and carrying `metadata`. An empty batch commits a
    /// marker holding only the metadata (format 3), so a message that changed nothing is still recorded as applied.
    @discardableResult
    package func appendApplied(_ batch: EventBatch, recorded: Int64, metadata: [UInt8]) throws(TouchLogError) -> Range<
        UInt64
    > {
        let (_, encoder) = try requireWriter()
        let blocks =
            batch.isEmpty
            ? []
            : Self.blocks(total: batch.count, blockEvents: blockEvents) { range, scratch in
                encoder.prepare(batch, range: range, scratch: &scratch.encode)
            }
        return try withLogWriter { log throws(TouchLogError) -> Range<UInt64> in
            var committed = false
            defer { encoder.finished(committed: committed) }
            do throws(TouchLogError) {
                try storage { () throws(StorageError) in
                    try log.beginTransaction(recorded: max(recorded, log.lastRecorded), metadata: metadata)
                }
                for block in try encoder.seal(blocks) {
                    _ = try storage { () throws(StorageError) in try log.add(block) }
                }
                let range = try storage { () throws(StorageError) in try log.commit() }
                committed = true
                return range
            } catch {
                try? log.rollback()
                throw error
            }
        }
    }

    /// The metadata of the store's last commit (nil when it has none, or the store has no commit yet).
    package func lastCommitMetadata() throws(TouchLogError) -> [UInt8]? {
        try readers.withReader { reader throws(TouchLogError) -> [UInt8]? in
            try reader.refresh()
            guard let last = reader.log.lastBlock else { return nil }
            return try storage { () throws(StorageError) in try reader.log.metadata(of: last) }
        }
    }
}

extension EventBatch {
    /// Parses JSON Lines or CSV (detected when `format` is nil) into a batch; any invalid line throws
    /// ``TouchLogError/Code-swift.struct/invalidInput`` with the problems, named by line.
    package static func parse(_ input: [UInt8], format: InputFormat? = nil, source: String? = nil) throws(TouchLogError)
        -> EventBatch
    {
        try parse(input, format: format, source: source, skipInvalid: false).batch
    }

    /// Parses JSON Lines or CSV into a batch of the valid lines. Unless `skipInvalid`, an invalid line throws
    /// ``TouchLogError/Code-swift.struct/invalidInput`` (after every line is checked, so all problems are named).
    static func parse(_ input: [UInt8], format: InputFormat?, source: String?, skipInvalid: Bool) throws(TouchLogError)
        -> (batch: EventBatch, invalid: Int, problems: [InputProblem])
    {
        let format = format ?? InputFormat.detect(start: input)
        var scanner = InputScanner.bytes(input, name: source ?? "input")
        scanner.quoteAware = format == .csv
        var parser = RecordParser(format: format, source: source, maxRecordBytes: scanner.maxRecordBytes)
        var batch = EventBatch.forEncoding()
        var invalid = 0
        var problems: [InputProblem] = []
        do {
            try scanner.forEachRecord { record in
                guard let problem = parser.parse(record, into: &batch) else { return }
                invalid += 1
                if problems.count < IngestOptions.maxProblems { problems.append(problem) }
            }
        } catch {
            throw TouchLogError(wrapping: error, "cannot read the input")
        }
        if invalid > 0 && !skipInvalid {
            let shown = problems.count < invalid ? " (the first \(problems.count) are listed)" : ""
            throw TouchLogError(
                code: .invalidInput,
                message: "\(invalid) invalid line\(invalid == 1 ? "" : "s")\(shown); nothing appended",
                problems: problems)
        }
        return (batch, invalid, problems)
    }
}

extension TouchLogStore {
    /// ``erase(profiles:reason:skipUnknown:)`` on the calling thread, recorded at `recorded` (raised to the previous
    /// commit's time if earlier), for a cluster node applying an erasure from its stream.
    @discardableResult
    package func eraseApplied(profiles: [String], reason: String, recorded: Int64) throws(TouchLogError)
        -> ErasureReport
    {
        try eraseNow(profiles: profiles, reason: reason, skipUnknown: true, recorded: recorded)
    }

    /// Runs `body` with a reader from the store's pool, on the calling thread (for callers that answer on threads of
    /// their own rather than in tasks).
    package func withReader<T>(_ body: (StoreReader) throws(TouchLogError) -> T) throws(TouchLogError) -> T {
        try readers.withReader(body)
    }

    /// Calls `body`, on the calling thread, with each block that may hold events matching `filter`, decoded and
    /// checked, in log order up to the end of the log as it is now: how `touchlog replay` streams millions of events
    /// without making each one a ``StoredEvent`` (``replay(matching:)`` does). `body`'s errors are rethrown as they
    /// are.
    package func forEachBlock(matching filter: ReplayFilter, _ body: (DecodedBlock) throws -> Void) throws {
        var failure: (any Error)?
        try readers.withReader { reader throws(TouchLogError) in
            do { try reader.forEachBlock(matching: filter, body) } catch let error as TouchLogError {
                throw error
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Whether the store holds each profile (a writable store only).
    package func holds(profiles: [String]) throws(TouchLogError) -> [Bool] {
        try requireWriter().encoder.profileIDs(of: profiles).map { $0 != nil }
    }
}
