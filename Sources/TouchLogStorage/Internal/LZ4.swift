import CTouchLogLZ4

/// LZ4 block compression. The only code in the project that hands pointers to liblz4.
package enum LZ4 {
    /// Compresses `source` into a new array (the LZ4 block format, no frame).
    package static func compress(_ source: [UInt8]) -> [UInt8] {
        precondition(source.count <= Int(LZ4_MAX_INPUT_SIZE), "LZ4 input over its 2 GB limit")
        let bound = Int(LZ4_compressBound(Int32(source.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let written = source.withUnsafeBytes { src in
            output.withUnsafeMutableBytes { dst in
                // Both buffers are live for the call; `bound` is LZ4's own worst case for this input size.
                LZ4_compress_default(
                    src.baseAddress?.assumingMemoryBound(to: CChar.self),
                    dst.baseAddress!.assumingMemoryBound(to: CChar.self),
                    Int32(source.count), Int32(bound))
            }
        }
        precondition(written > 0 || source.isEmpty, "LZ4_compress_default failed within its own bound")
        output.removeSubrange(Int(written)...)
        return output
    }

    /// Decompresses `source` into exactly all of `output`; false when it does not yield exactly that many bytes.
    package static func decompress(_ source: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Bool
    {
        if output.isEmpty { return source.isEmpty }
        // liblz4 stays inside both buffers and reports malformed input with a negative result.
        let produced = LZ4_decompress_safe(
            source.baseAddress?.assumingMemoryBound(to: CChar.self),
            output.baseAddress!.assumingMemoryBound(to: CChar.self),
            Int32(source.count), Int32(output.count))
        return produced == Int32(output.count)
    }
}
