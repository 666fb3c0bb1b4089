import TouchLogStorage

/// The columnar encoding of a block's events, compressed by the storage layer with LZ4.
///
/// Layout (varints are LEB128; zigzag maps signed to unsigned):
/// 1. layout version byte (1), event count (varint)
/// 2. profile dictionary: count, then each string in ascending byte order, front-coded as
///    (bytes shared with the previous string, varint; suffix length, varint; suffix bytes)
/// 3. touchpoint dictionary, the same way
/// 4. event times: the first as zigzag, each next as a zigzag delta from the one before
/// 5. types: 2 bits per event (0 view, 1 click, 2 conversion), packed least significant first
/// 6. profile of each event: its dictionary index, bit-packed at the width of the largest index
/// 7. touchpoint of each event: dictionary index + 1 (0 = none), bit-packed likewise
/// 8. values: how many events have one (varint); when any, a bitmap of which (1 bit per event), then each
///    value as a little-endian IEEE 754 double
enum EventBlockCodec {
    static let layoutVersion: UInt8 = 1

    /// Encodes events `range` of `batch` as one block.
    static func encode(_ batch: EventBatch, range: Range<Int>) -> RawBlock {
        var scratch = EncodeScratch()
        return encode(batch, range: range, scratch: &scratch)
    }

    /// Per-thread memory for encoding many blocks, reused from one block to the next.
    struct EncodeScratch {
        var keys: [UInt64] = []
        var events: [Int] = []
        var strings = StringTable()
        var localOf: [Int32] = []
        var positions: [UInt32] = []
        var entries: [UInt8] = []
        var sorted = StringTable()
    }

    static func encode(_ batch: EventBatch, range: Range<Int>, scratch: inout EncodeScratch) -> RawBlock {
        precondition(!range.isEmpty, "a block holds at least one event")
        var out = ByteWriter()
        out.bytes.reserveCapacity(range.count * 12 + 1024)
        out.byte(layoutVersion)
        out.varint(range.count)
        let profiles = writeDictionary(
            batch.profiles, ids: batch.profileIDs[range], none: nil, scratch: &scratch, into: &out)
        let touchpoints = writeDictionary(
            batch.touchpoints, ids: batch.touchpointIDs[range], none: 0, scratch: &scratch, into: &out)
        var previous: Int64 = 0
        var minTime = Int64.max
        var maxTime = Int64.min
        for t in batch.times[range] {
            out.zigzag(t &- previous)
            previous = t
            minTime = min(minTime, t)
            maxTime = max(maxTime, t)
        }
        out.bitPacked(batch.types[range].lazy.map { UInt32($0) }, width: 2)
        out.bitPacked(profiles.positions, width: bitWidth(UInt32(max(0, profiles.count - 1))))
        out.bitPacked(touchpoints.positions, width: bitWidth(UInt32(touchpoints.count)))
        let valued = batch.values[range].lazy.filter { !$0.isNaN }.count
        out.varint(valued)
        if valued > 0 {
            out.bitPacked(batch.values[range].lazy.map { $0.isNaN ? 0 : 1 }, width: 1)
            for v in batch.values[range] where !v.isNaN { out.float64(v) }
        }
        // Hand the bigger position buffer back for the next block.
        scratch.positions =
            profiles.positions.capacity >= touchpoints.positions.capacity ? profiles.positions : touchpoints.positions
        return RawBlock(payload: out.bytes, count: range.count, minTime: minTime, maxTime: maxTime)
    }

    /// Writes the dictionary of the strings a block's events use (`ids`: each event's id in `table`; `none`: the id
    /// that stands for no string, for touchpoints 0 with id i + 1 for string i), sorted and front-coded, and returns
    /// each event's position in it (for `none` events 0, and the others position + 1) and the dictionary's size.
    private static func writeDictionary(
        _ table: StringTable, ids: ArraySlice<UInt32>, none: UInt32?, scratch: inout EncodeScratch,
        into out: inout ByteWriter
    ) -> (positions: [UInt32], count: Int) {
        var sorted = StringTable()
        swap(&sorted, &scratch.sorted)
        defer { swap(&sorted, &scratch.sorted) }
        let positions = localDictionary(table, ids: ids, none: none, scratch: &scratch, into: &sorted)
        var entries = ByteWriter()
        swap(&entries.bytes, &scratch.entries)
        entries.bytes.removeAll(keepingCapacity: true)
        frontCode(sorted, into: &entries)
        out.varint(sorted.count)
        out.raw(entries.bytes)
        swap(&entries.bytes, &scratch.entries)
        return (positions, sorted.count)
    }

    /// Writes strings `ids` of `table` (distinct, in ascending byte order; all of them by default) front-coded: for
    /// each, the bytes it shares with the one before (varint), its suffix length (varint) and the suffix.
    static func frontCode(_ table: StringTable, ids: Range<Int>? = nil, into out: inout ByteWriter) {
        table.bytes.withUnsafeBytes { all in
            var previous = UnsafeRawBufferPointer(start: nil, count: 0)
            for id in ids ?? 0..<table.count {
                let current = UnsafeRawBufferPointer(rebasing: all[table.range(id)])
                let shared = commonPrefixLength(previous, current)
                out.varint(shared)
                out.varint(current.count - shared)
                out.raw(UnsafeRawBufferPointer(rebasing: current[shared...]))
                previous = current
            }
        }
    }

    /// Fills `sorted` with the distinct strings a block's events use (`ids`: each event's id in `table`; `none`: the
    /// id that stands for no string, for touchpoints 0 with id i + 1 for string i), in ascending byte order, and
    /// returns each event's index in it (for `none` events 0, and with `none` the others index + 1). `table` may hold
    /// a string more than once (a batch built without interning): equal strings become one entry.
    ///
    /// A block uses a scattered few of a big batch's strings: the events are first sorted by id, so that the batch's
    /// table is read in ascending order, once per string, and the strings are copied into `scratch.strings`
    /// (compact), then sorted by bytes there.
    static func localDictionary(
        _ table: StringTable, ids: ArraySlice<UInt32>, none: UInt32?, scratch: inout EncodeScratch,
        into sorted: inout StringTable
    ) -> [UInt32] {
        let n = ids.count
        if none == nil, let own = stringsOfTheirOwn(ids, in: table) {
            return consecutiveDictionary(table, ids: own, into: &sorted)
        }
        scratch.keys.removeAll(keepingCapacity: true)
        scratch.keys.append(contentsOf: ids.lazy.map { UInt64($0) })
        scratch.events.removeAll(keepingCapacity: true)
        scratch.events.append(contentsOf: 0..<n)
        radixSort(keys: &scratch.keys, values: &scratch.events)

        // Each distinct id once, in ascending order; every event gets its string's index in `strings` (−1: none).
        scratch.strings.removeAll()
        scratch.localOf.removeAll(keepingCapacity: true)
        scratch.localOf.append(contentsOf: repeatElement(-1, count: n))
        let offset = none == nil ? 0 : 1
        table.bytes.withUnsafeBytes { all in
            scratch.keys.withUnsafeBufferPointer { keys in
                scratch.events.withUnsafeBufferPointer { events in
                    scratch.localOf.withUnsafeMutableBufferPointer { localOf in
                        var k = 0
                        while k < n {
                            let id = keys[k]
                            if let none, id == UInt64(none) {
                                while k < n && keys[k] == id { k += 1 }
                                continue
                            }
                            let local = Int32(scratch.strings.count)
                            scratch.strings.append(UnsafeRawBufferPointer(rebasing: all[table.range(Int(id) - offset)]))
                            while k < n && keys[k] == id {
                                localOf[events[k]] = local
                                k += 1
                            }
                        }
                    }
                }
            }
        }

        var order = Array(0..<scratch.strings.count)
        scratch.strings.sortByBytes(&order)
        let rank = distinct(scratch.strings, inByteOrder: order, from: 0, offset: offset, into: &sorted)
        var positions: [UInt32] = []
        swap(&positions, &scratch.positions)
        positions.removeAll(keepingCapacity: true)
        positions.append(contentsOf: scratch.localOf.lazy.map { $0 < 0 ? 0 : rank[Int($0)] })
        return positions
    }

    /// The strings of `table` that events of string ids `ids` use when each event has a string of its own, in
    /// order (what a batch built without interning gives); nil otherwise.
    static func stringsOfTheirOwn(_ ids: ArraySlice<UInt32>, in table: StringTable) -> Range<Int>? {
        guard let first = ids.first.map(Int.init), first + ids.count <= table.count,
            ids.elementsEqual(UInt32(first)..<UInt32(first + ids.count))
        else { return nil }
        return first..<first + ids.count
    }

    /// ``localDictionary(_:ids:none:scratch:into:)`` for events that use strings `ids` of `table`, one each, in order
    /// (a batch built without interning gives every event a string of its own): the table's strings are sorted
    /// where they lie, with no sort by id and no copy first.
    private static func consecutiveDictionary(_ table: StringTable, ids: Range<Int>, into sorted: inout StringTable)
        -> [UInt32]
    {
        var order = Array(ids)
        table.sortByBytes(&order)
        return distinct(table, inByteOrder: order, from: ids.lowerBound, offset: 0, into: &sorted)
    }

    /// Fills `sorted` with the distinct strings of `table` that `order` names (ids `first ..< first + order.count`,
    /// in ascending byte order of their strings), and returns, for each of those ids in id order, the index of its
    /// string in `sorted` plus `offset` (equal strings, under different ids, share one entry).
    private static func distinct(
        _ table: StringTable, inByteOrder order: [Int], from first: Int, offset: Int, into sorted: inout StringTable
    ) -> [UInt32] {
        var rank = [UInt32](repeating: 0, count: order.count)
        sorted.removeAll()
        table.bytes.withUnsafeBytes { all in
            var previous = UnsafeRawBufferPointer(start: nil, count: 0)
            for id in order {
                let current = UnsafeRawBufferPointer(rebasing: all[table.range(id)])
                if sorted.count > 0 && previous.count == current.count
                    && commonPrefixLength(previous, current) == current.count
                {
                    rank[id - first] = UInt32(sorted.count - 1 + offset)  // the entry before, under another id
                    continue
                }
                rank[id - first] = UInt32(sorted.count + offset)
                sorted.append(current)
                previous = current
            }
        }
        sorted.markSorted()
        return rank
    }

    /// How many leading bytes `a` and `b` share, compared 8 at a time.
    @inline(__always)
    static func commonPrefixLength(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let limit = min(a.count, b.count)
        var n = 0
        while n + 8 <= limit {
            let difference =
                a.loadUnaligned(fromByteOffset: n, as: UInt64.self)
                ^ b.loadUnaligned(fromByteOffset: n, as: UInt64.self)
            if difference != 0 { return n + UInt64(littleEndian: difference).trailingZeroBitCount >> 3 }
            n += 8
        }
        while n < limit && a[n] == b[n] { n += 1 }
        return n
    }

    /// Decodes a block's payload. With `strict`, also checks what the encoder guarantees (sorted dictionaries,
    /// valid UTF-8, identifier lengths, required touchpoints, finite values): `verify` runs it this way.
    static func decode(_ payload: [UInt8], strict: Bool = false) throws(DecodeError) -> EventBatch {
        var batch = EventBatch()
        try decode(payload, into: &batch, strict: strict)
        return batch
    }

    /// Decodes a block's payload into `batch`, replacing what it held and reusing its storage.
    static func decode(_ payload: [UInt8], into batch: inout EventBatch, strict: Bool = false) throws(DecodeError) {
        var failure: DecodeError?
        payload.withUnsafeBytes { raw in
            do throws(DecodeError) {
                var input = PayloadCursor(raw)
                try decode(&input, into: &batch, strict: strict)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    private static func decode(_ input: inout PayloadCursor, into batch: inout EventBatch, strict: Bool)
        throws(DecodeError)
    {
        let version = try input.byte()
        guard version == layoutVersion else { throw input.fail("unknown payload layout \(version)") }
        let count = try input.count(max: input.size * 8, "event count")
        try readDictionary(&input, into: &batch.profiles, strict: strict, "profile")
        try readDictionary(&input, into: &batch.touchpoints, strict: strict, "touchpoint")

        batch.times.resize(to: count, filler: 0)
        try batch.times.withUnsafeMutableBufferPointer { times throws(DecodeError) in
            var time: Int64 = 0
            for i in 0..<count {
                time &+= try input.zigzag()
                times[i] = time
            }
        }

        batch.types.resize(to: count, filler: 0)
        let largestType = try batch.types.withUnsafeMutableBufferPointer { types throws(DecodeError) in
            try input.unpack(count, width: 2, into: types)
        }
        if largestType > 2 {
            let bad = batch.types.firstIndex { $0 > 2 }!
            throw input.fail("event \(bad) has unknown type \(batch.types[bad])")
        }

        let profileCount = batch.profiles.count
        if count > 0 && profileCount == 0 { throw input.fail("events but no profiles") }
        batch.profileIDs.resize(to: count, filler: 0)
        let largestProfile = try batch.profileIDs.withUnsafeMutableBufferPointer { ids throws(DecodeError) in
            try input.unpack(count, width: bitWidth(UInt32(max(0, profileCount - 1))), into: ids)
        }
        if count > 0 && Int(largestProfile) >= profileCount {
            let bad = batch.profileIDs.firstIndex { Int($0) >= profileCount }!
            throw input.fail("event \(bad) names profile \(batch.profileIDs[bad]) of \(profileCount)")
        }
        let touchpointCount = batch.touchpoints.count
        batch.touchpointIDs.resize(to: count, filler: 0)
        let largestTouchpoint = try batch.touchpointIDs.withUnsafeMutableBufferPointer { ids throws(DecodeError) in
            try input.unpack(count, width: bitWidth(UInt32(touchpointCount)), into: ids)
        }
        if Int(largestTouchpoint) > touchpointCount {
            let bad = batch.touchpointIDs.firstIndex { Int($0) > touchpointCount }!
            throw input.fail("event \(bad) names touchpoint \(batch.touchpointIDs[bad]) of \(touchpointCount)")
        }

        let valued = try input.count(max: count, "value count")
        batch.values.removeAll(keepingCapacity: true)
        batch.values.append(contentsOf: repeatElement(.nan, count: count))
        if valued > 0 {
            let present = try input.take((count + 7) / 8)
            var seen = 0
            for i in 0..<(count + 7) / 8 { seen += present[i].nonzeroBitCount }
            guard seen == valued else { throw input.fail("value bitmap disagrees with the value count") }
            for i in 0..<count where present[i >> 3] & (1 << UInt8(i & 7)) != 0 {
                let v = try input.float64()
                if strict && !v.isFinite { throw input.fail("event \(i) has a value that is not finite") }
                batch.values[i] = v
            }
        }
        guard input.isAtEnd else { throw input.fail("\(input.remaining) bytes after the last column") }
        if strict {
            for i in 0..<count where batch.touchpointIDs[i] == 0 && batch.types[i] != EventType.conversion.rawValue {
                throw input.fail("event \(i) is a \(batch.type(at: i).name) without a touchpoint")
            }
        }
    }

    /// Steps over `count` front-coded strings and returns their total length (the first of two passes over them),
    /// checking that each shares no more than the previous one has and, with `checkingLengths`, that each is 1–256
    /// bytes.
    static func frontCodedLength(_ input: inout PayloadCursor, count: Int, checkingLengths: Bool, _ what: String)
        throws(DecodeError) -> Int
    {
        var total = 0
        var previousLength = 0
        for index in 0..<count {
            let shared = try input.count(max: previousLength, "\(what) \(index) shared prefix")
            let suffixLength = try input.count(max: EventLimits.maxIdentifierBytes, "\(what) \(index) length")
            _ = try input.take(suffixLength)
            previousLength = shared + suffixLength
            total += previousLength
            if checkingLengths && (previousLength == 0 || previousLength > EventLimits.maxIdentifierBytes) {
                throw input.fail("\(what) \(index) is \(previousLength) bytes")
            }
        }
        return total
    }

    /// Reads a front-coded dictionary (its size, then its strings) into `table`, replacing its strings.
    private static func readDictionary(
        _ input: inout PayloadCursor, into table: inout StringTable, strict: Bool, _ what: String
    ) throws(DecodeError) {
        let count = try input.count(max: input.size, "\(what) dictionary size")
        table.removeAll()
        try appendFrontCoded(&input, count: count, to: &table, checkingLengths: strict, strict: strict, what)
    }

    /// Reads `count` front-coded strings (see ``frontCode(_:ids:into:)``) onto the end of `table`: one pass checks the
    /// lengths and sums them, a second copies the bytes into place, one copy per entry. `checkingLengths`: each string
    /// is 1–256 bytes; `strict`: also strictly ascending and valid UTF-8 (as the encoder writes them).
    static func appendFrontCoded(
        _ input: inout PayloadCursor, count: Int, to table: inout StringTable, checkingLengths: Bool,
        strict: Bool, ordered: Bool = true, _ what: String
    ) throws(DecodeError) {
        guard count > 0 else { return }
        let start = input
        let total = try frontCodedLength(&input, count: count, checkingLengths: checkingLengths, what)
        let first = table.count
        let byteStart = table.bytes.count
        var replay = start
        var unordered: Int?
        table.appendUninitialized(count: count, bytes: total) { out, ends in
            // The first pass checked every length and bound, so these reads cannot fail.
            let payloadEnd = replay.base + replay.size
            var end = 0
            var previousStart = 0
            for index in 0..<count {
                let shared = Int(try! replay.varint())
                let suffixLength = Int(try! replay.varint())
                let suffix = try! replay.take(suffixLength)
                let length = shared + suffixLength
                // Strictly ascending, given that the entry repeats the previous one's first `shared` bytes and the
                // encoder shares as much as it can: the entry extends the previous one, or its first own byte is
                // greater than the previous one's byte there.
                if strict && ordered && index > 0 && unordered == nil
                    && (suffixLength == 0 || (shared < end - previousStart && suffix[0] <= out[previousStart + shared]))
                {
                    unordered = index
                }
                // Copy in 16-byte chunks, which may run past the entry (the next entry overwrites that) but
                // never past either buffer; near an end, copy exactly.
                if shared <= 16 && suffixLength <= 16 && end + 32 <= total && payloadEnd - suffix >= 16 {
                    copy16(from: out + previousStart, to: out + end)
                    copy16(from: suffix, to: out + end + shared)
                } else {
                    (out + end).update(from: out + previousStart, count: shared)
                    (out + end + shared).update(from: suffix, count: suffixLength)
                }
                previousStart = end
                end += length
                ends[index] = UInt32(byteStart + end)
            }
        }
        if let unordered { throw input.fail("\(what) dictionary is not in ascending order at entry \(unordered)") }
        if strict { try checkUTF8(table, from: first, &input, what) }
    }

    /// Copies 16 bytes; the two ranges may overlap (all 16 are loaded before any is stored).
    @inline(__always)
    private static func copy16(from source: UnsafePointer<UInt8>, to target: UnsafeMutablePointer<UInt8>) {
        UnsafeMutableRawPointer(target).storeBytes(
            of: UnsafeRawPointer(source).loadUnaligned(as: SIMD16<UInt8>.self), as: SIMD16<UInt8>.self)
    }

    /// Checks that every dictionary entry from `first` on is UTF-8: entry by entry only when some byte is not ASCII.
    /// (Lengths and order are checked as the dictionary is read.)
    private static func checkUTF8(_ table: StringTable, from first: Int, _ input: inout PayloadCursor, _ what: String)
        throws(DecodeError)
    {
        var problem: String?
        let byteStart = first == 0 ? 0 : Int(table.ends[first - 1])
        table.bytes.withUnsafeBytes { all in
            table.ends.withUnsafeBufferPointer { ends in
                if isASCII(UnsafeRawBufferPointer(rebasing: all[byteStart...])) { return }
                var start = byteStart
                for index in first..<ends.count {
                    let end = Int(ends[index])
                    if !isValidUTF8(UnsafeRawBufferPointer(rebasing: all[start..<end])) {
                        problem = "\(what) \(index - first) is not valid UTF-8"
                        return
                    }
                    start = end
                }
            }
        }
        if let problem { throw input.fail(problem) }
    }

    /// True when every byte is below 0x80 (checked 8 bytes at a time).
    private static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        var seen: UInt64 = 0
        while i + 8 <= bytes.count {
            seen |= bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < bytes.count {
            seen |= UInt64(bytes[i])
            i += 1
        }
        return seen & 0x8080_8080_8080_8080 == 0
    }
}
