/// Parses CSV events (RFC 4180: comma separated, fields optionally in double quotes with `""` for a quote).
///
/// The first record is the header; it names the columns, in any order: `time`, `profile` and `type` are
/// required, `touchpoint` and `value` optional, others ignored. An empty `touchpoint` or `value` means none.
struct CSVEventParser {
    private var columnOf: [Int] = []  // field index → known column (0…4) or -1
    private var fieldCount = 0

    static let columnNames = ["time", "profile", "type", "touchpoint", "value"]

    /// Reads the header record.
    init(header: UnsafeRawBufferPointer) throws(FieldProblem) {
        let fields = try Self.split(header)
        var seen = Set<Int>()
        for field in fields {
            let name = field.bytes.string(in: header)
            let known = Self.columnNames.firstIndex(of: name) ?? -1
            if known >= 0 {
                guard seen.insert(known).inserted else {
                    throw FieldProblem(column: field.column, reason: "duplicate column \"\(name)\" in the header")
                }
            }
            columnOf.append(known)
        }
        fieldCount = fields.count
        for required in 0..<3 where !seen.contains(required) {
            throw FieldProblem(
                column: nil,
                reason:
                    "the CSV header has no \"\(Self.columnNames[required])\" column (expected time,profile,type,touchpoint,value)"
            )
        }
    }

    /// Parses one record and appends its event to `batch`.
    func parse(_ record: UnsafeRawBufferPointer, into batch: inout EventBatch) throws(FieldProblem) {
        let fields = try Self.split(record)
        guard fields.count == fieldCount else {
            throw FieldProblem(
                column: nil, reason: "expected \(fieldCount) fields as in the header, found \(fields.count)")
        }
        var parsed = ParsedFields()
        for (index, field) in fields.enumerated() {
            let column = columnOf[index]
            if column < 0 { continue }
            let empty = field.bytes.count() == 0
            switch column {
            case 0:
                if empty { throw FieldProblem(column: field.column, reason: "time is empty") }
                guard let ms = field.bytes.withBytes(in: record, { Timestamp.parse($0) }) else {
                    throw FieldProblem(
                        column: field.column,
                        reason:
                            "bad time \"\(field.bytes.string(in: record))\": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds"
                    )
                }
                parsed.time = ms
            case 1:
                if empty { throw FieldProblem(column: field.column, reason: "profile is empty") }
                parsed.profile = field.bytes
            case 2:
                let text = field.bytes.string(in: record)
                guard let type = EventType(name: text) else {
                    throw FieldProblem(
                        column: field.column, reason: "unknown type \"\(text)\": expected view, click or conversion")
                }
                parsed.type = type
            case 3:
                if !empty { parsed.touchpoint = field.bytes }
            default:
                if empty { break }
                let text = field.bytes.string(in: record)
                guard Self.isJSONNumber(text), let value = Double(text), value.isFinite else {
                    throw FieldProblem(column: field.column, reason: "value \"\(text)\" is not a finite number")
                }
                parsed.value = value
            }
        }
        do {
            try parsed.append(to: &batch, line: record)
        } catch {
            throw error
        }
    }

    private static func isJSONNumber(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        if bytes.first == UInt8(ascii: "-") { bytes.removeFirst() }
        guard let first = bytes.first, first &- 48 < 10 else { return false }
        return bytes.allSatisfy {
            $0 &- 48 < 10 || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E")
                || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-")
        }
    }

    struct Field {
        var bytes: FieldBytes
        /// 1-based byte position of the field in the record.
        var column: Int
    }

    /// Splits a record into fields, unquoting quoted ones and checking UTF-8.
    static func split(_ record: UnsafeRawBufferPointer) throws(FieldProblem) -> [Field] {
        if !isValidUTF8(record) {
            throw FieldProblem(column: firstInvalidUTF8(record), reason: "invalid UTF-8")
        }
        var fields: [Field] = []
        var i = 0
        while true {
            let start = i
            if i < record.count && record[i] == UInt8(ascii: "\"") {
                i += 1
                var out: [UInt8] = []
                var closed = false
                while i < record.count {
                    if record[i] == UInt8(ascii: "\"") {
                        if i + 1 < record.count && record[i + 1] == UInt8(ascii: "\"") {
                            out.append(UInt8(ascii: "\""))
                            i += 2
                            continue
                        }
                        i += 1
                        closed = true
                        break
                    }
                    out.append(record[i])
                    i += 1
                }
                guard closed else { throw FieldProblem(column: start + 1, reason: "unterminated quoted field") }
                guard i == record.count || record[i] == UInt8(ascii: ",") else {
                    throw FieldProblem(column: i + 1, reason: "unexpected character after a closing quote")
                }
                fields.append(Field(bytes: .owned(out), column: start + 1))
            } else {
                while i < record.count && record[i] != UInt8(ascii: ",") {
                    if record[i] == UInt8(ascii: "\"") {
                        throw FieldProblem(column: i + 1, reason: "quote inside an unquoted field")
                    }
                    i += 1
                }
                fields.append(Field(bytes: .slice(start..<i), column: start + 1))
            }
            if i == record.count { return fields }
            i += 1  // the comma
        }
    }
}
