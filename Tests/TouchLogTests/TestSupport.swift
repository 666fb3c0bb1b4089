import Glibc
@_exported import TouchLogTestSupport

@testable import TouchLog

/// Random events covering the contract's corners: unicode and escapes in ids, 1- and 256-byte ids, conversions
/// with and without touchpoints and values, times across the whole allowed range.
func randomEvents(_ count: Int, seed: UInt64) -> [Event] {
    var random = TestRandom(seed: seed)
    let alphabet: [String] = ["a", "b", "Z", "0", "-", "é", "日本", "🎯", "\"", "\\", "\n", "\u{1}", ",", " "]
    func identifier() -> String {
        if random.chance(0.02) { return String(repeating: "x", count: 256) }
        let n = 1 + random.below(12)
        var s = ""
        for _ in 0..<n { s += alphabet[random.below(alphabet.count)] }
        while s.utf8.count > 256 { s.removeLast() }
        return s
    }
    let profiles = (0..<max(1, count / 3)).map { _ in identifier() }
    let touchpoints = (0..<20).map { _ in identifier() }
    var time: Int64 = 1_654_070_400_000
    return (0..<count).map { _ in
        time += Int64(random.below(100_000))
        var t = time
        if random.chance(0.05) { t = EventLimits.minTime + Int64(random.below(1000)) }
        if random.chance(0.05) { t = EventLimits.maxTime - Int64(random.below(1000)) }
        let type = EventType(rawValue: UInt8(random.below(3)))!
        let touchpoint: String? =
            type == .conversion && random.chance(0.5) ? nil : touchpoints[random.below(touchpoints.count)]
        let value: Double? = random.chance(0.3) ? Double(random.below(100_000)) / 100 - 200 : nil
        return Event(
            time: t, profile: profiles[random.below(profiles.count)], type: type, touchpoint: touchpoint, value: value)
    }
}
