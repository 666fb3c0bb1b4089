import CTouchLogPlatform

/// Hints to the processor's cache, for loops that touch entries of tables far bigger than it.
enum Cache {
    /// Starts bringing the cache line at `address` in, without waiting for it (a hint: nothing is read). Defined in
    /// the module whose loops give it, once per element: from another module it was a call each time, which the
    /// optimizer did not inline.
    @inline(__always)
    static func prefetch(_ address: UnsafeRawPointer) {
        touchlog_prefetch(address)
    }
}
