import TouchLogStorage

/// Event and recorded times: RFC 3339 and epoch milliseconds in, RFC 3339 UTC with milliseconds out.
public enum Timestamp {
    /// Parses an RFC 3339 date-time (any offset; `T`, `t` or a space between date and time; fractional seconds
    /// truncated to the millisecond) or an integer of epoch milliseconds. Nil when it is neither.
    public static func parse(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// Parses bytes as ``parse(_:)-(String)`` does.
    static func parse(_ s: UnsafeRawBufferPointer) -> Int64? {
        if let ms = parseEpochMilliseconds(s) { return ms }
        return parseRFC3339(s)
    }

    static func parseEpochMilliseconds(_ s: UnsafeRawBufferPointer) -> Int64? {
        guard !s.isEmpty else { return nil }
        var i = 0
        var negative = false
        if s[0] == UInt8(ascii: "-") {
            negative = true
            i = 1
        }
        guard i < s.count, s.count - i <= 18 else { return nil }
        var value: Int64 = 0
        while i < s.count {
            let d = s[i] &- 48
            guard d < 10 else { return nil }
            value = value * 10 + Int64(d)
            i += 1
        }
        let ms = negative ? -value : value
        return ms >= EventLimits.minTime && ms <= EventLimits.maxTime ? ms : nil
    }

    static func parseRFC3339(_ s: UnsafeRawBufferPointer) -> Int64? {
        parseCanonical(s) ?? parseRFC3339ByteByByte(s)
    }

    /// Any RFC 3339 date-time ``parse(_:)-(String)`` takes, read a byte at a time.
    static func parseRFC3339ByteByByte(_ s: UnsafeRawBufferPointer) -> Int64? {
        // YYYY-MM-DDTHH:MM:SS[.f+](Z|+HH:MM|-HH:MM)
        guard s.count >= 20 else { return nil }
        func digits(_ at: Int, _ n: Int) -> Int? {
            var v = 0
            for k in at..<(at + n) {
                let d = s[k] &- 48
                guard d < 10 else { return nil }
                v = v * 10 + Int(d)
            }
            return v
        }
        guard let year = digits(0, 4), s[4] == UInt8(ascii: "-"), let month = digits(5, 2), s[7] == UInt8(ascii: "-"),
            let day = digits(8, 2), [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(s[10]),
            let hour = digits(11, 2), s[13] == UInt8(ascii: ":"), let minute = digits(14, 2),
            s[16] == UInt8(ascii: ":"),
            let second = digits(17, 2)
        else { return nil }
        var i = 19
        var millis = 0
        if i < s.count && s[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < s.count, s[i] &- 48 < 10 {
                if i - start < 3 { millis = millis * 10 + Int(s[i] - 48) }
                i += 1
            }
            guard i > start else { return nil }
            for _ in min(3, i - start)..<3 { millis *= 10 }
        }
        guard i < s.count else { return nil }
        var offsetMinutes = 0
        switch s[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard s.count - i == 6, let oh = digits(i + 1, 2), s[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                oh < 24, om < 60
            else { return nil }
            offsetMinutes = (oh * 60 + om) * (s[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            return nil
        }
        guard i == s.count else { return nil }
        return milliseconds(
            year: year, month: month, day: day, hour: hour, minute: minute, second: second, millis: millis,
            offsetMinutes: offsetMinutes)
    }

    /// The epoch milliseconds of a date-time read from text, with its offset from UTC in minutes; nil when it is no
    /// date (month 1–12, a day of that month), no time of day (hours below 24, minutes and seconds below 60), or
    /// outside years 0000–9999.
    private static func milliseconds(
        year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millis: Int, offsetMinutes: Int
    ) -> Int64? {
        guard month >= 1, month <= 12, day >= 1, day <= daysIn(month: month, year: year), hour < 24, minute < 60,
            second < 60
        else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        let ms = seconds * 1000 + Int64(millis)
        return ms >= EventLimits.minTime && ms <= EventLimits.maxTime ? ms : nil
    }

    /// The form touchlog writes and most inputs carry, `YYYY-MM-DDTHH:MM:SS.mmmZ`, checked and read eight bytes at
    /// a time; nil for anything else, which ``parseRFC3339ByteByByte(_:)`` then reads (or refuses) byte by byte.
    @inline(__always)
    static func parseCanonical(_ s: UnsafeRawBufferPointer) -> Int64? {
        guard s.count == 24 else { return nil }
        let a = UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 0, as: UInt64.self))  // YYYY-MM-
        let b = UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8, as: UInt64.self))  // DDTHH:MM
        let c = UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 16, as: UInt64.self))  // :SS.mmmZ
        // Byte k of a word is bits 8k..<8k+8: the separators where they belong, digits everywhere else.
        guard a & 0xFF00_00FF_0000_0000 == 0x2D00_002D_0000_0000, b & 0x0000_FF00_00FF_0000 == 0x0000_3A00_0054_0000,
            c & 0xFF00_0000_FF00_00FF == 0x5A00_0000_2E00_003A
        else { return nil }
        let aDigits: UInt64 = 0x00FF_FF00_FFFF_FFFF
        let bDigits: UInt64 = 0xFFFF_00FF_FF00_FFFF
        let cDigits: UInt64 = 0x00FF_FFFF_00FF_FF00
        /// Whether every byte `mask` covers is an ASCII digit: its high nibble is 3, and still 3 after adding 6.
        func digits(_ word: UInt64, _ mask: UInt64) -> Bool {
            let high = 0xF0F0_F0F0_F0F0_F0F0 & mask
            let three = 0x3030_3030_3030_3030 & mask
            return word & high == three && (word &+ (0x0606_0606_0606_0606 & mask)) & high == three
        }
        guard digits(a, aDigits), digits(b, bDigits), digits(c, cDigits) else { return nil }
        let da = a &- (0x3030_3030_3030_3030 & aDigits)
        let db = b &- (0x3030_3030_3030_3030 & bDigits)
        let dc = c &- (0x3030_3030_3030_3030 & cDigits)
        func at(_ word: UInt64, _ k: Int) -> Int { Int(truncatingIfNeeded: (word >> (8 * k)) & 0xFF) }
        let year = at(da, 0) * 1000 + at(da, 1) * 100 + at(da, 2) * 10 + at(da, 3)
        let month = at(da, 5) * 10 + at(da, 6)
        let day = at(db, 0) * 10 + at(db, 1)
        let hour = at(db, 3) * 10 + at(db, 4)
        let minute = at(db, 6) * 10 + at(db, 7)
        let second = at(dc, 1) * 10 + at(dc, 2)
        let millis = at(dc, 4) * 100 + at(dc, 5) * 10 + at(dc, 6)
        return milliseconds(
            year: year, month: month, day: day, hour: hour, minute: minute, second: second, millis: millis,
            offsetMinutes: 0)
    }

    /// The current real-time clock in epoch milliseconds.
    public static func now() -> Int64 { LogOptions.systemClock() }

    /// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    public static func format(_ ms: Int64) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(24)
        append(ms, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the RFC 3339 form of `ms` to `out` (24 bytes), written into a buffer of its own first and appended once.
    static func append(_ ms: Int64, to out: inout [UInt8]) {
        let (daysSigned, msOfDay) = ms.quotientAndRemainder(dividingBy: 86_400_000)
        var days = daysSigned
        var rem = msOfDay
        if rem < 0 {
            rem += 86_400_000
            days -= 1
        }
        let (y, m, d) = civilFromDays(Int(days))
        let r = Int(rem)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { text in
            // "YYYY-MM-DDTHH:MM:SS.mmmZ": each field's digits from the last, at a fixed place.
            func put(_ value: Int, at end: Int, digits: Int) {
                var v = value
                for k in stride(from: end - 1, through: end - digits, by: -1) {
                    text[k] = UInt8(truncatingIfNeeded: 48 + v % 10)
                    v /= 10
                }
            }
            put(y, at: 4, digits: 4)
            text[4] = UInt8(ascii: "-")
            put(m, at: 7, digits: 2)
            text[7] = UInt8(ascii: "-")
            put(d, at: 10, digits: 2)
            text[10] = UInt8(ascii: "T")
            put(r / 3_600_000, at: 13, digits: 2)
            text[13] = UInt8(ascii: ":")
            put(r / 60_000 % 60, at: 16, digits: 2)
            text[16] = UInt8(ascii: ":")
            put(r / 1000 % 60, at: 19, digits: 2)
            text[19] = UInt8(ascii: ".")
            put(r % 1000, at: 23, digits: 3)
            text[23] = UInt8(ascii: "Z")
            out.append(contentsOf: UnsafeBufferPointer(text))
        }
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
