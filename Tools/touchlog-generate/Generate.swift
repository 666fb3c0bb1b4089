import ArgumentParser
import Glibc
import TouchLog
import TouchLogRandom

/// Deterministic synthetic touchpoint events for tests and benchmarks: the same arguments always give the
/// same bytes.
@main
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchlog-generate",
        abstract: "Write deterministic synthetic touchpoint events as JSON Lines or CSV.",
        discussion: """
            Events are spread evenly over --days days from --start in roughly increasing time order; a --late
            fraction of them carry an event time up to 30 days earlier (late arrivals). Profiles are p-0 … p-N
            with a skewed activity (a few heavy users, a long tail); touchpoints start with the seed article's
            (summer-2022-collection, discount-notification, store-location, iphone-interest). 70% views, 25%
            clicks, 5% conversions (half attributed to a touchpoint, each with a value).
            """
    )

    @Option(help: "How many events.") var events = 1_000_000
    @Option(help: "How many distinct profiles to draw from.") var profiles = 100_000
    @Option(help: "How many distinct touchpoints to draw from.") var touchpoints = 200
    @Option(help: "Days the event times span.") var days = 180
    @Option(help: "Fraction of events that arrive late (event time up to 30 days in the past).") var late = 0.01
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "First event time (RFC 3339 or epoch ms).") var start = "2022-04-01T00:00:00Z"
    @Option(help: "jsonl or csv.") var format = "jsonl"
    @Option(name: .shortAndLong, help: "Output file (default: standard output).") var output: String?

    static let seedTouchpoints = [
        "summer-2022-collection", "discount-notification", "store-location", "iphone-interest",
        "newsletter-june", "app-push-welcome", "banner-home-hero", "retargeting-shoes",
    ]

    func validate() throws {
        guard events >= 0, profiles > 0, touchpoints > 0, days > 0 else {
            throw ValidationError("counts must be positive")
        }
        guard (0...1).contains(late) else { throw ValidationError("--late is a fraction from 0 to 1") }
        guard ["jsonl", "csv"].contains(format) else { throw ValidationError("--format is jsonl or csv") }
        guard Timestamp.parse(start) != nil else { throw ValidationError("--start is not a time") }
    }

    func run() throws {
        let fd: Int32 =
            try output.map { path in
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard fd >= 0 else {
                    throw ValidationError("cannot write \(path): \(String(cString: strerror(errno)))")
                }
                return fd
            } ?? 1
        defer { if fd != 1 { close(fd) } }
        let names = (0..<touchpoints).map { i in
            i < Self.seedTouchpoints.count ? Self.seedTouchpoints[i] : "touchpoint-\(String(i).leftPadded(4))"
        }
        var random = SplitMix64(seed: seed)
        let startTime = Timestamp.parse(start)!
        let span = Int64(days) * 86_400_000
        let step = Double(span) / Double(max(1, events))
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        if format == "csv" { out.append(contentsOf: "time,profile,type,touchpoint,value\n".utf8) }
        for i in 0..<events {
            var time = startTime + Int64(Double(i) * step + random.unit() * step)
            if random.unit() < late {
                time = max(startTime, time - 3_600_000 - Int64(random.unit() * Double(30 * 86_400_000)))
            }
            let profile = "p-\(Int(Double(profiles) * pow(random.unit(), 1.5)))"
            let roll = random.unit()
            let type = roll < 0.70 ? "view" : roll < 0.95 ? "click" : "conversion"
            var touchpoint: String? = names[min(touchpoints - 1, Int(Double(touchpoints) * pow(random.unit(), 2)))]
            var value: String?
            if type == "conversion" {
                if random.unit() < 0.5 { touchpoint = nil }
                let cents = 500 + Int(random.unit() * 19_500)
                value = "\(cents / 100).\(String(cents % 100).leftPadded(2))"
            }
            let timeText = Timestamp.format(time)
            if format == "csv" {
                out.append(contentsOf: "\(timeText),\(profile),\(type),\(touchpoint ?? ""),\(value ?? "")\n".utf8)
            } else {
                var line = "{\"time\":\"\(timeText)\",\"profile\":\"\(profile)\",\"type\":\"\(type)\""
                if let touchpoint { line += ",\"touchpoint\":\"\(touchpoint)\"" }
                if let value { line += ",\"value\":\(value)" }
                out.append(contentsOf: (line + "}\n").utf8)
            }
            if out.count >= 1 << 20 { try flush(&out, fd) }
        }
        try flush(&out, fd)
    }

    private func flush(_ out: inout [UInt8], _ fd: Int32) throws {
        var done = 0
        while done < out.count {
            let n = out.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE { throw ExitCode.success }
                throw ValidationError("cannot write: \(String(cString: strerror(errno)))")
            }
            done += n
        }
        out.removeAll(keepingCapacity: true)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
