/// Appends varints, zigzag integers and bit-packed columns to a byte array (the block payload encoding).
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ value: Int) { varint(UInt64(value)) }

    mutating func zigzag(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func raw<C: Collection>(_ data: C) where C.Element == UInt8 { bytes.append(contentsOf: data) }

    mutating func float64(_ value: Double) {
        Swift.withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Writes `values` with `width` bits each, least significant bit first, padded to a whole byte.
    mutating func bitPacked(_ values: some Sequence<UInt32>, width: Int) {
        guard width > 0 else { return }
        var accumulator: UInt64 = 0
        var filled = 0
        for value in values {
            accumulator |= UInt64(value) << filled
            filled += width
            while filled >= 8 {
                bytes.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator >>= 8
                filled -= 8
            }
        }
        if filled > 0 { bytes.append(UInt8(truncatingIfNeeded: accumulator)) }
    }
}

/// The number of bits needed to write values up to `maximum`.
func bitWidth(_ maximum: UInt32) -> Int { maximum == 0 ? 0 : 32 - maximum.leadingZeroBitCount }

/// A malformed payload: where and what.
struct DecodeError: Error, CustomStringConvertible {
    var byte: Int
    var reason: String
    var description: String { "payload byte \(byte): \(reason)" }
}

/// Reads what ``ByteWriter`` wrote, checking every bound.
struct ByteReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }

    func fail(_ reason: String) -> DecodeError { DecodeError(byte: position, reason: reason) }

    mutating func byte() throws(DecodeError) -> UInt8 {
        guard position < bytes.count else { throw fail("unexpected end") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func varint() throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            if shift == 63 && b > 1 { throw fail("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw fail("varint too long") }
        }
    }

    /// Reads a varint that must be at most `max`; `what` names it in the error (built only on failure).
    mutating func count(max: Int, _ what: @autoclosure () -> String) throws(DecodeError) -> Int {
        let v = try varint()
        guard v <= UInt64(max) else { throw fail("\(what()) \(v) exceeds \(max)") }
        return Int(v)
    }

    mutating func zigzag() throws(DecodeError) -> Int64 {
        let v = try varint()
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    mutating func take(_ n: Int) throws(DecodeError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - position else { throw fail("needs \(n) bytes, \(bytes.count - position) left") }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func float64() throws(DecodeError) -> Double {
        let b = try take(8)
        var bits: UInt64 = 0
        for (i, byte) in b.enumerated() { bits |= UInt64(byte) << (8 * i) }
        return Double(bitPattern: bits)
    }

    /// Reads `count` values of `width` bits each (see ``ByteWriter/bitPacked(_:width:)``).
    mutating func bitPacked(count: Int, width: Int) throws(DecodeError) -> [UInt32] {
        guard width > 0 else { return [UInt32](repeating: 0, count: count) }
        let byteCount = (count * width + 7) / 8
        let packed = try take(byteCount)
        var result = [UInt32](repeating: 0, count: count)
        var accumulator: UInt64 = 0
        var available = 0
        var index = packed.startIndex
        let mask: UInt64 = (1 << UInt64(width)) - 1
        for i in 0..<count {
            while available < width {
                accumulator |= UInt64(packed[index]) << available
                index += 1
                available += 8
            }
            result[i] = UInt32(truncatingIfNeeded: accumulator & mask)
            accumulator >>= UInt64(width)
            available -= width
        }
        return result
    }
}
