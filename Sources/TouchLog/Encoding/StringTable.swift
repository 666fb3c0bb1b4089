/// A list of byte strings stored end to end in one buffer, with an optional hash index for interning.
///
/// Profiles and touchpoints are held this way in batches and decoded blocks, so that events carry a
/// 32-bit id instead of an allocated string.
public struct StringTable: Sendable {
    /// All strings' bytes, one after another.
    var bytes: [UInt8] = []
    /// `ends[i]` is where string `i` ends in `bytes`; it starts where string `i - 1` ends.
    var ends: [UInt32] = []
    /// Open-addressing hash index of string ids + 1 (0 = empty slot); built by ``intern(_:)``.
    private var slots: [UInt32] = []

    public init() {}

    /// How many strings the table holds.
    public var count: Int { ends.count }

    func range(_ id: Int) -> Range<Int> {
        (id == 0 ? 0 : Int(ends[id - 1]))..<Int(ends[id])
    }

    /// The bytes of string `id`.
    public subscript(id: Int) -> ArraySlice<UInt8> { bytes[range(id)] }

    /// String `id` decoded from UTF-8 (the table only holds valid UTF-8).
    public func string(_ id: Int) -> String { String(decoding: self[id], as: UTF8.self) }

    /// Removes every string, keeping the storage for reuse.
    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        slots.removeAll()
    }

    /// Appends a string without looking for an equal one.
    mutating func append<C: Collection>(_ string: C) where C.Element == UInt8 {
        bytes.append(contentsOf: string)
        ends.append(UInt32(bytes.count))
    }

    /// The id of `string`, adding it when new.
    mutating func intern(_ string: UnsafeRawBufferPointer) -> UInt32 {
        if slots.count < (count + 1) * 2 { rehash(capacity: max(64, (count + 1) * 4)) }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: Self.hash(string)) & mask
        while true {
            let entry = slots[slot]
            if entry == 0 {
                append(string)
                slots[slot] = UInt32(count)
                return UInt32(count - 1)
            }
            if equals(Int(entry - 1), string) { return entry - 1 }
            slot = (slot + 1) & mask
        }
    }

    /// Interns every string of `other` (a block's dictionary) and returns, for each of its ids, the id here.
    mutating func internAll(_ other: StringTable) -> [UInt32] {
        var ids = [UInt32](repeating: 0, count: other.count)
        other.bytes.withUnsafeBytes { all in
            for id in 0..<other.count {
                ids[id] = intern(UnsafeRawBufferPointer(rebasing: all[other.range(id)]))
            }
        }
        return ids
    }

    /// The id of `string`, or nil when the table does not hold it (a linear search when there is no hash index).
    public func firstIndex(of string: [UInt8]) -> Int? {
        string.withUnsafeBytes { raw in
            (0..<count).first { equals($0, raw) }
        }
    }

    private func equals(_ id: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        let r = range(id)
        guard r.count == other.count else { return false }
        return bytes.withUnsafeBytes { mine in
            // Both ranges are inside their buffers: `r` comes from `ends`, `other` is the caller's.
            memcmp(mine.baseAddress! + r.lowerBound, other.baseAddress!, r.count) == 0
        }
    }

    private mutating func rehash(capacity: Int) {
        var size = 64
        while size < capacity { size <<= 1 }
        slots = [UInt32](repeating: 0, count: size)
        let mask = size - 1
        bytes.withUnsafeBytes { all in
            for id in 0..<count {
                let r = range(id)
                var slot = Int(truncatingIfNeeded: Self.hash(UnsafeRawBufferPointer(rebasing: all[r]))) & mask
                while slots[slot] != 0 { slot = (slot + 1) & mask }
                slots[slot] = UInt32(id + 1)
            }
        }
    }

    /// FNV-1a over the bytes, finished with a multiply-xorshift so the low bits mix well.
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            h = (h ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        h ^= h >> 32
        h = h &* 0x9E37_79B9_7F4A_7C15
        return h ^ (h >> 29)
    }
}

/// Orders byte strings as `memcmp` does, shorter first on a common prefix: the order of profiles in every output.
@inlinable
func bytesPrecede(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    let common = min(a.count, b.count)
    if common > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, common)
        if c != 0 { return c < 0 }
    }
    return a.count < b.count
}

import Glibc
