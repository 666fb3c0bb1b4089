/// Turns the records of one input into events, or into a problem naming the line and column: the first record of a
/// CSV input is its header. Shared by file ingest and in-memory appends, so both refuse exactly the same lines.
struct RecordParser {
    let format: InputFormat
    /// The input's name in problems (nil when there is only one input).
    let source: String?
    let maxRecordBytes: Int
    private var csv: CSVEventParser?
    private var sawHeader = false

    init(format: InputFormat, source: String?, maxRecordBytes: Int) {
        self.format = format
        self.source = source
        self.maxRecordBytes = maxRecordBytes
    }

    /// Parses `record` into `batch`; returns the problem instead when the record is not a valid event (or header).
    mutating func parse(_ record: InputScanner.Record, into batch: inout EventBatch) -> InputProblem? {
        switch record {
        case .tooLong(let line):
            return InputProblem(
                source: source, line: line, column: nil, reason: "line is longer than \(maxRecordBytes) bytes")
        case .text(let bytes, let line):
            do throws(FieldProblem) {
                if format == .csv && !sawHeader {
                    sawHeader = true
                    csv = try CSVEventParser(header: bytes)
                } else if format == .csv {
                    guard let csv else {
                        throw FieldProblem(column: nil, reason: "cannot be read: the CSV header is not valid")
                    }
                    try csv.parse(bytes, into: &batch)
                } else {
                    try JSONEventParser.parse(bytes, into: &batch)
                }
                return nil
            } catch {
                return InputProblem(source: source, line: line, column: error.column, reason: error.reason)
            }
        }
    }
}
