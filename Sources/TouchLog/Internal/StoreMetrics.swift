import CoreMetrics
import TouchLogStorage

/// What a ``TouchLogStore`` records through swift-metrics (the log writer records its commits and fsyncs itself):
/// nothing unless the process has bootstrapped a metrics backend, as `touchlog serve` does to export them at
/// `/metrics`. Handles are made when the store opens, from the backend bootstrapped by then.
final class StoreMetrics: Sendable {
    /// Appends that committed (each `append` call or ingest; group commit may put several in one commit).
    let appends = Counter(label: "touchlog_appends_total")
    /// Events those appends committed.
    let appendedEvents = Counter(label: "touchlog_appended_events_total")
    /// From an append's call to its durable return (preparing, waiting for the group commit, writing, fsync).
    let appendDuration = Timer(label: "touchlog_append_duration_seconds", preferredDisplayUnit: .seconds)
    /// Segment queries by operation and time kind, each made once so that recording one takes no lookup by label.
    private let queries: [String: Timer]

    /// The operations whose durations are recorded, the `operation` label's values.
    static let operations = ["members", "count", "explain", "history", "diff"]
    /// The `time` label's values: `latest` (as of now, by all that is known), `past` (an earlier as-of time) and
    /// `known_at` (by what was known at an earlier recorded time).
    static let timeKinds = ["latest", "past", "known_at"]

    init() {
        var queries: [String: Timer] = [:]
        for operation in Self.operations {
            for kind in Self.timeKinds {
                queries[operation + "/" + kind] = Timer(
                    label: "touchlog_query_duration_seconds", dimensions: [("operation", operation), ("time", kind)],
                    preferredDisplayUnit: .seconds)
            }
        }
        self.queries = queries
    }

    /// The time kind of a query as of `asOf` by what was known at `knownAt`: `latest` when it asks about the last
    /// second or later with everything recorded.
    static func timeKind(asOf: Int64, knownAt: Int64?) -> String {
        if knownAt != nil { return "known_at" }
        return asOf >= Timestamp.now() - 1_000 ? "latest" : "past"
    }

    /// Runs `body`, recording its duration as a query of `operation` as of `asOf` by `knownAt`.
    func timeQuery<T>(
        _ operation: String, asOf: Int64, knownAt: Int64?, _ body: () async throws(TouchLogError) -> T
    ) async throws(TouchLogError) -> T {
        let started = Platform.monotonicNanoseconds()
        defer {
            queries[operation + "/" + Self.timeKind(asOf: asOf, knownAt: knownAt)]?.recordNanoseconds(
                Int64(Platform.monotonicNanoseconds() - started))
        }
        return try await body()
    }

    /// Records an append of `events` events that started at `started` (``Platform/monotonicNanoseconds()``).
    func appended(_ events: Int, since started: UInt64) {
        appends.increment()
        appendedEvents.increment(by: events)
        appendDuration.recordNanoseconds(Int64(Platform.monotonicNanoseconds() - started))
    }
}

/// Counts the segment watches being iterated (`touchlog_watched_segments`): one is held by each watch iterator and
/// counts it down when the iterator goes.
final class WatchCount: Sendable {
    private let meter: Meter

    init() {
        meter = Meter(label: "touchlog_watched_segments")
        meter.increment()
    }

    deinit { meter.decrement() }
}
