import Testing

@testable import TouchLog

@Suite struct EventBlockCodecTests {
    @Test(arguments: [1, 2, 7, 100, 5_000])
    func randomEventsSurviveEncodeAndDecode(count: Int) throws {
        for seed in UInt64(1)...5 {
            let events = randomEvents(count, seed: seed &* 31 &+ UInt64(count))
            let batch = try EventBatch(events)
            let block = EventBlockCodec.encode(batch, range: 0..<batch.count)
            #expect(block.count == count)
            #expect(block.minTime == events.map(\.time).min())
            #expect(block.maxTime == events.map(\.time).max())
            let decoded = try EventBlockCodec.decode(block.payload, strict: true)
            #expect((0..<decoded.count).map { decoded.event(at: $0) } == events)
        }
    }

    @Test func aSubrangeOfABatchEncodesOnlyItsOwnStrings() throws {
        let events = randomEvents(300, seed: 9)
        let batch = try EventBatch(events)
        let decoded = try EventBlockCodec.decode(EventBlockCodec.encode(batch, range: 100..<200).payload, strict: true)
        #expect((0..<decoded.count).map { decoded.event(at: $0) } == Array(events[100..<200]))
        #expect(decoded.profiles.count == Set(events[100..<200].map(\.profile)).count)
    }

    /// The store encodes a big batch block by block with one scratch per thread: every block must come out as if
    /// encoded alone (nothing left over from the block before), whatever ids its events use.
    @Test func blocksOfOneBatchEncodedWithSharedScratchAreEachTheirOwn() throws {
        let events = randomEvents(5_000, seed: 77)
        let batch = try EventBatch(events)
        var scratch = EventBlockCodec.EncodeScratch()
        for start in stride(from: 0, to: events.count, by: 700) {
            let range = start..<min(start + 700, events.count)
            let block = EventBlockCodec.encode(batch, range: range, scratch: &scratch)
            #expect(block.payload == EventBlockCodec.encode(batch, range: range).payload)
            let decoded = try EventBlockCodec.decode(block.payload, strict: true)
            #expect((0..<decoded.count).map { decoded.event(at: $0) } == Array(events[range]))
        }
    }

    /// Events on their way to blocks are batched without interning profiles (the same profile may be several
    /// strings): the encoder merges equal strings, so the block is byte for byte the one an interned batch gives.
    @Test(arguments: [1, 2, 64, 3_000])
    func aBatchThatDoesNotInternProfilesEncodesToTheSameBytes(count: Int) throws {
        for seed in UInt64(1)...3 {
            let events = randomEvents(count, seed: seed &* 7 &+ UInt64(count))
            let interned = try EventBatch(events)
            var plain = EventBatch.forEncoding()
            for event in events { try plain.append(event) }
            #expect(plain.profiles.count == count)
            for range in [0..<count, (count / 3)..<count] where !range.isEmpty {
                let block = EventBlockCodec.encode(plain, range: range)
                #expect(block.payload == EventBlockCodec.encode(interned, range: range).payload)
                let decoded = try EventBlockCodec.decode(block.payload, strict: true)
                #expect((0..<decoded.count).map { decoded.event(at: $0) } == Array(events[range]))
            }
        }
    }

    @Test func dictionariesAreSortedByBytes() throws {
        let batch = try EventBatch(
            ["b", "a", "é", "Z", "ab"].map { Event(time: 0, profile: $0, type: .view, touchpoint: "t") })
        let decoded = try EventBlockCodec.decode(EventBlockCodec.encode(batch, range: 0..<batch.count).payload)
        #expect((0..<decoded.profiles.count).map { decoded.profiles.string($0) } == ["Z", "a", "ab", "b", "é"])
    }

    @Test func truncatedOrAlteredPayloadsAreRefusedNotMisread() throws {
        let batch = try EventBatch(randomEvents(50, seed: 4))
        let payload = EventBlockCodec.encode(batch, range: 0..<batch.count).payload
        for cut in 0..<payload.count {
            #expect(throws: DecodeError.self) { try EventBlockCodec.decode(Array(payload[..<cut]), strict: true) }
        }
        #expect(throws: DecodeError.self) { try EventBlockCodec.decode(payload + [0], strict: true) }
    }

    /// The profile dictionary of a two-event block (`"ab"`, then `"ac"`: entries (0, 2, "ab"), (1, 1, "c")) replaced by
    /// `entries`, so that strict decoding meets dictionaries the encoder never writes.
    @Test(arguments: [
        // "ac", "ab"
        ([0, 2, 0x61, 0x63, 1, 1, 0x62] as [UInt8], "profile dictionary is not in ascending order at entry 1"),
        // "ab" twice
        ([0, 2, 0x61, 0x62, 2, 0], "profile dictionary is not in ascending order at entry 1"),
        // shares too little
        ([0, 2, 0x61, 0x62, 1, 1, 0x62], "profile dictionary is not in ascending order at entry 1"),
        ([0, 2, 0x61, 0x62, 1, 1, 0x61], "profile dictionary is not in ascending order at entry 1"),  // "aa" after "ab"
        ([0, 0, 0, 1, 0x61], "profile 0 is 0 bytes"),
    ])
    func strictDecodingRefusesDictionariesTheEncoderNeverWrites(entries: [UInt8], message: String) throws {
        let batch = try EventBatch([
            Event(time: 0, profile: "ab", type: .view, touchpoint: "t"),
            Event(time: 1, profile: "ac", type: .view, touchpoint: "t"),
        ])
        let payload = EventBlockCodec.encode(batch, range: 0..<2).payload
        let written: [UInt8] = [2, 0, 2, 0x61, 0x62, 1, 1, 0x63]
        let at = try #require(
            (0...(payload.count - written.count)).first { Array(payload[$0..<$0 + written.count]) == written })
        #expect(try EventBlockCodec.decode(payload, strict: true).count == 2)
        let altered = Array(payload[..<at]) + [2] + entries + Array(payload[(at + written.count)...])
        #expect {
            try EventBlockCodec.decode(altered, strict: true)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func anEntryLongerThanTheLimitIsRefusedEvenWhenBuiltFromAPrefix() throws {
        let long = String(repeating: "x", count: 256)
        let batch = try EventBatch([
            Event(time: 0, profile: long, type: .view, touchpoint: "t"),
            Event(time: 1, profile: long + "", type: .view, touchpoint: "u"),
        ])
        let payload = EventBlockCodec.encode(batch, range: 0..<2).payload
        // One entry of 256 bytes: (0, 256, x…). Append a second that shares all 256 and adds one: 257 bytes.
        let written: [UInt8] = [1, 0, 0x80, 0x02] + Array(repeating: 0x78, count: 256)
        let at = try #require(
            (0...(payload.count - written.count)).first { Array(payload[$0..<$0 + written.count]) == written })
        let altered =
            Array(payload[..<at]) + [2] + written.dropFirst() + [0x80, 0x02, 1, 0x79]
            + Array(payload[(at + written.count)...])
        #expect {
            try EventBlockCodec.decode(altered, strict: true)
        } throws: { error in
            "\(error)".contains("profile 1 is 257 bytes")
        }
    }

    @Test func eventsThatBreakTheContractAreRefusedByTheLibrary() {
        let bad: [(Event, String)] = [
            (Event(time: 0, profile: "", type: .view, touchpoint: "t"), "profile is empty"),
            (
                Event(time: 0, profile: String(repeating: "p", count: 257), type: .view, touchpoint: "t"),
                "over the 256-byte limit"
            ),
            (Event(time: 0, profile: "p", type: .click), "touchpoint is required for a click"),
            (Event(time: 0, profile: "p", type: .view, touchpoint: ""), "touchpoint is empty"),
            (Event(time: EventLimits.maxTime + 1, profile: "p", type: .conversion), "outside years 0000-9999"),
            (Event(time: 0, profile: "p", type: .conversion, value: .infinity), "finite"),
        ]
        for (event, reason) in bad {
            #expect { try EventBatch([event]) } throws: { "\($0)".contains(reason) }
        }
    }
}
