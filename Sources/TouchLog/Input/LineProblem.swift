/// Why one input line was refused, and where in it.
public struct InputProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input's name when several inputs were given (else nil).
    public var source: String?
    /// 1-based line number (for a CSV record spanning lines, the line it starts on).
    public var line: Int
    /// 1-based byte column, when the problem has a place in the line.
    public var column: Int?
    /// What is wrong, in words (`time: not RFC 3339 or epoch milliseconds`).
    public var reason: String

    /// A problem at `line` (and `column`) of `source`.
    public init(source: String? = nil, line: Int, column: Int?, reason: String) {
        self.source = source
        self.line = line
        self.column = column
        self.reason = reason
    }

    /// `LINE:COLUMN reason` (or `LINE reason`), prefixed by `SOURCE:` when there are several inputs.
    public var description: String {
        var text = source.map { "\($0):" } ?? ""
        text += "\(line)"
        if let column { text += ":\(column)" }
        return text + " " + reason
    }
}

/// A problem inside one line, before its line number is known.
struct FieldProblem: Error {
    var column: Int?
    var reason: String
}

/// A string field's bytes: a range of the input line, or a decoded copy when it had escapes.
enum FieldBytes {
    case slice(Range<Int>)
    case owned([UInt8])

    func withBytes<R>(in line: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .slice(let range): return body(UnsafeRawBufferPointer(rebasing: line[range]))
        case .owned(let bytes): return bytes.withUnsafeBytes(body)
        }
    }

    func count() -> Int {
        switch self {
        case .slice(let range): return range.count
        case .owned(let bytes): return bytes.count
        }
    }

    func string(in line: UnsafeRawBufferPointer) -> String {
        withBytes(in: line) { String(decoding: $0, as: UTF8.self) }
    }
}

/// The checked fields of one event, ready for a batch.
struct ParsedFields {
    var time: Int64?
    var timeColumn: Int?
    var profile: FieldBytes?
    var type: EventType?
    var touchpoint: FieldBytes?
    var value: Double?

    /// Checks the fields against the contract and appends the event to `batch`.
    func append(to batch: inout EventBatch, line: UnsafeRawBufferPointer) throws(FieldProblem) {
        guard let time else { throw FieldProblem(column: nil, reason: "missing field \"time\"") }
        guard let profile else { throw FieldProblem(column: nil, reason: "missing field \"profile\"") }
        guard let type else { throw FieldProblem(column: nil, reason: "missing field \"type\"") }
        if let reason = EventBatch.problem(
            time: time, type: type, profileLength: profile.count(),
            touchpointLength: touchpoint?.count(), value: value)
        {
            throw FieldProblem(column: nil, reason: reason)
        }
        profile.withBytes(in: line) { p in
            if let touchpoint {
                touchpoint.withBytes(in: line) { t in
                    batch.append(time: time, type: type, profile: p, touchpoint: t, value: value)
                }
            } else {
                batch.append(time: time, type: type, profile: p, touchpoint: nil, value: value)
            }
        }
    }
}

/// True when `bytes` are valid UTF-8.
func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    for byte in bytes where byte >= 0x80 {
        return String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) != nil
    }
    return true
}

/// The 1-based position of the first byte that breaks UTF-8 in `bytes`.
func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int {
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        let length: Int
        switch b {
        case 0x00...0x7F: length = 1
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return i + 1
        }
        guard i + length <= bytes.count,
            isValidUTF8(UnsafeRawBufferPointer(rebasing: bytes[i..<(i + length)]))
        else { return i + 1 }
        i += length
    }
    return i + 1
}
