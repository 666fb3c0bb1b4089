/// Buffers reused from one block to the next (decoding, reading, decompressing).
extension Array where Element: BitwiseCopyable {
    /// Makes the array `n` elements long, reusing its storage when it is already big enough (the contents are
    /// about to be overwritten, so they are whatever is cheapest).
    @inlinable
    package mutating func resize(to n: Int, filler: Element) {
        if count > n {
            removeLast(count - n)
        } else if count < n {
            append(contentsOf: repeatElement(filler, count: n - count))
        }
    }
}
