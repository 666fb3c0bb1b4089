/// Sorts `keys` ascending and moves `values` with them; stable (equal keys keep their order).
///
/// A least-significant-byte-first radix sort: one pass finds the byte positions where keys differ (sort keys of
/// identifiers share leading bytes such as `p-`, small integers their high bytes), one counts those positions'
/// histograms, then one scatter pass per such position. Short inputs use a comparison sort.
func radixSort(keys: inout [UInt64], values: inout [Int]) {
    precondition(keys.count == values.count)
    let n = keys.count
    if n < 64 {
        let sorted = zip(keys, values).enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }
        keys = sorted.map(\.element.0)
        values = sorted.map(\.element.1)
        return
    }
    // Only the byte positions where some keys differ need a pass (and a histogram).
    var all: UInt64 = 0
    var common: UInt64 = .max
    for key in keys {
        all |= key
        common &= key
    }
    let varying = (0..<8).filter { (all ^ common) >> UInt64($0 << 3) & 0xFF != 0 }
    var counts = [Int](repeating: 0, count: varying.count << 8)
    keys.withUnsafeBufferPointer { keys in
        counts.withUnsafeMutableBufferPointer { counts in
            for key in keys {
                for (slot, position) in varying.enumerated() {
                    counts[slot << 8 | Int(truncatingIfNeeded: key >> UInt64(position << 3)) & 0xFF] += 1
                }
            }
        }
    }
    var spareKeys = [UInt64](repeating: 0, count: n)
    var spareValues = [Int](repeating: 0, count: n)
    var next = [Int](repeating: 0, count: 256)
    for (slot, position) in varying.enumerated() {
        let histogram = counts[(slot << 8)..<((slot + 1) << 8)]
        var start = 0
        for (digit, count) in histogram.enumerated() {
            next[digit] = start
            start += count
        }
        let shift = UInt64(position << 3)
        keys.withUnsafeBufferPointer { keys in
            values.withUnsafeBufferPointer { values in
                spareKeys.withUnsafeMutableBufferPointer { toKeys in
                    spareValues.withUnsafeMutableBufferPointer { toValues in
                        next.withUnsafeMutableBufferPointer { next in
                            scatter(keys, values, into: toKeys, toValues, next: next, shift: shift, mask: 0xFF)
                        }
                    }
                }
            }
        }
        swap(&keys, &spareKeys)
        swap(&values, &spareValues)
    }
}

/// Sorts `values` by strings whose first 8 bytes, as big-endian numbers, are `keys` (``StringTable/sortKey(_:)``):
/// by the keys first (``radixSort(keys:values:)``), then each run of equal keys (strings sharing their first 8
/// bytes) by `precedes`, which compares the whole strings' bytes.
func sortByPrefixKeys(_ keys: inout [UInt64], values: inout [Int], runsBy precedes: (Int, Int) -> Bool) {
    radixSort(keys: &keys, values: &values)
    var runStart = 0
    for k in 1...keys.count where k == keys.count || keys[k] != keys[runStart] {
        if k - runStart > 1 { values[runStart..<k].sort(by: precedes) }
        runStart = k
    }
}

/// The indices of `keys` in ascending order of their keys, equal keys in index order (a stable sort's permutation),
/// by a least-significant-digit-first radix sort of 11-bit digits: at most three passes over 12 bytes an element,
/// where ``radixSort(keys:values:)`` of 64-bit keys with the same range takes four over 16 (a block's times less
/// its first, as layout 3 orders them).
func stableOrder(of keys: [UInt32]) -> [UInt32] {
    let n = keys.count
    var keys = keys
    var order = [UInt32](unsafeUninitializedCapacity: n) { order, initialized in
        for i in 0..<n { order[i] = UInt32(truncatingIfNeeded: i) }
        initialized = n
    }
    let largest = keys.max() ?? 0
    var spareKeys = [UInt32](repeating: 0, count: n)
    var spareOrder = [UInt32](repeating: 0, count: n)
    var counts = [Int](repeating: 0, count: 1 << 11)
    var shift: UInt32 = 0
    while shift < 32 && (shift == 0 || largest >> shift != 0) {
        for k in counts.indices { counts[k] = 0 }
        keys.withUnsafeBufferPointer { keys in
            order.withUnsafeBufferPointer { order in
                spareKeys.withUnsafeMutableBufferPointer { toKeys in
                    spareOrder.withUnsafeMutableBufferPointer { toOrder in
                        counts.withUnsafeMutableBufferPointer { counts in
                            for key in keys { counts[Int((key >> shift) & 0x7FF)] += 1 }
                            var start = 0
                            for digit in 0..<counts.count {
                                let count = counts[digit]
                                counts[digit] = start
                                start += count
                            }
                            scatter(keys, order, into: toKeys, toOrder, next: counts, shift: shift, mask: 0x7FF)
                        }
                    }
                }
            }
        }
        swap(&keys, &spareKeys)
        swap(&order, &spareOrder)
        shift += 11
    }
    return order
}

/// One stable pass of a least-significant-digit-first radix sort: each key, with its value, goes to the next free
/// slot of its digit `(key >> shift) & mask`, `next[digit]` being that slot (moved on as it fills).
@inline(__always)
private func scatter<Key: FixedWidthInteger, Value>(
    _ keys: UnsafeBufferPointer<Key>, _ values: UnsafeBufferPointer<Value>,
    into toKeys: UnsafeMutableBufferPointer<Key>,
    _ toValues: UnsafeMutableBufferPointer<Value>, next: UnsafeMutableBufferPointer<Int>, shift: some BinaryInteger,
    mask: Key
) {
    for i in 0..<keys.count {
        let key = keys[i]
        let digit = Int(truncatingIfNeeded: (key >> shift) & mask)
        let at = next[digit]
        next[digit] = at + 1
        toKeys[at] = key
        toValues[at] = values[i]
    }
}
