import TouchLogStorage

/// A list of byte strings stored end to end in one buffer, with an index for interning.
///
/// Profiles and touchpoints are held this way in batches and decoded blocks, so that events carry a
/// 32-bit id instead of an allocated string.
///
/// The index has two parts: a leading run of strings in ascending byte order (a table read from a snapshot),
/// searched by bisection, and a hash index over the strings after it. A table loaded with a million sorted
/// profiles so needs no hash index until new profiles arrive, and sorted lookups (a block's dictionary) walk it
/// in order.
package struct StringTable: Sendable {
    /// All strings' bytes, one after another.
    var bytes: [UInt8] = []
    /// `ends[i]` is where string `i` ends in `bytes`; it starts where string `i - 1` ends.
    var ends: [UInt32] = []
    /// Open-addressing hash index of the strings from ``sortedCount`` on, built by ``intern(_:)``: a slot holds a
    /// string's id + 1 (0 = empty), its length and hash bits, and its ``sortKey(_:)`` (first 8 bytes), so that most probes decide
    /// without touching ``bytes``.
    private var slots: [Slot] = []

    private struct Slot {
        var id1: UInt32 = 0
        /// (length − 1) in the top 8 bits, 24 bits of the hash below.
        var tag: UInt32 = 0
        var prefix: UInt64 = 0
    }
    /// Strings no lookup may find any more (erased profiles, see ``forget(_:)``): their ids stay taken.
    private var forgotten = Set<Int>()
    /// Strings `0..<sortedCount` are distinct and in ascending byte order; see ``markSorted()``.
    private(set) var sortedCount = 0
    /// The first 8 bytes of each sorted string as a big-endian number (zero-padded), so that bisection compares
    /// integers and touches ``bytes`` only on a tie.
    private var sortedKeys: [UInt64] = []

    /// An empty table.
    package init() {}

    /// How many strings the table holds.
    package var count: Int { ends.count }

    func range(_ id: Int) -> Range<Int> {
        (id == 0 ? 0 : Int(ends[id - 1]))..<Int(ends[id])
    }

    /// Strings `ids` as a table of their own, numbered from 0 and with no index (the table itself, its storage
    /// shared, when that is all of it and it has none).
    func strings(_ ids: Range<Int>) -> StringTable {
        if ids == 0..<count && slots.isEmpty && sortedCount == 0 && forgotten.isEmpty { return self }
        var part = StringTable()
        guard !ids.isEmpty else { return part }
        let start = range(ids.lowerBound).lowerBound
        part.bytes = Array(bytes[start..<Int(ends[ids.upperBound - 1])])
        part.ends = ends[ids].map { $0 - UInt32(start) }
        return part
    }

    /// The bytes of string `id`.
    package subscript(id: Int) -> ArraySlice<UInt8> { bytes[range(id)] }

    /// String `id` decoded from UTF-8 (the table only holds valid UTF-8).
    package func string(_ id: Int) -> String { String(decoding: self[id], as: UTF8.self) }

    /// Strings `ids`, in that order (as ``string(_:)``, decoded straight from the table's storage).
    ///
    /// A few members of a million-profile table each cost two cache misses (its end, then its bytes), so both are
    /// asked for ahead: the ends ``stringsLookahead`` ids ahead, the bytes half as far (their end has arrived by then).
    func strings(_ ids: [Int]) -> [String] {
        let ahead = Self.stringsLookahead
        return bytes.withUnsafeBufferPointer { all in
            ends.withUnsafeBufferPointer { ends in
                // (``range(_:)``'s start, through the buffer pointer.)
                func start(_ id: Int) -> Int { id == 0 ? 0 : Int(ends[id - 1]) }
                return ids.withUnsafeBufferPointer { ids in
                    (0..<ids.count).map { k in
                        if k + ahead < ids.count { Cache.prefetch(ends.baseAddress! + max(0, ids[k + ahead] - 1)) }
                        if k + ahead / 2 < ids.count { Cache.prefetch(all.baseAddress! + start(ids[k + ahead / 2])) }
                        let id = ids[k]
                        return String(
                            decoding: UnsafeBufferPointer(rebasing: all[start(id)..<Int(ends[id])]), as: UTF8.self)
                    }
                }
            }
        }
    }

    /// How many ids ahead ``strings(_:)`` asks for a string's end.
    private static let stringsLookahead = 16

    /// Removes every string, keeping the storage for reuse (with `keepingIndex`, the hash index's size too, for
    /// a table about to be filled with as many strings again).
    mutating func removeAll(keepingIndex: Bool = false) {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        if keepingIndex {
            slots.withUnsafeMutableBufferPointer { $0.update(repeating: Slot()) }
        } else {
            slots.removeAll()
        }
        sortedCount = 0
        forgotten.removeAll()
        sortedKeys.removeAll()
    }

    /// Declares every string so far distinct and in ascending byte order (the caller knows: it sorted them).
    mutating func markSorted() {
        sortedCount = count
        slots = []
        sortedKeys = []
    }

    /// Builds ``sortedKeys`` before the first lookup in the sorted run (a table that is only listed never needs it).
    private mutating func prepareSortedKeys() {
        guard sortedKeys.count != sortedCount else { return }
        sortedKeys = bytes.withUnsafeBytes { all in
            largeArray(count: sortedCount) { keys in
                for id in 0..<keys.count { keys[id] = Self.sortKey(UnsafeRawBufferPointer(rebasing: all[range(id)])) }
            }
        }
    }

    /// The first 8 bytes as a big-endian number, zero-padded: ordering by it agrees with byte order except on ties.
    @inline(__always)
    static func sortKey(_ string: UnsafeRawBufferPointer) -> UInt64 {
        if string.count >= 8 { return UInt64(bigEndian: string.loadUnaligned(as: UInt64.self)) }
        var key: UInt64 = 0
        for j in 0..<string.count { key |= UInt64(string[j]) << UInt64(56 - 8 * j) }
        return key
    }

    /// Appends a string without looking for an equal one (a hash index, if any, is dropped: the next
    /// ``intern(_:)`` rebuilds it over every string).
    mutating func append<C: Collection>(_ string: C) where C.Element == UInt8 {
        if !slots.isEmpty { slots = [] }
        appendUnindexed(string)
    }

    /// Makes room for `strings` more strings of `bytes` bytes in all.
    mutating func reserve(strings: Int, bytes more: Int) {
        bytes.reserveCapacity(bytes.count + more)
        ends.reserveCapacity(ends.count + strings)
    }

    /// Appends every string of `other`, in its order (a hash index, if any, is dropped).
    mutating func append(contentsOf other: StringTable) {
        if !slots.isEmpty { slots = [] }
        let base = UInt32(bytes.count)
        bytes.append(contentsOf: other.bytes)
        ends.append(contentsOf: other.ends.lazy.map { $0 + base })
    }

    @inline(__always)
    private mutating func appendUnindexed<C: Collection>(_ string: C) where C.Element == UInt8 {
        bytes.append(contentsOf: string)
        ends.append(UInt32(bytes.count))
    }

    /// Appends `count` strings of `bytes` bytes in all, which `fill` writes: their bytes from the given pointer on,
    /// and the end of each (as an offset into all of the table's bytes) into the given buffer. Drops the hash index.
    mutating func appendUninitialized(
        count: Int, bytes total: Int,
        _ fill: (UnsafeMutablePointer<UInt8>, UnsafeMutableBufferPointer<UInt32>) -> Void
    ) {
        if !slots.isEmpty { slots = [] }
        let byteStart = bytes.count
        let endStart = ends.count
        bytes.resize(to: byteStart + total, filler: 0)
        ends.resize(to: endStart + count, filler: 0)
        bytes.withUnsafeMutableBufferPointer { bytes in
            ends.withUnsafeMutableBufferPointer { ends in
                fill(bytes.baseAddress! + byteStart, UnsafeMutableBufferPointer(rebasing: ends[endStart...]))
            }
        }
    }

    /// Removes the strings from `count` on (the hash index is rebuilt by the next ``intern(_:)``).
    mutating func truncate(to count: Int) {
        guard count < self.count else { return }
        ends.removeSubrange(count...)
        bytes.removeSubrange((ends.last.map(Int.init) ?? 0)...)
        forgotten = forgotten.filter { $0 < count }
        slots = []
        if sortedCount > count {
            sortedCount = count
            sortedKeys = []
        }
    }

    /// The id of `string`, adding it when new.
    mutating func intern(_ string: UnsafeRawBufferPointer) -> UInt32 {
        if sortedCount > 0 {
            prepareSortedKeys()
            let at = bytes.withUnsafeBytes { lowerBound(string, from: 0, all: $0) }
            if at < sortedCount && equals(at, string) && !forgotten.contains(at) { return UInt32(at) }
        }
        reserveSlots(for: 1)
        return intern(string, hash: Self.hash(string))
    }

    /// Rebuilds the hash index when adding `more` strings could fill it past half, so that adding them rebuilds it
    /// at most once, now (a commit's blocks reserve for all the strings they introduce between them). The rebuilt
    /// index is the smallest power of two at most half full: it is far bigger than the cache either way, and every
    /// page of it is memory the kernel must clear (a first commit of 630,000 new profiles spent a fifth of its time
    /// clearing an index twice this size).
    mutating func reserveSlots(for more: Int) {
        let hashed = count - sortedCount
        if slots.count < (hashed + more) * 2 { rehash(capacity: max(64, (hashed + more) * 2)) }
    }

    /// The hash-index part of ``intern(_:)``, with the hash computed and room reserved.
    @inline(__always)
    private mutating func intern(_ string: UnsafeRawBufferPointer, hash: UInt64) -> UInt32 {
        let mask = slots.count - 1
        let tag = Self.tag(hash, length: string.count)
        let prefix = Self.sortKey(string)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = slots[slot]
            if entry.id1 == 0 { break }
            if holds(entry, string, tag: tag, prefix: prefix) { return entry.id1 - 1 }
            slot = (slot + 1) & mask
        }
        appendUnindexed(string)
        slots[slot] = Slot(id1: UInt32(count), tag: tag, prefix: prefix)
        return UInt32(count - 1)
    }

    /// Whether filled slot `entry` is `string`'s (given its tag and first 8 bytes): the length and first 8 bytes
    /// decide a string of up to 8 bytes; a longer one is compared in full.
    @inline(__always)
    private func holds(_ entry: Slot, _ string: UnsafeRawBufferPointer, tag: UInt32, prefix: UInt64) -> Bool {
        entry.tag == tag && entry.prefix == prefix && (string.count <= 8 || equals(Int(entry.id1 - 1), string))
            && (forgotten.isEmpty || !forgotten.contains(Int(entry.id1 - 1)))
    }

    /// The first position in `from..<sortedCount` whose string is not below `string` (galloping forward from
    /// `from`, so a run of ascending lookups costs little more than a merge).
    private func lowerBound(_ string: UnsafeRawBufferPointer, from: Int, all: UnsafeRawBufferPointer) -> Int {
        let key = Self.sortKey(string)
        return sortedKeys.withUnsafeBufferPointer { keys in
            func below(_ id: Int) -> Bool {
                keys[id] != key
                    ? keys[id] < key : bytesPrecede(UnsafeRawBufferPointer(rebasing: all[range(id)]), string)
            }
            var low = from
            var step = 1
            while low + step <= sortedCount && below(low + step - 1) {
                low += step
                step *= 2
            }
            var high = min(low + step, sortedCount)
            while low < high {
                let mid = (low + high) / 2
                if below(mid) { low = mid + 1 } else { high = mid }
            }
            return low
        }
    }

    /// Interns every string of `other` (a block's dictionary, sorted by bytes) and returns, for each of its ids,
    /// the id here. With `only`, interns just the strings it marks; the others map to `UInt32.max`.
    mutating func internAll(_ other: StringTable, only: [Bool]? = nil) -> [UInt32] {
        prepareLookups()
        var lookup = lookUp(other, only: only)
        internMissing(other, &lookup)
        return lookup.ids
    }

    /// What ``lookUp(_:only:)`` found of another table's strings: each one's id here (`UInt32.max` where this
    /// table does not hold it, or it was not asked for), and those not found, with their hashes, for
    /// ``internMissing(_:_:)``.
    struct Lookup: Sendable {
        var ids: [UInt32]
        var missing: [Int] = []
        var hashes: [UInt64] = []
    }

    /// Readies the index for ``lookUp(_:only:)``: the sorted strings' keys, and the hash index over the others.
    mutating func prepareLookups() {
        if sortedCount > 0 { prepareSortedKeys() }
        reserveSlots(for: 0)
    }

    /// Finds the strings of `other` (ideally sorted by bytes) here, changing nothing, so that several threads may
    /// look up in one table at once (after ``prepareLookups()``, before any change). With `only`, just the
    /// strings it marks.
    ///
    /// Strings in the sorted run are found by one forward walk. The rest go to the hash index, each string's first
    /// slot prefetched 16 strings before it is probed for, so that their cache misses overlap. With a million
    /// profiles the index is far bigger than the cache and each lookup is a miss; one at a time they would wait for
    /// memory in turn.
    func lookUp(_ other: StringTable, only: [Bool]? = nil) -> Lookup {
        var lookup = Lookup(ids: [UInt32](repeating: .max, count: other.count))
        var pending: [Int] = []
        let wanted = only.map { only in (0..<other.count).filter { only[$0] } } ?? Array(0..<other.count)
        if sortedCount > 0 {
            precondition(sortedKeys.count == sortedCount, "prepareLookups() readies the sorted run")
            var cursor = 0
            bytes.withUnsafeBytes { mine in
                other.bytes.withUnsafeBytes { theirs in
                    for id in wanted {
                        let string = UnsafeRawBufferPointer(rebasing: theirs[other.range(id)])
                        // Out-of-order input only costs a restart from the beginning.
                        if cursor > 0
                            && !bytesPrecede(UnsafeRawBufferPointer(rebasing: mine[range(cursor - 1)]), string)
                        {
                            cursor = 0
                        }
                        cursor = lowerBound(string, from: cursor, all: mine)
                        if cursor < sortedCount && equals(cursor, string) && !forgotten.contains(cursor) {
                            lookup.ids[id] = UInt32(cursor)
                            cursor += 1
                        } else {
                            pending.append(id)
                        }
                    }
                }
            }
        } else {
            pending = wanted
        }
        lookup.missing.reserveCapacity(pending.count)
        lookup.hashes.reserveCapacity(pending.count)
        // Each string's hash is taken, and its first slot prefetched, `ahead` strings before it is probed for.
        let ahead = 16
        var hashes = [UInt64](repeating: 0, count: ahead)
        other.bytes.withUnsafeBytes { all in
            slots.withUnsafeBufferPointer { slots in
                let mask = slots.count - 1
                func hashAndPrefetch(_ k: Int) {
                    let hash = Self.hash(UnsafeRawBufferPointer(rebasing: all[other.range(pending[k])]))
                    hashes[k % ahead] = hash
                    if !slots.isEmpty { Cache.prefetch(slots.baseAddress! + (Int(truncatingIfNeeded: hash) & mask)) }
                }
                for k in 0..<min(ahead, pending.count) { hashAndPrefetch(k) }
                for k in pending.indices {
                    let string = UnsafeRawBufferPointer(rebasing: all[other.range(pending[k])])
                    let hash = hashes[k % ahead]
                    if k + ahead < pending.count { hashAndPrefetch(k + ahead) }
                    let tag = Self.tag(hash, length: string.count)
                    let prefix = Self.sortKey(string)
                    var found: UInt32?
                    if !slots.isEmpty {
                        var slot = Int(truncatingIfNeeded: hash) & mask
                        var entry = slots[slot]
                        while entry.id1 != 0 {
                            if holds(entry, string, tag: tag, prefix: prefix) {
                                found = entry.id1 - 1
                                break
                            }
                            slot = (slot + 1) & mask
                            entry = slots[slot]
                        }
                    }
                    if let found {
                        lookup.ids[pending[k]] = found
                    } else {
                        lookup.missing.append(pending[k])
                        lookup.hashes.append(hash)
                    }
                }
            }
        }
        return lookup
    }

    /// Interns the strings `lookup` did not find, in its order, completing its ids. Another string of the same
    /// bytes interned since the lookup is found, not added twice.
    ///
    /// Like ``lookUp(_:only:)``, it prefetches each string's first slot 16 strings ahead, so that their cache misses
    /// overlap; the strings' bytes are reserved once.
    mutating func internMissing(_ other: StringTable, _ lookup: inout Lookup) {
        guard !lookup.missing.isEmpty else { return }
        reserveSlots(for: lookup.missing.count)
        let adding = lookup.missing.reduce(0) { $0 + other.range($1).count }
        if bytes.capacity < bytes.count + adding { bytes.reserveCapacity(max(bytes.count + adding, bytes.count * 2)) }
        if ends.capacity < ends.count + lookup.missing.count {
            ends.reserveCapacity(max(ends.count + lookup.missing.count, ends.count * 2))
        }
        let ahead = 16
        let missing = lookup.missing
        let hashes = lookup.hashes
        let mask = slots.count - 1
        func prefetch(_ k: Int) {
            slots.withUnsafeBufferPointer {
                Cache.prefetch($0.baseAddress! + (Int(truncatingIfNeeded: hashes[k]) & mask))
            }
        }
        other.bytes.withUnsafeBytes { all in
            for k in 0..<min(ahead, missing.count) { prefetch(k) }
            for k in missing.indices {
                if k + ahead < missing.count { prefetch(k + ahead) }
                let id = missing[k]
                lookup.ids[id] = intern(UnsafeRawBufferPointer(rebasing: all[other.range(id)]), hash: hashes[k])
            }
        }
    }

    /// Makes strings `ids` unfindable (their bytes are overwritten with zeros; their ids stay taken): the same bytes
    /// interned later get a new id. For erased profiles in the writer's dictionary.
    mutating func forget(_ ids: some Sequence<Int>) {
        for id in ids where id < count {
            forgotten.insert(id)
            let r = range(id)
            bytes.replaceSubrange(r, with: repeatElement(0, count: r.count))
        }
    }

    /// The id of `string`, or nil when the table does not hold it (a linear search when there is no hash index).
    package func firstIndex(of string: [UInt8]) -> Int? {
        string.withUnsafeBytes { raw in
            (0..<count).first { equals($0, raw) }
        }
    }

    private func equals(_ id: Int, _ other: UnsafeRawBufferPointer) -> Bool {
        let r = range(id)
        guard r.count == other.count else { return false }
        return bytes.withUnsafeBytes { mine in
            // Both ranges are inside their buffers: `r` comes from `ends`, `other` is the caller's.
            Memory.equal(mine.baseAddress! + r.lowerBound, other.baseAddress!, count: r.count)
        }
    }

    private mutating func rehash(capacity: Int) {
        var size = 64
        while size < capacity { size <<= 1 }
        var fresh = [Slot](repeating: Slot(), count: size)
        let mask = size - 1
        bytes.withUnsafeBytes { all in
            for id in sortedCount..<count {
                let string = UnsafeRawBufferPointer(rebasing: all[range(id)])
                // No identifier is empty: an empty string stands for an erased one, never looked for.
                if string.isEmpty || forgotten.contains(id) { continue }
                let hash = Self.hash(string)
                var slot = Int(truncatingIfNeeded: hash) & mask
                while fresh[slot].id1 != 0 { slot = (slot + 1) & mask }
                fresh[slot] = Slot(
                    id1: UInt32(id + 1), tag: Self.tag(hash, length: string.count), prefix: Self.sortKey(string))
            }
        }
        slots = fresh
    }

    private static func tag(_ hash: UInt64, length: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: length - 1) << 24 | UInt32(truncatingIfNeeded: hash >> 40)
    }

    /// Sorts string ids (given in ascending id order) by their strings' bytes (see ``byteOrder(of:)``).
    func sortByBytes(_ ids: inout [Int]) {
        let order = byteOrder(of: ids)
        ids = order.map { ids[$0] }
    }

    /// The positions of `ids` (ascending) in the byte order of their strings: `ids[result[0]]` has the least. Ids
    /// below ``sortedCount`` are already in order; the rest are sorted by an 8-byte big-endian prefix first, then
    /// merged in.
    ///
    /// The prefixes are read in the order of `ids`, front to back through ``bytes``. A caller that copies the
    /// strings out in that order too, then puts the copies in this order, so touches a large table once per string
    /// in address order, where copying in byte order would miss the cache on nearly every string.
    func byteOrder(of ids: [Int]) -> [Int] {
        let split = ids.firstIndex { $0 >= sortedCount } ?? ids.count
        if split == ids.count { return Array(ids.indices) }
        return bytes.withUnsafeBytes { all in
            func string(_ k: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: all[range(ids[k])]) }
            var keys = (split..<ids.count).map { Self.sortKey(string($0)) }
            var keyed = Array(split..<ids.count)
            // Integers first; only runs of equal keys (strings sharing their first 8 bytes) need the bytes.
            sortByPrefixKeys(&keys, values: &keyed) { bytesPrecede(string($0), string($1)) }
            if split == 0 { return keyed }
            var merged: [Int] = []
            merged.reserveCapacity(ids.count)
            var i = 0
            var j = 0
            while i < split || j < keyed.count {
                if j == keyed.count || (i < split && bytesPrecede(string(i), string(keyed[j]))) {
                    merged.append(i)
                    i += 1
                } else {
                    merged.append(keyed[j])
                    j += 1
                }
            }
            return merged
        }
    }

    /// A table holding strings `order[0]`, `order[1]`, … of this one.
    func permuted(_ order: [Int]) -> StringTable {
        var result = StringTable()
        result.bytes.reserveCapacity(bytes.count)
        result.ends.reserveCapacity(order.count)
        for id in order { result.append(self[id]) }
        return result
    }

    /// The ``hash(_:)`` of every string, in order (with `skippingEmpty`, of every string that is not empty).
    func hashes(skippingEmpty: Bool = false) -> [UInt64] {
        bytes.withUnsafeBytes { all in
            (0..<count).compactMap { id in
                let string = UnsafeRawBufferPointer(rebasing: all[range(id)])
                return skippingEmpty && string.isEmpty ? nil : Self.hash(string)
            }
        }
    }

    /// A multiply-xorshift hash over 8-byte words (identifiers are short; this is not for hostile input
    /// distribution, only for spreading ids over the table).
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var i = 0
        while i + 8 <= bytes.count {
            h =
                (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            i += 8
        }
        if i < bytes.count {
            var tail: UInt64 = 0
            for j in i..<bytes.count { tail |= UInt64(bytes[j]) << UInt64(8 * (j - i)) }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
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
    // Identifiers are short: compare 8-byte big-endian words, then the rest byte by byte; no call to memcmp.
    var i = 0
    while i + 8 <= common {
        let x = UInt64(bigEndian: a.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        let y = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        if x != y { return x < y }
        i += 8
    }
    while i < common {
        let x = a[i]
        let y = b[i]
        if x != y { return x < y }
        i += 1
    }
    return a.count < b.count
}
