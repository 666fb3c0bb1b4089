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
        let batch = try EventBatch(randomEvents(200, seed: 3))
        var dictionary = StoreDictionary()
        var scratch = EventBlockCodec.EncodeScratch()
        let block = GroupedBlockCodec.encode(
            GroupedBlockCodec.prepare(batch, range: 0..<200, scratch: &scratch), dictionary: &dictionary)
        let (header, _) = BlockHeader.sealed(
            version: 2, isCommit: true, firstOffset: 0, count: 200, storedPayload: block.summary! + block.payload,
            rawLength: 0,
            summaryLength: block.summary!.count, minTime: block.minTime, maxTime: block.maxTime, recorded: 0,
            previousHash: .zero)
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
