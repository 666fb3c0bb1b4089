/// Little-endian fixed-width integers in byte arrays, used by the header formats (the log's here, the key file's in
/// the TouchLog module).
extension Array where Element == UInt8 {
    package mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    package func littleEndian<T: FixedWidthInteger>(at index: Int, as: T.Type = T.self) -> T {
        var value = T.zero
        for i in 0..<MemoryLayout<T>.size {
            value |= T(truncatingIfNeeded: self[index + i]) << (8 * i)
        }
        return value
    }
}

extension ArraySlice where Element == UInt8 {
    package func littleEndian<T: FixedWidthInteger>(at index: Int, as: T.Type = T.self) -> T {
        var value = T.zero
        let base = startIndex + index
        for i in 0..<MemoryLayout<T>.size {
            value |= T(truncatingIfNeeded: self[base + i]) << (8 * i)
        }
        return value
    }
}
