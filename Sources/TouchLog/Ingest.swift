import TouchLogStorage

/// How ``TouchLogStore/ingest(_:options:rejected:progress:)`` treats its inputs.
public struct IngestOptions: Sendable {
    /// The inputs' format; nil detects it per input (see ``InputFormat``).
    public var format: InputFormat?
    /// Append the valid lines and report the invalid ones, instead of appending nothing.
    public var skipInvalid = false
    /// How many problems an error or report keeps (all are counted).
    public static let maxProblems = 100

    /// Options with the given format (nil: detected per input) and treatment of invalid lines.
    public init(format: InputFormat? = nil, skipInvalid: Bool = false) {
        self.format = format
        self.skipInvalid = skipInvalid
    }
}

/// What an ingest appended and refused.
public struct IngestReport: Sendable {
    /// Offsets of the appended events (empty when none).
    public var offsets: Range<UInt64>
    /// Lines refused (only with ``IngestOptions/skipInvalid``).
    public var rejectedCount = 0
    /// The first problems (at most ``IngestOptions/maxProblems``).
    public var problems: [InputProblem] = []
    /// Bytes of input read.
    public var bytesRead: Int64 = 0

    /// How many events were appended.
    public var appendedCount: Int { offsets.count }
}

extension TouchLogStore {
    /// Appends every event of the inputs (paths, or `-` for standard input) in one atomic, durable commit.
    ///
    /// Inputs are streamed: memory stays bounded whatever their size. By default one invalid line means nothing is
    /// appended and ``TouchLogError/Code-swift.struct/invalidInput`` is thrown with the problems found (every line is
    /// still checked, so all of them are reported). With ``IngestOptions/skipInvalid``, valid lines are appended and each
    /// refused line is passed to `rejected` with its problem and bytes.
    public func ingest(
        _ inputs: [String],
        options: IngestOptions = IngestOptions(),
        rejected: (InputProblem, UnsafeRawBufferPointer) -> Void = { _, _ in },
        progress: (_ bytesRead: Int64) -> Void = { _ in }
    ) throws(TouchLogError) -> IngestReport {
        let blockEvents = self.blockEvents
        let encoder = try requireWriter().encoder
        let started = Platform.monotonicNanoseconds()
        let metrics = self.metrics
        return try withLogWriter { (writer: LogWriter) throws(TouchLogError) -> IngestReport in
            try storage { () throws(StorageError) in try writer.beginTransaction() }
            var report = IngestReport(offsets: writer.endOffset..<writer.endOffset)
            var invalid = 0
            var batch = EventBatch.forEncoding()
            var bytesBefore: Int64 = 0
            var failure: TouchLogError?
            let blocks = BlockPipeline(writer: writer, encoder: encoder)
            // The store-wide ids the commit's blocks introduce stay only if it commits.
            var committed = false
            defer { encoder.finished(committed: committed) }
            do {
                for input in inputs {
                    let scanner = try InputScanner.open(input)
                    defer { scanner.close() }
                    let format = options.format ?? InputFormat.detect(path: input)
                    var quoteAwareScanner = scanner
                    quoteAwareScanner.quoteAware = format == .csv
                    var parser = RecordParser(
                        format: format, source: inputs.count > 1 ? input : nil, maxRecordBytes: scanner.maxRecordBytes)
                    try quoteAwareScanner.forEachRecord(progress: {
                        progress(bytesBefore + $0)
                        report.bytesRead = bytesBefore + $0
                    }) { record in
                        let problem = parser.parse(record, into: &batch)
                        if let problem {
                            invalid += 1
                            if report.problems.count < IngestOptions.maxProblems { report.problems.append(problem) }
                            if options.skipInvalid { rejected(problem, record.bytes) }
                            return
                        }
                        if batch.count >= blockEvents && (options.skipInvalid || invalid == 0) {
                            batch = try blocks.submit(batch)
                        } else if batch.count >= blockEvents {
                            batch.removeAll()  // nothing will be appended; keep checking lines only
                        }
                    }
                    bytesBefore = report.bytesRead
                }
                try blocks.finish()
                if invalid > 0 && !options.skipInvalid {
                    try writer.rollback()
                    let shown =
                        report.problems.count < invalid ? " (the first \(report.problems.count) are listed)" : ""
                    failure = TouchLogError(
                        code: .invalidInput,
                        message: "\(invalid) invalid line\(invalid == 1 ? "" : "s")\(shown); nothing appended",
                        problems: report.problems)
                } else {
                    if !batch.isEmpty { try writer.add(encoder.block(of: batch)) }
                    report.offsets = try writer.commit()
                    committed = true
                    metrics.appended(report.offsets.count, since: started)
                    report.rejectedCount = invalid
                }
            } catch let error as StorageError {
                try? blocks.finish()
                try? writer.rollback()
                failure = TouchLogError(error)
            } catch let error as TouchLogError {
                try? blocks.finish()
                try? writer.rollback()
                failure = error
            } catch let error as InputError {
                try? blocks.finish()
                try? writer.rollback()
                // Like sysexits' EX_NOINPUT: an input that does not exist or cannot be read.
                failure = TouchLogError(code: .notFound, message: error.message + "; nothing appended")
            } catch {
                try? blocks.finish()
                try? writer.rollback()
                failure = TouchLogError(code: .io, message: "\(error); nothing appended")
            }
            if let failure { throw failure }
            return report
        }
    }
}

extension TouchLogStore {
    /// Parses `input` (JSON Lines, or CSV with its header line; detected when ``IngestOptions/format`` is nil) and
    /// appends its events in one atomic commit, durable on return and group-committed with concurrent appends.
    ///
    /// Lines are refused exactly as ``ingest(_:options:rejected:progress:)`` refuses them: by default one invalid
    /// line means nothing is appended and ``TouchLogError/Code-swift.struct/invalidInput`` is thrown with the
    /// problems; with ``IngestOptions/skipInvalid`` the valid lines are appended and the report counts the rest.
    public func append(contentsOf input: [UInt8], options: IngestOptions = IngestOptions()) async throws(TouchLogError)
        -> IngestReport
    {
        let (batch, invalid, problems) = try EventBatch.parse(
            input, format: options.format, source: nil, skipInvalid: options.skipInvalid)
        var report = IngestReport(offsets: try await append(batch))
        report.rejectedCount = invalid
        report.problems = problems
        report.bytesRead = Int64(input.count)
        return report
    }
}
