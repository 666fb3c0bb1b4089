import CoreMetrics

/// What a ``LogWriter`` records through swift-metrics: nothing unless the process has bootstrapped a metrics backend
/// (`touchlog serve` exports them in Prometheus's text format at `/metrics`). Handles are made when the writer opens,
/// from the backend bootstrapped by then.
struct LogMetrics {
    /// Commits that wrote blocks (a group commit of many appends is one).
    let commits = Counter(label: "touchlog_commits_total")
    /// From the start of a commit to its last fsync: writing its blocks and making them durable.
    let commitDuration = Timer(label: "touchlog_commit_duration_seconds", preferredDisplayUnit: .seconds)
    /// Each fsync of a log file.
    let fsyncDuration = Timer(label: "touchlog_fsync_duration_seconds", preferredDisplayUnit: .seconds)
}
