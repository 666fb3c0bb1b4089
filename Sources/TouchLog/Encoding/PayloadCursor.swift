/// Reads what ``ByteWriter`` wrote straight from memory, checking every bound; the decoder's hot loops run on it.
///
/// The caller keeps the memory alive for the cursor's lifetime (it lives inside a `withUnsafeBytes` call).
struct PayloadCursor {
    let base: UnsafePointer<UInt8>
    let size: Int
    private(set) var position = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        // An empty buffer may have no address; any non-null pointer does then, since `size` is 0 and every read
        // is checked against it.
        base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 8)!
        size = bytes.count
    }

    var isAtEnd: Bool { position == size }
    var remaining: Int { size - position }

    func fail(_ reason: String) -> DecodeError { DecodeError(byte: position, reason: reason) }

    mutating func byte() throws(DecodeError) -> UInt8 {
        guard position < size else { throw fail("unexpected end") }
        defer { position += 1 }
        return base[position]
    }

    @inline(__always)
    mutating func varint() throws(DecodeError) -> UInt64 {
        // With 10 bytes left, no varint can run past the end: only its length needs checking.
        if size - position >= 10 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            var p = base + position
            while true {
                let b = p.pointee
                p += 1
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 { break }
                shift += 7
                if shift > 63 { return try varintSlow() }
            }
            if shift == 63 && (p - 1).pointee > 1 { return try varintSlow() }
            position = p - base
            return result
        }
        return try varintSlow()
    }

    private mutating func varintSlow() throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < size else { throw fail("unexpected end") }
            let b = base[position]
            position += 1
            if shift == 63 && b > 1 { throw fail("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw fail("varint too long") }
        }
    }

    /// Reads a varint that must be at most `max`; `what` names it in the error (built only on failure).
    @inline(__always)
    mutating func count(max: Int, _ what: @autoclosure () -> String) throws(DecodeError) -> Int {
        let v = try varint()
        guard v <= UInt64(max) else { throw fail("\(what()) \(v) exceeds \(max)") }
        return Int(v)
    }

    @inline(__always)
    mutating func zigzag() throws(DecodeError) -> Int64 {
        let v = try varint()
        return Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1)
    }

    /// Skips `n` bytes and returns where they start.
    @inline(__always)
    mutating func take(_ n: Int) throws(DecodeError) -> UnsafePointer<UInt8> {
        guard n >= 0, n <= remaining else { throw fail("needs \(n) bytes, \(remaining) left") }
        defer { position += n }
        return base + position
    }

    mutating func float64() throws(DecodeError) -> Double {
        let p = try take(8)
        return Double(bitPattern: UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)))
    }

    /// Reads `n` values of `width` (0...32) bits each, least significant bit first, into `out` (each value must
    /// fit its type); returns the largest value read (0 when none).
    mutating func unpack<T: FixedWidthInteger>(_ n: Int, width: Int, into buffer: UnsafeMutableBufferPointer<T>)
        throws(DecodeError) -> UInt64
    {
        precondition(buffer.count >= n)
        guard n > 0 else { return 0 }
        let out = buffer.baseAddress!
        guard width > 0 else {
            out.update(repeating: 0, count: n)
            return 0
        }
        let byteCount = (n * width + 7) / 8
        let packed = try take(byteCount)
        let mask = (UInt64(1) << UInt64(width)) - 1
        var largest: UInt64 = 0
        var bit = 0
        var i = 0
        // While 8 bytes can be loaded at the value's first byte, one unaligned load holds the whole value
        // (width ≤ 32 plus a shift of at most 7 bits).
        if byteCount >= 8 {
            let lastFast = byteCount - 8
            while i < n {
                let at = bit >> 3
                if at > lastFast { break }
                let word = UInt64(littleEndian: UnsafeRawPointer(packed + at).loadUnaligned(as: UInt64.self))
                let v = (word >> UInt64(bit & 7)) & mask
                largest = max(largest, v)
                out[i] = T(truncatingIfNeeded: v)
                bit += width
                i += 1
            }
        }
        while i < n {
            var word: UInt64 = 0
            let at = bit >> 3
            for k in 0..<min(8, byteCount - at) { word |= UInt64(packed[at + k]) << UInt64(8 * k) }
            let v = (word >> UInt64(bit & 7)) & mask
            largest = max(largest, v)
            out[i] = T(truncatingIfNeeded: v)
            bit += width
            i += 1
        }
        return largest
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body that throws only ``DecodeError`` (the standard one's `rethrows` loses the type).
    func withDecodedBytes<R>(_ body: (UnsafeRawBufferPointer) throws(DecodeError) -> R) throws(DecodeError) -> R {
        let result: Result<R, DecodeError> = withUnsafeBytes { raw in
            do throws(DecodeError) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}

extension Array {
    /// `withUnsafeBufferPointer` for a body that throws only ``DecodeError``.
    func withDecodedBuffer<R>(_ body: (UnsafeBufferPointer<Element>) throws(DecodeError) -> R) throws(DecodeError) -> R
    {
        let result: Result<R, DecodeError> = withUnsafeBufferPointer { buffer in
            do throws(DecodeError) { return .success(try body(buffer)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
