import TouchLogStorage

/// Parses one JSON Lines event: an object with `time`, `profile`, `type`, optional `touchpoint` and `value`;
/// other fields are skipped. Works on the line's bytes directly (no Foundation, no allocation unless a
/// string has escapes).
struct JSONEventParser {
    private let line: UnsafeRawBufferPointer
    private var i = 0

    /// Parses `line` and appends its event to `batch`, or throws what is wrong and where.
    static func parse(_ line: UnsafeRawBufferPointer, into batch: inout EventBatch) throws(FieldProblem) {
        var parser = JSONEventParser(line: line)
        let fields = try parser.parseObject()
        try fields.append(to: &batch, line: line)
    }

    private init(line: UnsafeRawBufferPointer) { self.line = line }

    /// Decodes the JSON string whose opening quote is at `start` in `text` (escapes, surrogates, UTF-8 checked);
    /// returns its bytes and the index just past its closing quote.
    static func string(in text: UnsafeRawBufferPointer, at start: Int) throws(FieldProblem) -> (
        bytes: [UInt8], end: Int
    ) {
        var parser = JSONEventParser(line: text)
        parser.i = start
        let field = try parser.parseString()
        return (field.withBytes(in: text) { Array($0) }, parser.i)
    }

    private func problem(_ reason: String, at position: Int? = nil) -> FieldProblem {
        FieldProblem(column: (position ?? i) + 1, reason: reason)
    }

    private mutating func skipSpace() {
        while i < line.count {
            switch line[i] {
            case 0x20, 0x09, 0x0D, 0x0A: i += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(FieldProblem) {
        skipSpace()
        guard i < line.count else { throw problem("unexpected end of line, expected \(what)") }
        guard line[i] == byte else { throw problem("expected \(what)") }
        i += 1
    }

    private mutating func parseObject() throws(FieldProblem) -> ParsedFields {
        try expect(UInt8(ascii: "{"), "'{' (each line must be one JSON object)")
        var fields = ParsedFields()
        var seen: UInt8 = 0
        skipSpace()
        if i < line.count && line[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipSpace()
                let keyStart = i
                guard i < line.count, line[i] == UInt8(ascii: "\"") else {
                    throw problem("expected a field name in double quotes")
                }
                let field: UInt8?
                if let known = Self.quotedKnownField(line, at: i) {
                    field = known.field
                    i += known.length
                } else {
                    let key = try parseString()
                    field = key.withBytes(in: line) { Self.knownField($0) }
                }
                try expect(UInt8(ascii: ":"), "':' after the field name")
                skipSpace()
                let valueStart = i
                if let field {
                    if seen & (1 << field) != 0 {
                        throw problem("duplicate field \"\(Self.fieldNames[Int(field)])\"", at: keyStart)
                    }
                    seen |= 1 << field
                    try parseKnown(field, into: &fields)
                    if field == 0 { fields.timeColumn = valueStart + 1 }
                } else {
                    try skipValue(depth: 0)
                }
                skipSpace()
                guard i < line.count else { throw problem("unexpected end of line inside the object") }
                if line[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if line[i] == UInt8(ascii: "}") {
                    i += 1
                    break
                }
                throw problem("expected ',' or '}'")
            }
        }
        skipSpace()
        if i < line.count { throw problem("unexpected text after the object") }
        return fields
    }

    private static let fieldNames = ["time", "profile", "type", "touchpoint", "value"]

    private static func knownField(_ key: UnsafeRawBufferPointer) -> UInt8? {
        if key.equals("time") { return 0 }
        if key.equals("profile") { return 1 }
        if key.equals("type") { return 2 }
        if key.equals("touchpoint") { return 3 }
        if key.equals("value") { return 4 }
        return nil
    }

    /// The known field whose name, quotes included and with no escapes, starts at `start` (its opening quote), and
    /// the quoted name's length; nil for any other key, or too near the line's end to load 12 bytes (then the key
    /// is parsed as a string). Compares whole words instead of decoding the key and comparing it with each name.
    @inline(__always)
    private static func quotedKnownField(_ line: UnsafeRawBufferPointer, at start: Int) -> (field: UInt8, length: Int)?
    {
        guard start + 12 <= line.count else { return nil }
        let word = UInt64(littleEndian: line.loadUnaligned(fromByteOffset: start, as: UInt64.self))
        let six = word & 0xFFFF_FFFF_FFFF
        if six == 0x2265_6D69_7422 { return (0, 6) }  // "time"
        if six == 0x2265_7079_7422 { return (2, 6) }  // "type"
        if word & 0xFF_FFFF_FFFF_FFFF == 0x22_6575_6C61_7622 { return (4, 7) }  // "value"
        if word == 0x656C_6966_6F72_7022 && line[start + 8] == UInt8(ascii: "\"") { return (1, 9) }  // "profile"
        // "touchpo, then int"
        if word == 0x6F70_6863_756F_7422
            && UInt32(littleEndian: line.loadUnaligned(fromByteOffset: start + 8, as: UInt32.self)) == 0x2274_6E69
        {
            return (3, 12)
        }
        return nil
    }

    /// The event type whose name, in quotes and with no escapes, starts at `start`, and the quoted name's length;
    /// nil when it is not one, or too near the line's end to load 12 bytes.
    @inline(__always)
    private static func quotedType(_ line: UnsafeRawBufferPointer, at start: Int) -> (type: EventType, length: Int)? {
        guard start + 12 <= line.count else { return nil }
        let word = UInt64(littleEndian: line.loadUnaligned(fromByteOffset: start, as: UInt64.self))
        if word & 0xFFFF_FFFF_FFFF == 0x2277_6569_7622 { return (.view, 6) }  // "view"
        if word & 0xFF_FFFF_FFFF_FFFF == 0x22_6B63_696C_6322 { return (.click, 7) }  // "click"
        // "convers, then ion"
        if word == 0x7372_6576_6E6F_6322
            && UInt32(littleEndian: line.loadUnaligned(fromByteOffset: start + 8, as: UInt32.self)) == 0x226E_6F69
        {
            return (.conversion, 12)
        }
        return nil
    }

    private mutating func parseKnown(_ field: UInt8, into fields: inout ParsedFields) throws(FieldProblem) {
        let start = i
        guard i < line.count else { throw problem("unexpected end of line, expected a value") }
        let c = line[i]
        let isString = c == UInt8(ascii: "\"")
        let isNull = c == UInt8(ascii: "n")
        switch field {
        case 0:  // time
            if isString {
                let text = try parseString()
                guard let ms = text.withBytes(in: line, { Timestamp.parse($0) }) else {
                    throw problem(
                        "bad time \"\(text.string(in: line))\": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds",
                        at: start)
                }
                fields.time = ms
            } else if c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) {
                let (range, integral) = try parseNumber()
                guard integral, let ms = Timestamp.parseEpochMilliseconds(UnsafeRawBufferPointer(rebasing: line[range]))
                else {
                    throw problem(
                        "bad time \(String(decoding: line[range], as: UTF8.self)): epoch milliseconds must be an integer within years 0000-9999",
                        at: start)
                }
                fields.time = ms
            } else {
                throw problem("time must be an RFC 3339 string or integer epoch milliseconds")
            }
        case 1, 3:  // profile, touchpoint
            let name = field == 1 ? "profile" : "touchpoint"
            if isNull && field == 3 {
                try literal("null")
                return
            }
            guard isString else { throw problem("\(name) must be a string") }
            let bytes = try parseString()
            if field == 1 { fields.profile = bytes } else { fields.touchpoint = bytes }
        case 2:  // type
            guard isString else { throw problem("type must be a string: view, click or conversion") }
            if let known = Self.quotedType(line, at: i) {
                fields.type = known.type
                i += known.length
                return
            }
            let text = try parseString()
            let type = text.withBytes(in: line) { raw -> EventType? in
                if raw.equals("view") { return .view }
                if raw.equals("click") { return .click }
                if raw.equals("conversion") { return .conversion }
                return nil
            }
            guard let type else {
                throw problem(
                    "unknown type \"\(text.string(in: line))\": expected view, click or conversion", at: start)
            }
            fields.type = type
        default:  // value
            if isNull {
                try literal("null")
                return
            }
            guard c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) else { throw problem("value must be a number") }
            let (range, _) = try parseNumber()
            guard let value = Double(String(decoding: line[range], as: UTF8.self)), value.isFinite else {
                throw problem("value \(String(decoding: line[range], as: UTF8.self)) is not a finite number", at: start)
            }
            fields.value = value
        }
    }

    private mutating func literal(_ word: StaticString) throws(FieldProblem) {
        let count = word.utf8CodeUnitCount
        let matches = i + count <= line.count && UnsafeRawBufferPointer(rebasing: line[i..<(i + count)]).equals(word)
        guard matches else { throw problem("invalid JSON value") }
        i += count
    }

    /// Parses a number per the JSON grammar; returns its bytes and whether it has no fraction or exponent.
    private mutating func parseNumber() throws(FieldProblem) -> (Range<Int>, Bool) {
        let start = i
        var integral = true
        if i < line.count && line[i] == UInt8(ascii: "-") { i += 1 }
        guard i < line.count, line[i] &- 48 < 10 else { throw problem("invalid number", at: start) }
        if line[i] == UInt8(ascii: "0") { i += 1 } else { while i < line.count && line[i] &- 48 < 10 { i += 1 } }
        if i < line.count && line[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            guard i < line.count, line[i] &- 48 < 10 else {
                throw problem("invalid number: digits expected after '.'", at: start)
            }
            while i < line.count && line[i] &- 48 < 10 { i += 1 }
        }
        if i < line.count && (line[i] == UInt8(ascii: "e") || line[i] == UInt8(ascii: "E")) {
            integral = false
            i += 1
            if i < line.count && (line[i] == UInt8(ascii: "+") || line[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < line.count, line[i] &- 48 < 10 else {
                throw problem("invalid number: digits expected in the exponent", at: start)
            }
            while i < line.count && line[i] &- 48 < 10 { i += 1 }
        }
        return (start..<i, integral)
    }

    /// Parses a string starting at its opening quote. Checks escapes, control characters and UTF-8.
    private mutating func parseString() throws(FieldProblem) -> FieldBytes {
        let open = i
        i += 1
        let start = i
        var sawHigh = false
        while i < line.count {
            // Eight bytes at a time up to the first quote, backslash, control character or non-ASCII byte.
            while i + 8 <= line.count {
                let attention = Self.attention(line.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                if attention == 0 {
                    i += 8
                    continue
                }
                i += attention.trailingZeroBitCount >> 3
                break
            }
            if i >= line.count { break }
            let c = line[i]
            if c == UInt8(ascii: "\"") {
                let range = start..<i
                i += 1
                if sawHigh { try checkUTF8(range) }
                return .slice(range)
            }
            if c == UInt8(ascii: "\\") { return try parseEscapedString(from: start) }
            if c < 0x20 { throw problem("control character in a string (escape it)") }
            if c >= 0x80 { sawHigh = true }
            i += 1
        }
        throw problem("unterminated string", at: open)
    }

    /// A mask whose lowest set bit is in the first byte of `word` (little-endian) that is `"`, `\`, below 0x20 or
    /// at least 0x80; 0 when there is none. (The zero-byte tests can also set bits above a true hit, never below.)
    @inline(__always)
    private static func attention(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func zeroBytes(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        let w = UInt64(littleEndian: word)
        return zeroBytes(w ^ (ones &* 0x22)) | zeroBytes(w ^ (ones &* 0x5C)) | ((w &- ones &* 0x20) & ~w & highs)
            | (w & highs)
    }

    private func checkUTF8(_ range: Range<Int>) throws(FieldProblem) {
        let bytes = UnsafeRawBufferPointer(rebasing: line[range])
        if !isValidUTF8(bytes) {
            throw problem("invalid UTF-8", at: range.lowerBound + firstInvalidUTF8(bytes) - 1)
        }
    }

    private mutating func parseEscapedString(from start: Int) throws(FieldProblem) -> FieldBytes {
        var out = Array(line[start..<i])
        var highFrom: Int? = out.contains(where: { $0 >= 0x80 }) ? start : nil
        while i < line.count {
            let c = line[i]
            if c == UInt8(ascii: "\"") {
                if let highFrom { try checkUTF8(highFrom..<i) }
                i += 1
                return .owned(out)
            }
            if c < 0x20 { throw problem("control character in a string (escape it)") }
            if c >= 0x80 { highFrom = highFrom ?? i }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            let escapeStart = i
            i += 1
            guard i < line.count else { break }
            switch line[i] {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(at: i + 1, escapeStart: escapeStart)
                i += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 6 < line.count, line[i + 1] == UInt8(ascii: "\\"), line[i + 2] == UInt8(ascii: "u") else {
                        throw problem("unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
                    }
                    let low = try hex4(at: i + 3, escapeStart: escapeStart)
                    guard (0xDC00..<0xE000).contains(low) else {
                        throw problem("unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw problem("unpaired UTF-16 surrogate in \\u escape", at: escapeStart)
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                throw problem("invalid escape in a string", at: escapeStart)
            }
            i += 1
        }
        throw problem("unterminated string", at: start - 1)
    }

    private func hex4(at position: Int, escapeStart: Int) throws(FieldProblem) -> UInt32 {
        guard position + 4 <= line.count else { throw problem("\\u escape needs 4 hex digits", at: escapeStart) }
        var v: UInt32 = 0
        for k in position..<(position + 4) {
            let c = line[k]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw problem("\\u escape needs 4 hex digits", at: escapeStart)
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Skips any JSON value (of a field touchlog does not use), checking its syntax.
    private mutating func skipValue(depth: Int) throws(FieldProblem) {
        guard depth < 64 else { throw problem("JSON nested too deeply") }
        skipSpace()
        guard i < line.count else { throw problem("unexpected end of line, expected a value") }
        switch line[i] {
        case UInt8(ascii: "\""): _ = try parseString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = line[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            let isObject = close == UInt8(ascii: "}")
            i += 1
            skipSpace()
            if i < line.count && line[i] == close {
                i += 1
                return
            }
            while true {
                if isObject {
                    skipSpace()
                    guard i < line.count, line[i] == UInt8(ascii: "\"") else {
                        throw problem("expected a field name in double quotes")
                    }
                    _ = try parseString()
                    try expect(UInt8(ascii: ":"), "':'")
                }
                try skipValue(depth: depth + 1)
                skipSpace()
                guard i < line.count else { throw problem("unexpected end of line inside a nested value") }
                if line[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if line[i] == close {
                    i += 1
                    return
                }
                throw problem("expected ',' or '\(Character(Unicode.Scalar(close)))'")
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default: _ = try parseNumber()
        }
    }
}

extension UnsafeRawBufferPointer {
    /// True when these bytes are exactly `literal`'s UTF-8 bytes.
    @inline(__always)
    func equals(_ literal: StaticString) -> Bool {
        // Both buffers are valid for `count` bytes: `literal` is a compile-time constant of that length.
        count == literal.utf8CodeUnitCount
            && (count == 0 || Memory.equal(baseAddress!, literal.utf8Start, count: count))
    }
}
