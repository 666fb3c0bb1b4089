import Testing

@testable import TouchLog

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2022-06-01T10:21:14.250Z", Int64(1_654_078_874_250)),
        ("2022-06-01T10:21:14Z", 1_654_078_874_000),
        ("2022-06-02T08:00:00+02:00", 1_654_149_600_000),
        ("2022-06-01t10:21:14.2509z", 1_654_078_874_250),
        ("2022-06-01 10:21:14.25-01:30", 1_654_084_274_250),
        ("1654070400000", 1_654_070_400_000),
        ("-1", -1),
        ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ("0000-01-01T00:00:00Z", EventLimits.minTime),
        ("9999-12-31T23:59:59.999Z", EventLimits.maxTime),
        ("1969-12-31T23:59:59.999Z", -1),
    ])
    func validTimesParse(text: String, ms: Int64) {
        #expect(Timestamp.parse(text) == ms)
    }

    @Test(arguments: [
        "", "2022-06-01", "2022-06-01T10:21Z", "2022-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2022-06-31T00:00:00Z",
        "2022-06-01T24:00:00Z", "2022-06-01T10:60:00Z", "2022-06-01T10:00:60Z", "2022-06-01T10:21:14",
        "2022-06-01T10:21:14.Z",
        "2022-06-01T10:21:14+0200", "2022-06-01T10:21:14+02:00 ", "12.5", "1e3", "99999999999999999999",
        "2022-06-01T10:21:14ZZ",
        "253402300800000",
    ])
    func invalidTimesAreRefused(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func formattingRoundTripsEveryMillisecondRange() {
        var random = TestRandom(seed: 3)
        for _ in 0..<20_000 {
            let ms = EventLimits.minTime + Int64(random.next() % UInt64(EventLimits.maxTime - EventLimits.minTime + 1))
            let text = Timestamp.format(ms)
            #expect(text.utf8.count == 24)
            #expect(Timestamp.parse(text) == ms, "\(ms) → \(text)")
        }
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999Z")
    }

    /// The word-at-a-time reading of `YYYY-MM-DDTHH:MM:SS.mmmZ` agrees with the byte-by-byte one on every such text,
    /// and on texts one byte away from one (any byte, anywhere) it either agrees or leaves the text to the other.
    @Test func theCanonicalFormIsReadAsByteByByte() {
        var random = TestRandom(seed: 11)
        let interesting: [UInt8] =
            Array("0123456789-:.TtZz +/\u{00}\u{7F}\u{FF}".utf8) + [0x2F, 0x3A, 0x39 + 7, 0xF9, 0xFA]
        var agreed = 0
        var leftToTheOther = 0
        for round in 0..<40_000 {
            let ms = EventLimits.minTime + Int64(random.next() % UInt64(EventLimits.maxTime - EventLimits.minTime + 1))
            var text = Array(Timestamp.format(ms).utf8)
            if round % 2 == 1 {
                let at = Int(random.next() % 24)
                text[at] =
                    random.next() % 2 == 0
                    ? interesting[Int(random.next() % UInt64(interesting.count))]
                    : UInt8(truncatingIfNeeded: random.next())
            }
            text.withUnsafeBytes { raw in
                let fast = Timestamp.parseCanonical(raw)
                let slow = Timestamp.parseRFC3339ByteByByte(raw)
                if round % 2 == 0 { #expect(fast == ms && slow == ms) }
                if let fast {
                    #expect(fast == slow, "\(String(decoding: text, as: UTF8.self))")
                    agreed += 1
                } else {
                    leftToTheOther += 1
                }
            }
        }
        // Impossible dates and hours as well as wrong separators and non-digits.
        for text in [
            "2023-02-29T00:00:00.000Z", "2022-00-01T00:00:00.000Z", "2022-06-00T00:00:00.000Z",
            "2022-06-01T24:00:00.000Z", "2022-06-01T10:60:00.000Z", "2022-06-01T10:00:60.000Z",
            "2022-06-01T10:00:00.000z", "2022-06-01t10:00:00.000Z", "2022-06-01T10:00:00,000Z",
            "2022-06-01T10:00:0:.000Z",
        ] {
            #expect(Array(text.utf8).withUnsafeBytes { Timestamp.parseCanonical($0) } == nil, "\(text)")
        }
        #expect(agreed > 20_000 && leftToTheOther > 10_000)
    }
}
