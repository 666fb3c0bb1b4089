// The JSON shapes the CLI and the server both print, each written in one place. (The OpenAPI document,
// Sources/TouchLogServer/openapi.yaml, describes them field by field; the README's command table names them.)

extension StoreStats {
    /// `touchlog stats --json` and `GET /v1/stats`: `{"events","profiles","erasedProfiles","touchpoints","files",
    /// "blocks","logBytes","totalBytes","bytesPerEvent","views","clicks","conversions","firstTime","lastTime",
    /// "firstRecorded","lastRecorded","snapshots","segments","format"}`; the four times are null in an empty store.
    package func write(to out: inout JSONWriter) {
        out.object {
            $0.field("events", events)
            $0.field("profiles", profiles)
            $0.field("erasedProfiles", erasedProfiles)
            $0.field("touchpoints", touchpoints)
            $0.field("files", files)
            $0.field("blocks", blocks)
            $0.field("logBytes", Int(logBytes))
            $0.field("totalBytes", Int(totalBytes))
            $0.field("bytesPerEvent", bytesPerEvent)
            $0.field("views", eventsByType[.view] ?? 0)
            $0.field("clicks", eventsByType[.click] ?? 0)
            $0.field("conversions", eventsByType[.conversion] ?? 0)
            $0.field("firstTime", timeRange.map { JSONTime($0.lowerBound) })
            $0.field("lastTime", timeRange.map { JSONTime($0.upperBound) })
            $0.field("firstRecorded", recordedRange.map { JSONTime($0.lowerBound) })
            $0.field("lastRecorded", recordedRange.map { JSONTime($0.upperBound) })
            $0.field("snapshots", snapshots)
            $0.field("segments", segments)
            $0.field("format", Int(formatVersion))
        }
    }
}

extension InputProblem {
    /// A refused input line, in an HTTP error's `problems` and in `touchlog append --rejects FILE` (one per line, with
    /// `text`, the line itself): `{"line","file","column","reason","message","text"}`, `file` only with several
    /// inputs, `column` only when the problem has a place in the line.
    package func write(to out: inout JSONWriter, text: [UInt8]? = nil) {
        out.object {
            $0.field("line", line)
            if let source { $0.field("file", source) }
            if let column { $0.field("column", column) }
            $0.field("reason", reason)
            $0.field("message", description)
            if let text { $0.field("text", String(decoding: text, as: UTF8.self)) }
        }
    }
}

extension SegmentHistory.Point {
    /// One point of a history: `{"time","count"}`, a line of `touchlog history --format jsonl` and an element of the
    /// `points` of `GET /v1/segments/{name}/history`.
    package func write(to out: inout JSONWriter) {
        out.object {
            $0.field("time", JSONTime(time))
            $0.field("count", count)
        }
    }
}
