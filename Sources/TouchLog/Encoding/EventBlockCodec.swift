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
public enum EventBlockCodec {
    static let layoutVersion: UInt8 = 1

    /// Encodes events `range` of `batch` as one block.
    public static func encode(_ batch: EventBatch, range: Range<Int>) -> RawBlock {
        precondition(!range.isEmpty, "a block holds at least one event")
        var out = ByteWriter()
        out.bytes.reserveCapacity(range.count * 12 + 1024)
        out.byte(layoutVersion)
        out.varint(range.count)
        let profileLocal = writeDictionary(batch.profiles, ids: batch.profileIDs[range].lazy.map { Int($0) }, into: &out)
        let touchpointLocal = writeDictionary(
            batch.touchpoints, ids: batch.touchpointIDs[range].lazy.filter { $0 != 0 }.map { Int($0 - 1) }, into: &out)
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
        out.bitPacked(batch.profileIDs[range].lazy.map { UInt32(profileLocal[Int($0)]) },
                      width: bitWidth(UInt32(max(0, profileLocal.distinctCount - 1))))
        out.bitPacked(batch.touchpointIDs[range].lazy.map { $0 == 0 ? 0 : UInt32(touchpointLocal[Int($0 - 1)] + 1) },
                      width: bitWidth(UInt32(touchpointLocal.distinctCount)))
        let valued = batch.values[range].lazy.filter { !$0.isNaN }.count
        out.varint(valued)
        if valued > 0 {
            out.bitPacked(batch.values[range].lazy.map { $0.isNaN ? 0 : 1 }, width: 1)
            for v in batch.values[range] where !v.isNaN { out.float64(v) }
        }
        return RawBlock(payload: out.bytes, count: range.count, minTime: minTime, maxTime: maxTime)
    }

    /// Maps batch-wide string ids to the block's sorted dictionary positions.
    struct LocalIDs {
        var map: [Int32]
        var distinctCount: Int
        subscript(id: Int) -> Int32 { map[id] }
    }

    private static func writeDictionary(_ table: StringTable, ids: some Sequence<Int>, into out: inout ByteWriter) -> LocalIDs {
        var map = [Int32](repeating: -1, count: table.count)
        var used: [Int] = []
        for id in ids where map[id] < 0 {
            map[id] = 0
            used.append(id)
        }
        table.bytes.withUnsafeBytes { all in
            used.sort { a, b in
                bytesPrecede(UnsafeRawBufferPointer(rebasing: all[table.range(a)]), UnsafeRawBufferPointer(rebasing: all[table.range(b)]))
            }
        }
        out.varint(used.count)
        var previous: ArraySlice<UInt8> = []
        for (position, id) in used.enumerated() {
            map[id] = Int32(position)
            let current = table[id]
            let shared = zip(previous, current).prefix(while: { $0 == $1 }).count
            out.varint(shared)
            out.varint(current.count - shared)
            out.raw(current.dropFirst(shared))
            previous = current
        }
        return LocalIDs(map: map, distinctCount: used.count)
    }

    /// Decodes a block's payload. With `strict`, also checks what the encoder guarantees (sorted dictionaries,
    /// valid UTF-8, identifier lengths, required touchpoints, finite values): `verify` runs it this way.
    static func decode(_ payload: [UInt8], strict: Bool = false) throws(DecodeError) -> EventBatch {
        var input = ByteReader(payload)
        let version = try input.byte()
        guard version == layoutVersion else { throw input.fail("unknown payload layout \(version)") }
        let count = try input.count(max: payload.count * 8, "event count")
        var batch = EventBatch()
        batch.profiles = try readDictionary(&input, strict: strict, "profile")
        batch.touchpoints = try readDictionary(&input, strict: strict, "touchpoint")
        batch.times.reserveCapacity(count)
        var time: Int64 = 0
        for _ in 0..<count {
            time &+= try input.zigzag()
            batch.times.append(time)
        }
        batch.types = try input.bitPacked(count: count, width: 2).map { UInt8($0) }
        if let bad = batch.types.firstIndex(where: { $0 > 2 }) { throw input.fail("event \(bad) has unknown type \(batch.types[bad])") }
        let profileCount = batch.profiles.count
        if count > 0 && profileCount == 0 { throw input.fail("events but no profiles") }
        batch.profileIDs = try input.bitPacked(count: count, width: bitWidth(UInt32(max(0, profileCount - 1))))
        if let bad = batch.profileIDs.firstIndex(where: { Int($0) >= profileCount }) { throw input.fail("event \(bad) names profile \(batch.profileIDs[bad]) of \(profileCount)") }
        let touchpointCount = batch.touchpoints.count
        batch.touchpointIDs = try input.bitPacked(count: count, width: bitWidth(UInt32(touchpointCount)))
        if let bad = batch.touchpointIDs.firstIndex(where: { Int($0) > touchpointCount }) { throw input.fail("event \(bad) names touchpoint \(batch.touchpointIDs[bad]) of \(touchpointCount)") }
        let valued = try input.count(max: count, "value count")
        batch.values = [Double](repeating: .nan, count: count)
        if valued > 0 {
            let present = try input.bitPacked(count: count, width: 1)
            guard present.reduce(0, { $0 + Int($1) }) == valued else { throw input.fail("value bitmap disagrees with the value count") }
            for i in 0..<count where present[i] == 1 {
                batch.values[i] = try input.float64()
                if strict && !batch.values[i].isFinite { throw input.fail("event \(i) has a value that is not finite") }
            }
        }
        guard input.isAtEnd else { throw input.fail("\(payload.count - input.position) bytes after the last column") }
        if strict {
            for i in 0..<count where batch.touchpointIDs[i] == 0 && batch.types[i] != EventType.conversion.rawValue {
                throw input.fail("event \(i) is a \(batch.type(at: i).name) without a touchpoint")
            }
        }
        return batch
    }

    private static func readDictionary(_ input: inout ByteReader, strict: Bool, _ what: String) throws(DecodeError) -> StringTable {
        let count = try input.count(max: input.bytes.count, "\(what) dictionary size")
        var table = StringTable()
        table.ends.reserveCapacity(count)
        var previousStart = 0
        var previousLength = 0
        for index in 0..<count {
            let shared = try input.count(max: previousLength, "\(what) \(index) shared prefix")
            let suffixLength = try input.count(max: EventLimits.maxIdentifierBytes, "\(what) \(index) length")
            let start = table.bytes.count
            // The shared prefix is copied byte by byte from the previous entry (appending a slice of the
            // array to itself would copy the whole buffer).
            for k in 0..<shared { table.bytes.append(table.bytes[previousStart + k]) }
            table.bytes.append(contentsOf: try input.take(suffixLength))
            table.ends.append(UInt32(table.bytes.count))
            if strict { try checkEntry(table, index, previousStart..<start, &input, what) }
            previousStart = start
            previousLength = shared + suffixLength
        }
        return table
    }

    /// Checks dictionary entry `index` against the encoder's guarantees: length, order after `previous`, UTF-8.
    private static func checkEntry(
        _ table: StringTable, _ index: Int, _ previous: Range<Int>, _ input: inout ByteReader, _ what: String
    ) throws(DecodeError) {
        let current = table.range(index)
        if current.isEmpty || current.count > EventLimits.maxIdentifierBytes { throw input.fail("\(what) \(index) is \(current.count) bytes") }
        let (ordered, valid) = table.bytes.withUnsafeBytes { all in
            let entry = UnsafeRawBufferPointer(rebasing: all[current])
            return (index == 0 || bytesPrecede(UnsafeRawBufferPointer(rebasing: all[previous]), entry), isValidUTF8(entry))
        }
        if !ordered { throw input.fail("\(what) dictionary is not in ascending order at entry \(index)") }
        if !valid { throw input.fail("\(what) \(index) is not valid UTF-8") }
    }
}
