import TouchLogStorage

/// What a format-2 event block says about itself, apart from its body: which (touchpoint, type) groups it holds,
/// how many events each, their event-time range, and where each group's part of each section lies. A query reads
/// the summary (a few kilobytes, checked by the block header) to decide whether, and which part of, the body to read.
///
/// Layout (varints are LEB128; all counts and lengths are varints):
/// 1. layout version byte (3; 2 in blocks written up to commit 1beb6eb, read as well), event count `n`
/// 2. first new profile id, new profile count; first new touchpoint id, new touchpoint count (the store-wide ids
///    this block introduces: the next ones after every earlier block's)
/// 3. profile id base and bit width (a byte): each event's profile is stored as `id − base` in that many bits
/// 4. six sections (new profiles, new touchpoints, times, profiles, positions, values), each: codec byte (0 stored, 1 LZ4 block),
///    stored length, raw length, XXH3-64 of the stored bytes (8 bytes, little-endian); they follow each other in
///    the body in this order
/// 5. group count, then per group in ascending key order (key = (touchpoint id + 1) · 3 + type, touchpoint id + 1
///    being 0 for a conversion without touchpoint): key − previous key (the first: the key), event count, min time −
///    the block's min time, max time − min time, its bytes in the times section, (layout 2 only) its bytes in the
///    positions section, how many of its events carry a value
///
/// The two layouts differ in the positions section only: layout 2 gives each group's positions (so a group's are
/// read alone), layout 3 the positions of all events in time order (see ``GroupedBlockCodec``), which costs a tenth
/// of a byte an event where arrivals follow event time, against nearly two.
struct BlockSummary: Equatable {
    /// The layout new blocks are written in.
    static let layoutVersion: UInt8 = 3

    enum SectionKind: Int, CaseIterable {
        case newProfiles, newTouchpoints, times, profiles, positions, values
    }

    /// (Kept in 32-bit fields, as a block's lengths are: 24 bytes, and a store's summaries hold six per block.)
    struct Section: Equatable {
        /// 0: stored as is; 1: an LZ4 block of `rawLength` bytes.
        var codec: UInt8
        private var start32: UInt32
        private var storedLength32: UInt32
        private var rawLength32: UInt32
        /// XXH3-64 of the stored bytes.
        var check: UInt64

        init(codec: UInt8, start: Int, storedLength: Int, rawLength: Int, check: UInt64) {
            self.codec = codec
            (start32, storedLength32, rawLength32) = (UInt32(start), UInt32(storedLength), UInt32(rawLength))
            self.check = check
        }

        /// Where it starts in the body.
        var start: Int { Int(start32) }
        var storedLength: Int { Int(storedLength32) }
        var rawLength: Int { Int(rawLength32) }
    }

    /// The events of one (touchpoint, type), in ascending (time, position) order. (Kept in 32-bit fields: a store's
    /// summaries hold hundreds of thousands of groups, and a query reads them all.)
    struct Group: Equatable {
        /// Touchpoint id + 1, or 0 for none.
        var touchpoint: UInt32
        var type: UInt8
        private var count32: UInt32
        var minTime: Int64
        var maxTime: Int64
        private var firstEvent32: UInt32
        private var timesStart: UInt32, timesEnd: UInt32
        private var positionsStart: UInt32, positionsEnd: UInt32
        private var valueCount32: UInt32, valuesBefore32: UInt32
        private var valuesStart: UInt32, valuesEnd: UInt32

        init(
            touchpoint: UInt32, type: UInt8, count: Int, minTime: Int64, maxTime: Int64, firstEvent: Int,
            times: Range<Int>,
            positions: Range<Int>, valueCount: Int, valuesBefore: Int, values: Range<Int>
        ) {
            self.touchpoint = touchpoint
            self.type = type
            count32 = UInt32(count)
            self.minTime = minTime
            self.maxTime = maxTime
            firstEvent32 = UInt32(firstEvent)
            (timesStart, timesEnd) = (UInt32(times.lowerBound), UInt32(times.upperBound))
            (positionsStart, positionsEnd) = (UInt32(positions.lowerBound), UInt32(positions.upperBound))
            (valueCount32, valuesBefore32) = (UInt32(valueCount), UInt32(valuesBefore))
            (valuesStart, valuesEnd) = (UInt32(values.lowerBound), UInt32(values.upperBound))
        }

        var count: Int { Int(count32) }
        /// The group's first event in the block's grouped order (its events are `firstEvent ..< firstEvent + count`).
        var firstEvent: Int { Int(firstEvent32) }
        /// Its bytes in the (raw) times and positions sections.
        var times: Range<Int> { Int(timesStart)..<Int(timesEnd) }
        var positions: Range<Int> { Int(positionsStart)..<Int(positionsEnd) }
        /// How many of its events carry a value, and how many valued events come before the group's.
        var valueCount: Int { Int(valueCount32) }
        var valuesBefore: Int { Int(valuesBefore32) }
        /// Its bytes in the (raw) values section: a bitmap of `count` bits unless every event or none has a value,
        /// then the values.
        var values: Range<Int> { Int(valuesStart)..<Int(valuesEnd) }

        var key: UInt64 { UInt64(touchpoint) * 3 + UInt64(type) }
    }

    /// 2: positions per group; 3: positions in time order.
    var layout: UInt8 = Self.layoutVersion
    var count: Int
    var firstNewProfile: UInt32
    var newProfiles: Int
    var firstNewTouchpoint: UInt32
    var newTouchpoints: Int
    var profileBase: UInt32
    var profileWidth: Int
    var sections: [Section]
    var groups: [Group]

    subscript(_ kind: SectionKind) -> Section { sections[kind.rawValue] }

    /// The body's length: the sections' stored bytes.
    var bodyLength: Int { sections.reduce(0) { $0 + $1.storedLength } }

    /// The summary's bytes.
    func encoded(blockMinTime: Int64) -> [UInt8] {
        var out = ByteWriter()
        out.byte(layout)
        out.varint(count)
        out.varint(UInt64(firstNewProfile))
        out.varint(newProfiles)
        out.varint(UInt64(firstNewTouchpoint))
        out.varint(newTouchpoints)
        out.varint(UInt64(profileBase))
        out.byte(UInt8(profileWidth))
        for section in sections {
            out.byte(section.codec)
            out.varint(section.storedLength)
            out.varint(section.rawLength)
            Swift.withUnsafeBytes(of: section.check.littleEndian) { out.raw($0) }
        }
        out.varint(groups.count)
        var previousKey: UInt64 = 0
        for group in groups {
            out.varint(group.key - previousKey)
            previousKey = group.key
            out.varint(group.count)
            out.varint(UInt64(bitPattern: group.minTime &- blockMinTime))
            out.varint(UInt64(bitPattern: group.maxTime &- group.minTime))
            out.varint(group.times.count)
            if layout == 2 { out.varint(group.positions.count) }
            out.varint(group.valueCount)
        }
        return out.bytes
    }
}

extension BlockSummary {
    /// Parses and checks a summary (lengths, ranges and counts agree with each other and with the header).
    init(_ bytes: [UInt8], header: BlockHeader) throws(DecodeError) {
        var failure: DecodeError?
        var parsed: BlockSummary?
        bytes.withUnsafeBytes { raw in
            do throws(DecodeError) {
                var input = PayloadCursor(raw)
                parsed = try BlockSummary(&input, header: header)
                guard input.isAtEnd else { throw input.fail("\(input.remaining) bytes after the last group") }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        self = parsed!
    }

    private init(_ input: inout PayloadCursor, header: BlockHeader) throws(DecodeError) {
        layout = try input.byte()
        guard layout == 2 || layout == 3 else { throw input.fail("unknown summary layout \(layout)") }
        count = try input.count(max: Int(UInt32.max), "event count")
        guard count == Int(header.count) else {
            throw input.fail("holds \(count) events, its header says \(header.count)")
        }
        firstNewProfile = UInt32(try input.count(max: Int(UInt32.max), "first new profile"))
        newProfiles = try input.count(max: count, "new profile count")
        firstNewTouchpoint = UInt32(try input.count(max: Int(UInt32.max), "first new touchpoint"))
        newTouchpoints = try input.count(max: count, "new touchpoint count")
        guard UInt64(firstNewProfile) + UInt64(newProfiles) <= UInt64(UInt32.max),
            UInt64(firstNewTouchpoint) + UInt64(newTouchpoints) <= UInt64(UInt32.max)
        else { throw input.fail("more than 2³² profiles or touchpoints") }
        profileBase = UInt32(try input.count(max: Int(UInt32.max), "profile id base"))
        profileWidth = Int(try input.byte())
        guard profileWidth <= 32 else { throw input.fail("profile id width \(profileWidth)") }
        let bodyLength = Int(header.storedLength) - Int(header.summaryLength)
        var start = 0
        sections = []
        sections.reserveCapacity(SectionKind.allCases.count)
        for kind in SectionKind.allCases {
            let codec = try input.byte()
            guard codec <= 1 else { throw input.fail("\(kind) section has unknown codec \(codec)") }
            let stored = try input.count(max: bodyLength - start, "\(kind) section length")
            let raw = try input.count(max: BlockHeader.maxPayloadLength, "\(kind) section raw length")
            if codec == 0 && raw != stored {
                throw input.fail("stored \(kind) section of \(stored) bytes claims \(raw)")
            }
            let check = UInt64(littleEndian: UnsafeRawPointer(try input.take(8)).loadUnaligned(as: UInt64.self))
            sections.append(Section(codec: codec, start: start, storedLength: stored, rawLength: raw, check: check))
            start += stored
        }
        guard start == bodyLength else { throw input.fail("sections hold \(start) bytes, the body \(bodyLength)") }
        let groupCount = try input.count(max: count, "group count")
        groups = []
        groups.reserveCapacity(groupCount)
        var key: UInt64 = 0
        var event = 0
        var times = 0
        var positions = 0
        var valued = 0
        var values = 0
        var minTime = Int64.max
        var maxTime = Int64.min
        for g in 0..<groupCount {
            let delta = try input.varint()
            guard g == 0 || delta > 0 else { throw input.fail("group \(g) does not follow its predecessor's key") }
            guard delta <= UInt64(UInt32.max) * 3 + 2 - key else { throw input.fail("group \(g) key out of range") }
            key += delta
            let n = try input.count(max: count - event, "group \(g) event count")
            guard n > 0 else { throw input.fail("group \(g) is empty") }
            let low = try input.varint()
            let span = try input.varint()
            // max ≥ min, so the difference fits 64 unsigned bits even when it does not fit a signed one.
            let blockSpan = UInt64(bitPattern: header.maxTime &- header.minTime)
            guard low <= blockSpan, span <= blockSpan - low else {
                throw input.fail("group \(g) times lie outside the block's")
            }
            let timeBytes = try input.count(max: BlockHeader.maxPayloadLength, "group \(g) times length")
            let positionBytes =
                layout == 2 ? try input.count(max: BlockHeader.maxPayloadLength, "group \(g) positions length") : 0
            let valueCount = try input.count(max: n, "group \(g) value count")
            let group = Group(
                touchpoint: UInt32(key / 3), type: UInt8(key % 3), count: n,
                minTime: header.minTime &+ Int64(bitPattern: low),
                maxTime: header.minTime &+ Int64(bitPattern: low) &+ Int64(bitPattern: span), firstEvent: event,
                times: times..<(times + timeBytes),
                positions: positions..<(positions + positionBytes), valueCount: valueCount, valuesBefore: valued,
                values: values..<(values + (valueCount == 0 || valueCount == n ? 0 : (n + 7) / 8) + 8 * valueCount))
            minTime = min(minTime, group.minTime)
            maxTime = max(maxTime, group.maxTime)
            groups.append(group)
            event += n
            times += timeBytes
            positions += positionBytes
            valued += valueCount
            values = group.values.upperBound
        }
        guard event == count else { throw input.fail("groups hold \(event) events, the block \(count)") }
        guard minTime == header.minTime, maxTime == header.maxTime else {
            throw input.fail("groups' times disagree with the header's")
        }
        guard times == sections[SectionKind.times.rawValue].rawLength,
            layout == 3 || positions == sections[SectionKind.positions.rawValue].rawLength,
            values == sections[SectionKind.values.rawValue].rawLength
        else { throw input.fail("groups' section lengths disagree with the sections'") }
        let profileBytes = sections[SectionKind.profiles.rawValue].rawLength
        guard (count * profileWidth + 7) / 8 == profileBytes else {
            throw input.fail("profiles section of \(profileBytes) bytes for \(count) ids of \(profileWidth) bits")
        }
    }
}
