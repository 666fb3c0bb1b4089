import TouchLogStorage

/// The format-2 encoding of a block's events: grouped by (touchpoint, type), each group in (time, position) order,
/// profiles and touchpoints named by their store-wide ids (``StoreDictionary``), with a ``BlockSummary`` in front
/// that says where every group's part of every section lies.
///
/// A rule on one touchpoint reads its groups' times and profiles and nothing else; a query at T reads of a later
/// block only the beginning of each group (its events at or before T, the late ones); a window [from, to] is one
/// contiguous run of each group.
///
/// Body sections, in order (each stored as is, or as one LZ4 block when that saves an eighth or more):
/// 1. new profiles: the profiles the block introduces, in ascending byte order, front-coded (bytes shared with the
///    previous string, varint; suffix length, varint; suffix)
/// 2. new touchpoints: the touchpoints it introduces, the same way (apart, so that a query can read the store's few
///    touchpoints without its many profiles)
/// 3. times: per group, the difference of each event's time from the previous one's (varints; the first event's
///    time is the group's min time, so it is not written)
/// 4. profiles: per event in grouped order, its profile id − the summary's base, in the summary's bit width,
///    packed least significant bit first
/// 5. positions: each event's position in the block (its offset − the block's first offset), listed in *time
///    order* — the events ordered by time, events of equal time in grouped order —, each as the zigzag varint of
///    its difference from the one before minus 1 (the first: from −1). Events that arrive in time order make it
///    zeros, which LZ4 folds to almost nothing; a late event costs a few bytes. (Layout 2, still read: per group,
///    the first position as a varint, the others as zigzag varint differences from the one before.)
/// 6. values: per group with values, a bitmap of which of its events carry one (only when some but not all do),
///    then each value as a little-endian IEEE 754 double
enum GroupedBlockCodec {
    /// A block's events with their own sorted dictionaries (`profiles` and `touchpoints` distinct and in ascending
    /// byte order; `profileIDs` index the first, `touchpointIDs` are 0 or index + 1): everything ``encode(_:dictionary:)``
    /// needs but the store-wide ids, which are given in log order when the block is committed. A sealed block from a
    /// batch that gives every event a string of its own keeps them as they are instead: `profiles` holds one string
    /// per event, in event order, equal strings included.
    struct Prepared: Sendable {
        var events = EventBatch()
        var minTime: Int64 = .max
        var maxTime: Int64 = .min
        /// Format 3: for each of the block's own profiles, the position of its first event. New profiles get their
        /// ids in this order, not in byte order, so that an id says nothing of its string's neighbours. Nil when
        /// `profiles` are in event order already.
        var firstSeen: [UInt32]?
    }

    /// Builds the dictionaries of events `range` of `batch` (the part of encoding that needs no store state, so it
    /// can run on any thread).
    static func prepare(
        _ batch: EventBatch, range: Range<Int>, scratch: inout EventBlockCodec.EncodeScratch,
        sealed: Bool = false
    ) -> Prepared {
        precondition(!range.isEmpty, "a block holds at least one event")
        var block = Prepared()
        block.events.times = Array(batch.times[range])
        block.events.types = Array(batch.types[range])
        block.events.values = Array(batch.values[range])
        let ids = batch.profileIDs[range]
        if sealed, let own = EventBlockCodec.stringsOfTheirOwn(ids, in: batch.profiles) {
            // Every event has a string of its own (a batch built without interning: ingest, `[Event]` appends).
            // Sealed profiles take their ids in the order of their first events and the store's dictionary is a
            // hash index, so the block's strings need not be sorted or merged first: each event's string is looked
            // up as it is, in event order, and a string new to the store is added at its first event and found
            // again at the next ones (the same ids, the same bytes, as from sorted and merged strings).
            block.events.profiles = batch.profiles.strings(own)
            block.events.profileIDs = Array(0..<UInt32(ids.count))
        } else {
            block.events.profileIDs = EventBlockCodec.localDictionary(
                batch.profiles, ids: ids, none: nil, scratch: &scratch, into: &block.events.profiles)
            if sealed {
                var firstSeen = [UInt32](repeating: .max, count: block.events.profiles.count)
                for (position, id) in block.events.profileIDs.enumerated().reversed() {
                    firstSeen[Int(id)] = UInt32(position)
                }
                block.firstSeen = firstSeen
            }
        }
        block.events.touchpointIDs = EventBlockCodec.localDictionary(
            batch.touchpoints, ids: batch.touchpointIDs[range], none: 0, scratch: &scratch,
            into: &block.events.touchpoints)
        for t in block.events.times {
            block.minTime = min(block.minTime, t)
            block.maxTime = max(block.maxTime, t)
        }
        return block
    }

    /// The store-wide ids a block's strings got (see ``assignIDs(_:dictionary:)``).
    struct Assigned: Sendable {
        /// For each of the block's own profiles (and touchpoints), its store-wide id.
        var profileOf: [UInt32]
        var touchpointOf: [UInt32]
        /// The ids it introduced.
        var newProfiles: Range<Int>
        var newTouchpoints: Range<Int>
        /// Format 3: the one-time pads of the profiles it introduced, back to back in id order (see ``ProfileSealing``).
        var pads: [UInt8]?
    }

    /// Gives the block's profiles and touchpoints their store-wide ids (adding those new to the store to
    /// `dictionary`) and encodes it. Blocks must be encoded in log order: each may use the ids earlier ones introduced.
    static func encode(_ block: Prepared, dictionary: inout StoreDictionary) -> RawBlock {
        let assigned = assignIDs(block, dictionary: &dictionary)
        return build(block, assigned, dictionary: dictionary).block
    }

    /// The part of encoding that must follow the log: the store-wide ids of the block's strings, new ones added to
    /// `dictionary` (in ascending byte order, as the block's own dictionaries are sorted).
    static func assignIDs(_ block: Prepared, dictionary: inout StoreDictionary) -> Assigned {
        dictionary.prepareLookups()
        return assignIDs(block, lookUp(block, in: dictionary), dictionary: &dictionary)
    }

    /// The block's strings found in the store's dictionary, before any of them is added.
    struct Lookups: Sendable {
        var profiles: StringTable.Lookup
        var touchpoints: StringTable.Lookup
    }

    /// Finds the block's strings in `dictionary` (readied by ``StoreDictionary/prepareLookups()``), changing
    /// nothing: the blocks of a commit look up on every core, then get their ids one after the other.
    static func lookUp(_ block: Prepared, in dictionary: StoreDictionary) -> Lookups {
        var profiles = dictionary.profiles.lookUp(block.events.profiles)
        if let firstSeen = block.firstSeen {
            let order = profiles.missing.indices.sorted {
                firstSeen[profiles.missing[$0]] < firstSeen[profiles.missing[$1]]
            }
            profiles.missing = order.map { profiles.missing[$0] }
            profiles.hashes = order.map { profiles.hashes[$0] }
        }
        return Lookups(profiles: profiles, touchpoints: dictionary.touchpoints.lookUp(block.events.touchpoints))
    }

    /// ``assignIDs(_:dictionary:)`` given the block's ``lookUp(_:in:)`` in `dictionary` as it was before this block
    /// and the ones before it in the commit were given theirs (what they added is found again, not added twice).
    static func assignIDs(_ block: Prepared, _ lookups: Lookups, dictionary: inout StoreDictionary) -> Assigned {
        var lookups = lookups
        let firstNewProfile = dictionary.profiles.count
        let firstNewTouchpoint = dictionary.touchpoints.count
        dictionary.profiles.internMissing(block.events.profiles, &lookups.profiles)
        dictionary.touchpoints.internMissing(block.events.touchpoints, &lookups.touchpoints)
        dictionary.profileBlocks += 1
        dictionary.touchpointBlocks += 1
        return Assigned(
            profileOf: lookups.profiles.ids, touchpointOf: lookups.touchpoints.ids,
            newProfiles: firstNewProfile..<dictionary.profiles.count,
            newTouchpoints: firstNewTouchpoint..<dictionary.touchpoints.count)
    }

    /// The rest of encoding, on any thread: `dictionary` must hold the ids `assigned` names (it is only read).
    /// Format 3 also gives the *binding* of the pads to the block: the XXH3-64 of its raw new-profiles section.
    static func build(_ block: Prepared, _ assigned: Assigned, dictionary: StoreDictionary) -> (
        block: RawBlock, binding: UInt64?
    ) {
        let events = block.events
        let n = events.count
        let profileOf = assigned.profileOf
        let touchpointOf = assigned.touchpointOf
        let firstNewProfile = assigned.newProfiles.lowerBound
        let firstNewTouchpoint = assigned.newTouchpoints.lowerBound

        // Grouped order: by key, then time, then position (two stable radix sorts: by time, then by key).
        var keys = [UInt64](unsafeUninitializedCapacity: n) { keys, initialized in
            for i in 0..<n { keys[i] = UInt64(bitPattern: events.times[i] &- block.minTime) }
            initialized = n
        }
        var order = Array(0..<n)
        radixSort(keys: &keys, values: &order)
        // The events by time (then position): layout 3 lists positions in this order, once events of equal time
        // are put in grouped order (below).
        let byTime = order
        for j in 0..<n {
            let i = order[j]
            let touchpoint =
                events.touchpointIDs[i] == 0 ? 0 : UInt64(touchpointOf[Int(events.touchpointIDs[i]) - 1]) + 1
            keys[j] = touchpoint * 3 + UInt64(events.types[i])
        }
        radixSort(keys: &keys, values: &order)

        var times = ByteWriter()
        var values = ByteWriter()
        var groups: [BlockSummary.Group] = []
        var base = UInt32.max
        var largest: UInt32 = 0
        var start = 0
        var valued = 0
        while start < n {
            var end = start + 1
            while end < n && keys[end] == keys[start] { end += 1 }
            let timesStart = times.bytes.count
            let valuesStart = values.bytes.count
            var previousTime = events.times[order[start]]
            var valueCount = 0
            for j in start..<end {
                let i = order[j]
                if j > start {
                    times.varint(UInt64(events.times[i] - previousTime))
                    previousTime = events.times[i]
                }
                let id = profileOf[Int(events.profileIDs[i])]
                base = min(base, id)
                largest = max(largest, id)
                if !events.values[i].isNaN { valueCount += 1 }
            }
            if valueCount > 0 && valueCount < end - start {
                values.bitPacked((start..<end).lazy.map { events.values[order[$0]].isNaN ? 0 : 1 }, width: 1)
            }
            for j in start..<end where !events.values[order[j]].isNaN { values.float64(events.values[order[j]]) }
            groups.append(
                BlockSummary.Group(
                    touchpoint: UInt32(keys[start] / 3), type: UInt8(keys[start] % 3), count: end - start,
                    minTime: events.times[order[start]], maxTime: events.times[order[end - 1]], firstEvent: start,
                    times: timesStart..<times.bytes.count, positions: 0..<0, valueCount: valueCount,
                    valuesBefore: valued, values: valuesStart..<values.bytes.count))
            valued += valueCount
            start = end
        }
        // Positions in time order (``timeOrder(_:timeOf:)``): `byTime` with each run of equal times (nearly always
        // one event) ordered by the events' indices in grouped order.
        var positions = ByteWriter()
        var previousPosition = -1
        var groupedIndex = [Int](repeating: 0, count: n)
        for j in 0..<n { groupedIndex[order[j]] = j }
        func list(_ position: Int) {
            positions.zigzag(Int64(position - previousPosition - 1))
            previousPosition = position
        }
        var run = 0
        while run < n {
            var end = run + 1
            while end < n && events.times[byTime[end]] == events.times[byTime[run]] { end += 1 }
            if end - run == 1 {
                list(byTime[run])
            } else {
                for position in byTime[run..<end].sorted(by: { groupedIndex[$0] < groupedIndex[$1] }) {
                    list(position)
                }
            }
            run = end
        }
        let width = bitWidth(largest - base)
        var profiles = ByteWriter()
        profiles.bitPacked(order.lazy.map { profileOf[Int(events.profileIDs[$0])] - base }, width: width)

        var newProfiles = ByteWriter()
        if let pads = assigned.pads {
            ProfileSealing.seal(dictionary.profiles, ids: assigned.newProfiles, pads: pads, into: &newProfiles)
        } else {
            EventBlockCodec.frontCode(dictionary.profiles, ids: assigned.newProfiles, into: &newProfiles)
        }
        var newTouchpoints = ByteWriter()
        EventBlockCodec.frontCode(dictionary.touchpoints, ids: assigned.newTouchpoints, into: &newTouchpoints)

        var body: [UInt8] = []
        var sections: [BlockSummary.Section] = []
        for raw in [
            newProfiles.bytes, newTouchpoints.bytes, times.bytes, profiles.bytes, positions.bytes, values.bytes,
        ] {
            var stored = raw
            var codec: UInt8 = 0
            if raw.count >= 64 {
                let compressed = LZ4.compress(raw)
                if compressed.count <= raw.count - raw.count / 8 {
                    stored = compressed
                    codec = 1
                }
            }
            sections.append(
                BlockSummary.Section(
                    codec: codec, start: body.count, storedLength: stored.count, rawLength: raw.count,
                    check: XXH3.hash(stored[...])))
            body.append(contentsOf: stored)
        }
        let summary = BlockSummary(
            count: n, firstNewProfile: UInt32(firstNewProfile), newProfiles: assigned.newProfiles.count,
            firstNewTouchpoint: UInt32(firstNewTouchpoint), newTouchpoints: assigned.newTouchpoints.count,
            profileBase: base, profileWidth: width, sections: sections, groups: groups)
        let raw = RawBlock(
            summary: summary.encoded(blockMinTime: block.minTime), body: body, count: n, minTime: block.minTime,
            maxTime: block.maxTime, version: assigned.pads == nil ? 2 : 3)
        return (raw, assigned.pads == nil ? nil : XXH3.hash(newProfiles.bytes[...]))
    }

    /// The indices `0..<n` of a block's events in grouped order, ordered by their times (`timeOf`), equal times in
    /// grouped order: the order in which layout 3 lists positions. (The encoder gets the same order from the sort
    /// by time it does anyway.)
    static func timeOrder(_ n: Int, timeOf: (Int) -> Int64) -> [UInt32] {
        var low = Int64.max
        var high = Int64.min
        for j in 0..<n {
            low = min(low, timeOf(j))
            high = max(high, timeOf(j))
        }
        guard n > 0, UInt64(bitPattern: high &- low) <= UInt64(UInt32.max) else {
            // Times more than 49 days apart: flipping the sign bit orders signed times as unsigned 64-bit keys.
            var keys = [UInt64](unsafeUninitializedCapacity: n) { keys, initialized in
                for j in 0..<n { keys[j] = UInt64(bitPattern: timeOf(j)) ^ (1 << 63) }
                initialized = n
            }
            var order = Array(0..<n)
            radixSort(keys: &keys, values: &order)
            return order.map { UInt32(truncatingIfNeeded: $0) }
        }
        return stableOrder(
            of: [UInt32](unsafeUninitializedCapacity: n) { keys, initialized in
                for j in 0..<n { keys[j] = UInt32(truncatingIfNeeded: timeOf(j) &- low) }
                initialized = n
            })
    }

    /// Each event's position in the block (its offset − the block's first offset), by its index in grouped order,
    /// from the block's raw times and positions sections. Every position is checked to lie in `0..<n`, and with
    /// `strict` (verify) not to repeat one read before. In layout 3 the times give the order the positions are listed
    /// in; they are read here without checks (a bad time misorders positions, which strict decoding then finds).
    ///
    /// Without `byEvent` (a check that writes no event: verify), layout 3's positions are given in the order they
    /// are listed, which needs no times: which event gets which position does not change whether they are `0..<n`
    /// each once.
    static func positions(
        _ summary: BlockSummary, times: UnsafeRawBufferPointer, positions: UnsafeRawBufferPointer,
        into out: inout [UInt32], byEvent: Bool = true, strict: Bool = false
    ) throws(DecodeError) {
        let n = summary.count
        out.resize(to: n, filler: 0)
        var order: [UInt32]?
        if summary.layout == 3 && byEvent {
            var groupTimes = [Int64](repeating: 0, count: n)
            for group in summary.groups {
                var times = PayloadCursor(UnsafeRawBufferPointer(rebasing: times[group.times]))
                var time = group.minTime
                for k in 0..<group.count {
                    if k > 0 { time &+= Int64(bitPattern: try times.varint()) }
                    groupTimes[group.firstEvent + k] = time
                }
            }
            order = timeOrder(n, timeOf: { groupTimes[$0] })
        }
        // A bit per position (strict), set when a position is read.
        var seen = [UInt64](repeating: 0, count: strict ? (n + 63) / 64 : 0)
        // Written through pointers: a position costs a byte or two to read, less than the arrays' checks.
        let failure = out.withUnsafeMutableBufferPointer { out in
            seen.withUnsafeMutableBufferPointer { seen -> DecodeError? in
                let (out, seen) = (out, seen)
                @inline(__always) func place(_ position: Int64, at index: Int, _ cursor: PayloadCursor)
                    throws(DecodeError)
                {
                    guard position >= 0 && position < Int64(n) else {
                        throw cursor.fail("position \(position) outside the block")
                    }
                    let i = Int(position)
                    if strict {
                        let bit: UInt64 = 1 << UInt64(i & 63)
                        guard seen[i >> 6] & bit == 0 else { throw cursor.fail("position \(i) appears twice") }
                        seen[i >> 6] |= bit
                    }
                    out[index] = UInt32(truncatingIfNeeded: i)
                }
                do throws(DecodeError) {
                    guard summary.layout == 3 else {
                        for group in summary.groups {
                            var cursor = PayloadCursor(UnsafeRawBufferPointer(rebasing: positions[group.positions]))
                            var position: Int64 = -1
                            for k in 0..<group.count {
                                position = try k == 0 ? Int64(bitPattern: cursor.varint()) : position &+ cursor.zigzag()
                                try place(position, at: group.firstEvent + k, cursor)
                            }
                            guard cursor.isAtEnd else {
                                throw cursor.fail("a group's positions hold more than its events")
                            }
                        }
                        return nil
                    }
                    var cursor = PayloadCursor(positions)
                    var previous: Int64 = -1
                    for r in 0..<n {
                        previous = try previous &+ 1 &+ cursor.zigzag()
                        try place(previous, at: order.map { Int($0[r]) } ?? r, cursor)
                    }
                    guard cursor.isAtEnd else {
                        throw cursor.fail("the positions section holds more than the block's events")
                    }
                } catch { return error }
                return nil
            }
        }
        if let failure { throw failure }
    }

    /// The raw bytes of one section of a block's body (`body` is the whole body), checked against its checksum
    /// and decompressed when it was compressed.
    static func section(
        _ kind: BlockSummary.SectionKind, of summary: BlockSummary, body: UnsafeRawBufferPointer,
        into raw: inout [UInt8]
    ) throws(DecodeError) {
        let info = summary[kind]
        let stored = UnsafeRawBufferPointer(rebasing: body[info.start..<(info.start + info.storedLength)])
        try Self.section(kind, info, stored: stored, into: &raw)
    }

    /// The raw bytes of a section given its stored bytes alone, checked and decompressed.
    static func section(
        _ kind: BlockSummary.SectionKind, _ section: BlockSummary.Section, stored: UnsafeRawBufferPointer,
        into raw: inout [UInt8]
    ) throws(DecodeError) {
        guard XXH3.hash(stored) == section.check else {
            throw DecodeError(byte: section.start, reason: "\(kind) section checksum mismatch")
        }
        raw.resize(to: section.rawLength, filler: 0)
        if section.codec == 0 {
            raw.withUnsafeMutableBytes { $0.copyMemory(from: stored) }
            return
        }
        let ok = raw.withUnsafeMutableBytes { LZ4.decompress(stored, into: $0) }
        guard ok else {
            throw DecodeError(
                byte: section.start, reason: "\(kind) section does not decompress to its \(section.rawLength) bytes")
        }
    }

    /// As ``section(_:_:stored:into:)``, with the stored bytes in `stored`: a section kept as it is (codec 0) is
    /// checked and handed over (`raw` and `stored` swap buffers) instead of copied.
    static func section(
        _ kind: BlockSummary.SectionKind, _ section: BlockSummary.Section, taking stored: inout [UInt8],
        into raw: inout [UInt8]
    ) throws(DecodeError) {
        guard section.codec == 0 && stored.count == section.rawLength else {
            try stored.withDecodedBytes { bytes throws(DecodeError) in
                try Self.section(kind, section, stored: bytes, into: &raw)
            }
            return
        }
        guard stored.withUnsafeBytes({ XXH3.hash($0) }) == section.check else {
            throw DecodeError(byte: section.start, reason: "\(kind) section checksum mismatch")
        }
        swap(&raw, &stored)
    }

    /// Per-thread buffers for decoding blocks, reused from one block to the next.
    struct DecodeScratch {
        var sections = [[UInt8]](repeating: [], count: BlockSummary.SectionKind.allCases.count)
        var profiles: [UInt32] = []
        var touchpoints: [UInt32] = []
        /// Each event's profile id less the block's base, in group order.
        var ids: [UInt32] = []
        /// Each event's position in the block, in group order.
        var positions: [UInt32] = []
        /// With strict decoding: the strings the block introduces.
        var newProfiles = StringTable()
        var newTouchpoints = StringTable()
        var encode = EventBlockCodec.EncodeScratch()
    }

    /// Decodes a whole block from its stored bytes (commit metadata, summary, body; checked against the block hash by
    /// the caller) and returns its summary; see ``decode(_:body:dictionary:into:scratch:strict:)``. Strict by default:
    /// `verify` uses it, and then also reads the strings the block introduces into `scratch.newProfiles` and
    /// `scratch.newTouchpoints`, checking each (1–256 bytes of UTF-8, ascending). Whether one of them was introduced
    /// before is a question about the whole log, which `verify` answers.
    @discardableResult
    ///
    /// A format-3 block's sealed profiles are opened by `openProfiles` (given the summary and the raw section).
    static func decodeStored(
        _ header: BlockHeader, _ stored: [UInt8], dictionary: StoreDictionary?, into batch: inout EventBatch,
        scratch: inout DecodeScratch, strict: Bool = true,
        openProfiles: ((BlockSummary, inout [UInt8]) throws(DecodeError) -> Void)? = nil, profileNames: Bool = true
    ) throws(DecodeError) -> BlockSummary {
        let summaryEnd = Int(header.summaryLength)
        guard summaryEnd <= stored.count else { throw DecodeError(byte: 0, reason: "a summary longer than the block") }
        var summaryStart = 0
        if header.hasMetadata {
            guard let metadata = BlockHeader.metadataRange(inSummary: stored[..<summaryEnd]) else {
                throw DecodeError(byte: 0, reason: "commit metadata runs past the summary")
            }
            summaryStart = metadata.upperBound
        }
        let summary = try BlockSummary(Array(stored[summaryStart..<summaryEnd]), header: header)
        try stored.withDecodedBytes { bytes throws(DecodeError) in
            let body = UnsafeRawBufferPointer(rebasing: bytes[summaryEnd...])
            if strict {
                var raw: [UInt8] = []
                scratch.newProfiles.removeAll()
                scratch.newTouchpoints.removeAll()
                try section(.newProfiles, of: summary, body: body, into: &raw)
                let sealed = header.version >= 3
                if sealed {
                    guard let openProfiles else {
                        throw DecodeError(byte: 0, reason: "sealed profiles, and no key file to open them")
                    }
                    try openProfiles(summary, &raw)
                }
                try raw.withDecodedBytes { section throws(DecodeError) in
                    try StoreDictionary.read(
                        section, summary.newProfiles, into: &scratch.newProfiles, strict: true, sealed: sealed,
                        "profile")
                }
                try section(.newTouchpoints, of: summary, body: body, into: &raw)
                try raw.withDecodedBytes { section throws(DecodeError) in
                    try StoreDictionary.read(
                        section, summary.newTouchpoints, into: &scratch.newTouchpoints, strict: true, "touchpoint")
                }
            }
            try decode(
                summary, body: body, dictionary: dictionary, into: &batch, scratch: &scratch, strict: strict,
                profileNames: profileNames)
        }
        return summary
    }

    /// Decodes a whole block into `batch` in log order, with the block's own sorted dictionaries (the shape
    /// format-1 blocks decode to), looking strings up in `dictionary` (which must hold the block's own). With
    /// `strict` (verify), also checks what the encoder guarantees.
    /// Without a `dictionary` (verify), every event is read and checked as when decoding, but nothing is written to
    /// `batch`: the events' count and times are those the summary states (checked against the header when it was
    /// parsed), and their ids are checked against the ranges the summary states.
    /// Without `profileNames`, `batch` gets no profiles (its ``EventBatch/profileIDs`` and ``EventBatch/profiles``
    /// stay empty): the events' store-wide profile ids are left in `scratch.profiles`.
    static func decode(
        _ summary: BlockSummary, body: UnsafeRawBufferPointer, dictionary: StoreDictionary?,
        into batch: inout EventBatch, scratch: inout DecodeScratch, strict: Bool = false, profileNames: Bool = true
    ) throws(DecodeError) {
        let n = summary.count
        for kind in [BlockSummary.SectionKind.times, .profiles, .positions, .values] {
            try section(kind, of: summary, body: body, into: &scratch.sections[kind.rawValue])
        }
        let profileLimit = UInt64(summary.firstNewProfile) + UInt64(summary.newProfiles)
        if let dictionary {
            guard profileLimit <= UInt64(dictionary.profiles.count),
                UInt64(summary.firstNewTouchpoint) + UInt64(summary.newTouchpoints)
                    <= UInt64(dictionary.touchpoints.count)
            else { throw DecodeError(byte: 0, reason: "uses ids the store dictionary does not hold yet") }
        }

        scratch.ids.resize(to: n, filler: 0)
        try scratch.sections[BlockSummary.SectionKind.profiles.rawValue].withDecodedBytes { raw throws(DecodeError) in
            var input = PayloadCursor(raw)
            let largest = try scratch.ids.withUnsafeMutableBufferPointer { ids throws(DecodeError) in
                try input.unpack(n, width: summary.profileWidth, into: ids)
            }
            guard UInt64(summary.profileBase) + largest < profileLimit else {
                throw input.fail("an event names profile \(UInt64(summary.profileBase) + largest) of \(profileLimit)")
            }
        }
        let touchpointLimit = Int(summary.firstNewTouchpoint) + summary.newTouchpoints
        for group in summary.groups {
            guard group.type <= 2 else { throw DecodeError(byte: 0, reason: "a group of unknown type \(group.type)") }
            guard Int(group.touchpoint) <= touchpointLimit else {
                throw DecodeError(
                    byte: 0, reason: "a group names touchpoint \(group.touchpoint - 1) of \(touchpointLimit)")
            }
            if strict && group.touchpoint == 0 && group.type != EventType.conversion.rawValue {
                throw DecodeError(
                    byte: 0, reason: "a group of \(EventType(rawValue: group.type)!.name)s without a touchpoint")
            }
        }
        guard n > 0 else { return }
        try scratch.sections[BlockSummary.SectionKind.times.rawValue].withDecodedBytes { t throws(DecodeError) in
            try scratch.sections[BlockSummary.SectionKind.positions.rawValue].withDecodedBytes {
                p throws(DecodeError) in
                try positions(
                    summary, times: t, positions: p, into: &scratch.positions, byEvent: dictionary != nil,
                    strict: strict)
            }
        }
        guard let dictionary else {
            try decodeGroups(
                summary, sections: scratch.sections, ids: scratch.ids, positions: scratch.positions, into: nil,
                strict: strict)
            return
        }
        batch.times.resize(to: n, filler: 0)
        batch.types.resize(to: n, filler: 0)
        batch.values.removeAll(keepingCapacity: true)
        batch.values.append(contentsOf: repeatElement(.nan, count: n))
        scratch.profiles.resize(to: n, filler: 0)
        scratch.touchpoints.resize(to: n, filler: 0)
        // The columns are written through pointers: one event costs a few loads and stores, and the arrays' own
        // checks (bounds, uniqueness) would cost more than that. Every position is checked to lie in 0..<n first.
        let failure: DecodeError? = batch.times.withUnsafeMutableBufferPointer { times in
            batch.types.withUnsafeMutableBufferPointer { types in
                batch.values.withUnsafeMutableBufferPointer { values in
                    scratch.profiles.withUnsafeMutableBufferPointer { profiles in
                        scratch.touchpoints.withUnsafeMutableBufferPointer { touchpoints in
                            let columns = DecodedColumns(
                                times: times.baseAddress!, types: types.baseAddress!, values: values.baseAddress!,
                                profiles: profiles.baseAddress!, touchpoints: touchpoints.baseAddress!)
                            do throws(DecodeError) {
                                try decodeGroups(
                                    summary, sections: scratch.sections, ids: scratch.ids,
                                    positions: scratch.positions, into: columns, strict: strict)
                                return nil
                            } catch { return error }
                        }
                    }
                }
            }
        }
        if let failure { throw failure }
        if profileNames {
            batch.profileIDs = EventBlockCodec.localDictionary(
                dictionary.profiles, ids: scratch.profiles[...], none: nil,
                scratch: &scratch.encode, into: &batch.profiles)
        } else {
            batch.profileIDs.removeAll()
            batch.profiles = StringTable()
        }
        batch.touchpointIDs = EventBlockCodec.localDictionary(
            dictionary.touchpoints, ids: scratch.touchpoints[...], none: 0,
            scratch: &scratch.encode, into: &batch.touchpoints)
    }

    /// Where ``decodeGroups(_:sections:ids:positions:into:strict:)`` writes each event, by its position in the block.
    private struct DecodedColumns {
        let times: UnsafeMutablePointer<Int64>
        let types: UnsafeMutablePointer<UInt8>
        let values: UnsafeMutablePointer<Double>
        let profiles: UnsafeMutablePointer<UInt32>
        let touchpoints: UnsafeMutablePointer<UInt32>
    }

    /// Decodes every group's events (times, values; profile ids from `ids`, positions from `positions`, both in
    /// grouped order, the positions checked by ``positions(_:times:positions:into:byEvent:strict:)``) into `out` at
    /// their positions in the block (nil: only checks them), checking each time lies in its group's range.
    private static func decodeGroups(
        _ summary: BlockSummary, sections: [[UInt8]], ids: [UInt32], positions: [UInt32], into out: DecodedColumns?,
        strict: Bool
    ) throws(DecodeError) {
        try sections[BlockSummary.SectionKind.times.rawValue].withDecodedBytes { t throws(DecodeError) in
            try positions.withDecodedBuffer { positions throws(DecodeError) in
                try sections[BlockSummary.SectionKind.values.rawValue].withDecodedBytes { v throws(DecodeError) in
                    try ids.withDecodedBuffer { ids throws(DecodeError) in
                        for group in summary.groups {
                            var times = PayloadCursor(UnsafeRawBufferPointer(rebasing: t[group.times]))
                            var values = PayloadCursor(UnsafeRawBufferPointer(rebasing: v[group.values]))
                            let flags =
                                group.valueCount > 0 && group.valueCount < group.count
                                ? try values.take((group.count + 7) / 8) : nil
                            let allValued = group.valueCount == group.count
                            let profileIDs = ids.baseAddress! + group.firstEvent
                            let groupPositions = positions.baseAddress! + group.firstEvent
                            var time = group.minTime
                            for k in 0..<group.count {
                                if k > 0 {
                                    let delta = try times.varint()
                                    guard delta <= UInt64(bitPattern: group.maxTime &- time) else {
                                        throw times.fail("a time past its group's max")
                                    }
                                    time &+= Int64(bitPattern: delta)
                                }
                                let i = Int(groupPositions[k])
                                if let out {
                                    out.times[i] = time
                                    out.types[i] = group.type
                                    out.profiles[i] = summary.profileBase &+ profileIDs[k]
                                    out.touchpoints[i] = group.touchpoint
                                }
                                if allValued || (flags.map { $0[k >> 3] & (1 << UInt8(k & 7)) != 0 } ?? false) {
                                    let value = try values.float64()
                                    if strict && !value.isFinite { throw values.fail("a value that is not finite") }
                                    out?.values[i] = value
                                }
                            }
                            guard time == group.maxTime else {
                                throw times.fail("a group's times end before its max time")
                            }
                            guard times.isAtEnd, values.isAtEnd else {
                                throw times.fail("a group's sections hold more than its events")
                            }
                        }
                    }
                }
            }
        }
    }
}
