/// Writes events as JSON Lines, the output of `replay` (valid `append` input).
///
/// `{"offset":0,"recorded":"…","time":"…","profile":"…","type":"click","touchpoint":"…","value":59.9}`; strings are
/// escaped per RFC 8259 (`"`, `\`, control characters), other characters written as UTF-8. An erased profile's event
/// (format 3; an empty profile) has `"profile":null,"erased":true`: such a line is not valid `append` input.
public enum EventJSON {
    /// Appends the line for event `index` of `block` (with its newline) to `out`.
    package static func appendLine(_ block: DecodedBlock, _ index: Int, to out: inout [UInt8]) {
        // (Read through `block.events` each time: a local copy of the batch would retain and release its arrays per line.)
        appendLine(
            offset: block.firstOffset + UInt64(index), recorded: block.recorded, time: block.events.times[index],
            profile: block.events.profileBytes(at: index), type: block.events.type(at: index),
            touchpoint: block.events.touchpointBytes(at: index), value: block.events.value(at: index), to: &out)
    }

    /// Appends the line for `event` (with its newline) to `out`.
    public static func appendLine(_ event: StoredEvent, to out: inout [UInt8]) {
        appendLine(
            offset: event.offset, recorded: event.recorded, time: event.event.time, profile: event.event.profile.utf8,
            type: event.event.type, touchpoint: event.event.touchpoint?.utf8, value: event.event.value, to: &out)
    }

    /// Appends event `index` of `batch` as a line of `append` input: no offset or recorded time, which the store
    /// that appends it gives.
    package static func appendInputLine(_ batch: EventBatch, _ index: Int, to out: inout [UInt8]) {
        appendLine(
            offset: nil, recorded: nil, time: batch.times[index], profile: batch.profileBytes(at: index),
            type: batch.type(at: index),
            touchpoint: batch.touchpointBytes(at: index), value: batch.value(at: index), to: &out)
    }

    private static func appendLine<Profile: Collection<UInt8>, Touchpoint: Collection<UInt8>>(
        offset: UInt64?, recorded: Int64?, time: Int64, profile: Profile, type: EventType, touchpoint: Touchpoint?,
        value: Double?,
        to out: inout [UInt8]
    ) {
        if let offset, let recorded {
            append(#"{"offset":"#, to: &out)
            appendDecimal(offset, to: &out)
            append(#","recorded":""#, to: &out)
            Timestamp.append(recorded, to: &out)
            append(#"","time":""#, to: &out)
        } else {
            append(#"{"time":""#, to: &out)
        }
        Timestamp.append(time, to: &out)
        if profile.isEmpty {
            append(#"","profile":null,"erased":true"#, to: &out)
        } else {
            append(#"","profile":"#, to: &out)
            appendString(profile, to: &out)
        }
        append(#","type":""#, to: &out)
        append(type.staticName, to: &out)
        out.append(UInt8(ascii: "\""))
        if let touchpoint {
            append(#","touchpoint":"#, to: &out)
            appendString(touchpoint, to: &out)
        }
        if let value {
            append(#","value":"#, to: &out)
            out.append(contentsOf: formatNumber(value).utf8)
        }
        append("}\n", to: &out)
    }

    /// Appends the bytes of a literal (a static string's bytes are copied, with no string or array in between).
    @inline(__always)
    private static func append(_ literal: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends the decimal digits of `value` (without building a `String`).
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var v = value
            var start = 20
            repeat {
                start -= 1
                digits[start] = UInt8(truncatingIfNeeded: 48 + v % 10)
                v /= 10
            } while v > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    /// A JSON number for a finite double: integers without a fraction, others in Swift's shortest round-trip form.
    public static func formatNumber(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Appends `bytes` (valid UTF-8) as a JSON string.
    public static func appendString<C: Collection>(_ bytes: C, to out: inout [UInt8]) where C.Element == UInt8 {
        if bytes.withContiguousStorageIfAvailable({ appendString($0, to: &out) }) != nil { return }
        appendString(Array(bytes), to: &out)
    }

    /// Appends `string` as a JSON string (quoted, escaped).
    public static func appendString(_ string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { appendString($0, to: &out) }
    }

    /// Appends `bytes` (UTF-8) as a JSON string: runs that need no escape are copied whole.
    public static func appendString(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var run = 0
        for i in 0..<bytes.count {
            let byte = bytes[i]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
            run = i + 1
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            default:
                let digits = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 15)])
            }
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
        out.append(UInt8(ascii: "\""))
    }
}
