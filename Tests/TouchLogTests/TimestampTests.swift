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
}
