import TouchLogStorage

/// An array of `count` elements that `fill` initializes, with room for `spare` more; a large one is backed by
/// transparent huge pages where the system allows (``adviseHugePages(_:)``), so that filling it takes few page
/// faults. Snapshot columns and a query's per-profile arrays are tens of megabytes, filled once.
func largeArray<T: BitwiseCopyable>(count: Int, spare: Int = 0, _ fill: (UnsafeMutableBufferPointer<T>) -> Void) -> [T]
{
    [T](unsafeUninitializedCapacity: count + spare) { buffer, initialized in
        adviseHugePages(UnsafeMutableRawBufferPointer(buffer))
        fill(UnsafeMutableBufferPointer(rebasing: buffer[..<count]))
        initialized = count
    }
}

/// ``largeArray(count:spare:_:)`` with every element `value`.
func largeArray<T: BitwiseCopyable>(repeating value: T, count: Int) -> [T] {
    largeArray(count: count) { $0.initialize(repeating: value) }
}
