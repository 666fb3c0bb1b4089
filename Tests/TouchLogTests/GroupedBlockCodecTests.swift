import Testing

@testable import TouchLog
@testable import TouchLogStorage

/// Encodes `batch` in blocks of `size` with format 2 and decodes each block back, strictly.
private func roundTrip(_ batch: EventBatch, size: Int) throws -> (
    blocks: [RawBlock], decoded: [EventBatch], dictionary: StoreDictionary
) {
    var dictionary = StoreDictionary()
    var scratch = EventBlockCodec.EncodeScratch()
    var decodeScratch = GroupedBlockCodec.DecodeScratch()
    var blocks: [RawBlock] = []
    var decoded: [EventBatch] = []
    for start in stride(from: 0, to: batch.count, by: size) {
        let range = start..<min(start + size, batch.count)
        let block = GroupedBlockCodec.encode(
            GroupedBlockCodec.prepare(batch, range: range, scratch: &scratch), dictionary: &dictionary)
        let (header, _) = BlockHeader.sealed(
            version: 2, isCommit: true, firstOffset: UInt64(start), count: UInt32(block.count),
            storedPayload: block.summary! + block.payload, rawLength: 0, summaryLength: block.summary!.count,
            minTime: block.minTime, maxTime: block.maxTime, recorded: 0, previousHash: .zero)
        var events = EventBatch()
        try GroupedBlockCodec.decodeStored(
            header, block.summary! + block.payload, dictionary: dictionary, into: &events,
            scratch: &decodeScratch)
        blocks.append(block)
        decoded.append(events)
    }
    return (blocks, decoded, dictionary)
}

/// `batch` encoded as one format-2 block, with a dictionary of just its strings, and its sealed header.
private func oneBlock(_ batch: EventBatch) -> (block: RawBlock, header: BlockHeader, dictionary: StoreDictionary) {
    var dictionary = StoreDictionary()
    var scratch = EventBlockCodec.EncodeScratch()
    let block = GroupedBlockCodec.encode(
        GroupedBlockCodec.prepare(batch, range: 0..<batch.count, scratch: &scratch), dictionary: &dictionary)
    let (header, _) = BlockHeader.sealed(
        version: 2, isCommit: true, firstOffset: 0, count: UInt32(block.count),
        storedPayload: block.summary! + block.payload, rawLength: 0, summaryLength: block.summary!.count,
        minTime: block.minTime, maxTime: block.maxTime, recorded: 0, previousHash: .zero)
    return (block, header, dictionary)
}

@Suite struct GroupedBlockCodecTests {
    @Test(arguments: [1, 7, 64, 700, 5_000])
    func everyEventDecodesBackInLogOrder(size: Int) throws {
        let events = randomEvents(5_000, seed: 21)
        let batch = try EventBatch(events)
        let (_, decoded, dictionary) = try roundTrip(batch, size: size)
        let back = decoded.flatMap { block in (0..<block.count).map { block.event(at: $0) } }
        #expect(back == events)
        // Every distinct identifier is in the store's dictionary exactly once.
        #expect(dictionary.profiles.count == Set(events.map(\.profile)).count)
        #expect(dictionary.touchpoints.count == Set(events.compactMap(\.touchpoint)).count)
    }

    /// Sealed blocks from a batch that gives every event a string of its own (ingest, `[Event]` appends) look each
    /// event's string up as it is, with no sort and no merge first; the ids, the order of first events, and every
    /// byte are those that sorted and merged strings (an interned batch) give.
    @Test(arguments: [1, 64, 700, 3_000])
    func sealedBlocksOfStringsPerEventEqualThoseOfMergedStrings(size: Int) throws {
        let events = randomEvents(3_000, seed: 5)
        let interned = try EventBatch(events)
        var plain = EventBatch.forEncoding()
        for event in events { try plain.append(event) }
        #expect(plain.profiles.count == events.count && interned.profiles.count < events.count / 2)
        func encode(_ batch: EventBatch) -> (blocks: [RawBlock], profiles: [String]) {
            var dictionary = StoreDictionary()
            var scratch = EventBlockCodec.EncodeScratch()
            var blocks: [RawBlock] = []
            for start in stride(from: 0, to: batch.count, by: size) {
                let prepared = GroupedBlockCodec.prepare(
                    batch, range: start..<min(start + size, batch.count), scratch: &scratch, sealed: true)
                var assigned = GroupedBlockCodec.assignIDs(prepared, dictionary: &dictionary)
                // Pads of fixed bytes, so that the blocks' bytes depend on nothing random.
                let padBytes = assigned.newProfiles.reduce(0) { $0 + dictionary.profiles[$1].count }
                assigned.pads = [UInt8](repeating: 0x5A, count: padBytes)
                blocks.append(GroupedBlockCodec.build(prepared, assigned, dictionary: dictionary).block)
            }
            return (blocks, (0..<dictionary.profiles.count).map { dictionary.profiles.string($0) })
        }
        let perEvent = encode(plain)
        let merged = encode(interned)
        var firstEvents: [String] = []
        var seen = Set<String>()
        for event in events where seen.insert(event.profile).inserted { firstEvents.append(event.profile) }
        #expect(perEvent.profiles == firstEvents)
        #expect(merged.profiles == firstEvents)
        #expect(perEvent.blocks.map(\.summary) == merged.blocks.map(\.summary))
        #expect(perEvent.blocks.map(\.payload) == merged.blocks.map(\.payload))
    }

    /// Layout 3 lists positions in time order, so events that arrive in time order (ties in time across groups
    /// and a few late arrivals included) cost almost nothing there, and still decode to their exact offsets.
    @Test func positionsOfEventsArrivingInTimeOrderTakeAlmostNothing() throws {
        var random = TestRandom(seed: 8)
        var time: Int64 = 1_654_070_400_000
        let events = (0..<20_000).map { i in
            time += Int64(random.below(50))  // some events share a millisecond, in different groups
            let late = random.chance(0.01) ? Int64(random.below(86_400_000)) : 0
            let type = EventType(rawValue: UInt8(random.below(3)))!
            return Event(
                time: time - late, profile: "p-\(random.below(3_000))", type: type,
                touchpoint: type == .conversion && i % 2 == 0 ? nil : "t-\(random.below(40))",
                value: i % 7 == 0 ? Double(i) : nil)
        }
        let (blocks, decoded, _) = try roundTrip(try EventBatch(events), size: 20_000)
        #expect(decoded.flatMap { block in (0..<block.count).map { block.event(at: $0) } } == events)
        let block = blocks[0]
        let header = BlockHeader(
            isCommit: true, firstOffset: 0, count: 20_000,
            storedLength: UInt32(block.summary!.count + block.payload.count), rawLength: 0,
            summaryLength: UInt32(block.summary!.count), minTime: block.minTime, maxTime: block.maxTime,
            minRecorded: 0, maxRecorded: 0, previousHash: .zero, hash: .zero)
        let summary = try BlockSummary(block.summary!, header: header)
        #expect(summary.layout == 3 && summary.groups.count > 100)
        // About 200 late events and 400 ties cost a few bytes each (2,682 in all); per group (layout 2), these
        // positions took about 1.7 bytes an event (34,000).
        #expect(summary[.positions].storedLength < 4_000, "\(summary[.positions])")
    }

    /// A layout-3 positions section that names a position outside the block, repeats one, or holds more than the
    /// block's events is refused by strict decoding (verify); a well-formed one rebuilt the same way decodes.
    @Test func positionsInTimeOrderAreCheckedLikeAnyOther() throws {
        let batch = try EventBatch(randomEvents(300, seed: 12))
        let (block, plainHeader, dictionary) = oneBlock(batch)
        let summary = try BlockSummary(block.summary!, header: plainHeader)
        var sections: [[UInt8]] = []
        for kind in BlockSummary.SectionKind.allCases {
            var raw: [UInt8] = []
            try block.payload.withUnsafeBytes { try GroupedBlockCodec.section(kind, of: summary, body: $0, into: &raw) }
            sections.append(raw)
        }
        var timeOrder: [Int64] = []
        try sections[BlockSummary.SectionKind.positions.rawValue].withDecodedBytes { raw throws(DecodeError) in
            var cursor = PayloadCursor(raw)
            while !cursor.isAtEnd { timeOrder.append(try cursor.zigzag()) }
        }
        #expect(timeOrder.count == 300)
        /// Decodes the block with its positions section replaced by `positions` (zigzag varints, as written).
        func decode(positions: [Int64]) throws {
            var replaced = sections
            var out = ByteWriter()
            for p in positions { out.zigzag(p) }
            replaced[BlockSummary.SectionKind.positions.rawValue] = out.bytes
            var changed = summary
            var start = 0
            changed.sections = replaced.map { raw in
                defer { start += raw.count }
                return BlockSummary.Section(
                    codec: 0, start: start, storedLength: raw.count, rawLength: raw.count, check: XXH3.hash(raw[...]))
            }
            let stored = changed.encoded(blockMinTime: block.minTime) + replaced.flatMap { $0 }
            let (header, _) = BlockHeader.sealed(
                version: 2, isCommit: true, firstOffset: 0, count: 300, storedPayload: stored, rawLength: 0,
                summaryLength: stored.count - replaced.reduce(0) { $0 + $1.count }, minTime: block.minTime,
                maxTime: block.maxTime, recorded: 0, previousHash: .zero)
            var events = EventBatch()
            var decodeScratch = GroupedBlockCodec.DecodeScratch()
            try GroupedBlockCodec.decodeStored(
                header, stored, dictionary: dictionary, into: &events, scratch: &decodeScratch)
            #expect((0..<events.count).map { events.event(at: $0) } == (0..<batch.count).map { batch.event(at: $0) })
        }
        try decode(positions: timeOrder)
        func refused(_ positions: [Int64], _ reason: String) {
            let error = #expect(throws: DecodeError.self) { try decode(positions: positions) }
            #expect(error?.reason.contains(reason) == true, "\(String(describing: error))")
        }
        // The first listed event moved to −1, then past the block; the second listed where the first was (the rest
        // where they were); one more than the block's events.
        refused([-1] + timeOrder.dropFirst(), "outside the block")
        timeOrder[0] += 300
        refused(timeOrder, "outside the block")
        timeOrder[0] -= 300
        refused([timeOrder[0], -1, timeOrder[2] + timeOrder[1] + 1] + timeOrder.dropFirst(3), "appears twice")
        refused(timeOrder + [0], "holds more than")
    }

    @Test func aBlockIntroducesOnlyTheIdentifiersNoEarlierBlockDid() throws {
        var first = EventBatch()
        var second = EventBatch()
        for (i, profile) in ["b", "a", "c", "a"].enumerated() {
            try first.append(Event(time: Int64(i), profile: profile, type: .view, touchpoint: "t1"))
        }
        for (i, profile) in ["c", "d", "a", "0"].enumerated() {
            try second.append(Event(time: Int64(i), profile: profile, type: .click, touchpoint: i == 0 ? "t1" : "t0"))
        }
        var dictionary = StoreDictionary()
        var scratch = EventBlockCodec.EncodeScratch()
        let one = GroupedBlockCodec.encode(
            GroupedBlockCodec.prepare(first, range: 0..<4, scratch: &scratch), dictionary: &dictionary)
        let two = GroupedBlockCodec.encode(
            GroupedBlockCodec.prepare(second, range: 0..<4, scratch: &scratch), dictionary: &dictionary)
        // New strings get the next ids in ascending byte order, block by block.
        #expect((0..<dictionary.profiles.count).map { dictionary.profiles.string($0) } == ["a", "b", "c", "0", "d"])
        #expect((0..<dictionary.touchpoints.count).map { dictionary.touchpoints.string($0) } == ["t1", "t0"])
        let header = BlockHeader(
            isCommit: true, firstOffset: 0, count: 4, storedLength: UInt32(two.summary!.count + two.payload.count),
            rawLength: 0, summaryLength: UInt32(two.summary!.count), minTime: 0, maxTime: 3, minRecorded: 0,
            maxRecorded: 0, previousHash: .zero, hash: .zero)
        let summary = try BlockSummary(two.summary!, header: header)
        #expect(summary.firstNewProfile == 3 && summary.newProfiles == 2)
        #expect(summary.firstNewTouchpoint == 1 && summary.newTouchpoints == 1)
        // Groups ascend by (touchpoint id + 1) · 3 + type: t1's clicks, then t0's.
        #expect(summary.groups.map(\.touchpoint) == [1, 2])
        #expect(summary.groups.map(\.count) == [1, 3])
        _ = one
    }

    @Test func groupsHoldTheirEventsInTimeOrderWithTheirTimeRanges() throws {
        var batch = EventBatch()
        let times: [Int64] = [50, 10, 40, 20, 30, 5]
        for (i, t) in times.enumerated() {
            try batch.append(
                Event(
                    time: t, profile: "p\(i % 2)", type: i % 2 == 0 ? .view : .conversion,
                    touchpoint: i % 2 == 0 ? "x" : nil, value: i % 4 == 1 ? 1.5 : nil))
        }
        let (blocks, decoded, _) = try roundTrip(batch, size: 6)
        #expect(decoded[0].times == times)
        #expect(decoded[0].values.map { $0.isNaN ? nil : $0 } == [nil, 1.5, nil, nil, nil, 1.5])
        let header = BlockHeader(
            isCommit: true, firstOffset: 0, count: 6,
            storedLength: UInt32(blocks[0].summary!.count + blocks[0].payload.count), rawLength: 0,
            summaryLength: UInt32(blocks[0].summary!.count), minTime: 5, maxTime: 50, minRecorded: 0, maxRecorded: 0,
            previousHash: .zero, hash: .zero)
        let summary = try BlockSummary(blocks[0].summary!, header: header)
        // The conversions without touchpoint (key 2) come before the views of touchpoint 0 (key 3).
        #expect(summary.groups.map(\.key) == [2, 3])
        #expect(summary.groups.map(\.minTime) == [5, 30])
        #expect(summary.groups.map(\.maxTime) == [20, 50])
        #expect(summary.groups.map(\.valueCount) == [2, 0])
    }

    @Test func aBlockThatNamesAnIdentifierTheDictionaryLacksIsRefused() throws {
        let (block, header, _) = oneBlock(try EventBatch(randomEvents(200, seed: 3)))
        var events = EventBatch()
        var decodeScratch = GroupedBlockCodec.DecodeScratch()
        #expect(throws: DecodeError.self) {
            try GroupedBlockCodec.decodeStored(
                header, block.summary! + block.payload, dictionary: StoreDictionary(), into: &events,
                scratch: &decodeScratch)
        }
    }

    @Test func newStringsOutOfOrderAreRefusedByTheStrictDictionary() throws {
        var out = ByteWriter()
        var table = StringTable()
        table.append(Array("b".utf8))
        table.append(Array("a".utf8))
        EventBlockCodec.frontCode(table, into: &out)
        let summary = BlockSummary(
            count: 1, firstNewProfile: 0, newProfiles: 2, firstNewTouchpoint: 0, newTouchpoints: 0,
            profileBase: 0, profileWidth: 0, sections: [], groups: [])
        var strict = StoreDictionary()
        #expect(throws: DecodeError.self) {
            try out.bytes.withUnsafeBytes { try strict.addProfiles(summary, section: $0, strict: true) }
        }
        #expect(strict.profiles.count == 0)
        // (A string that two blocks introduce is found by verify, over the whole log: StoreTests.)
    }
}
