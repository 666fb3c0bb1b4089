import CTouchLogXXHash

/// XXH3 (64-bit), the fast non-cryptographic checksum of format-2 block summaries and of the sections queries read
/// on their own. The only code in the project that hands pointers to libxxhash. (SHA-256 block hashes still cover
/// every byte of every block; XXH3 lets a reader check the few kilobytes it reads without hashing the whole block.)
package enum XXH3 {
    /// The XXH3 64-bit hash of `bytes` (seed 0).
    package static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        // libxxhash reads exactly `count` bytes from the start; an empty input may have a nil base.
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    /// The XXH3 64-bit hash of `bytes` (seed 0).
    package static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.withUnsafeBytes { hash($0) }
    }
}
