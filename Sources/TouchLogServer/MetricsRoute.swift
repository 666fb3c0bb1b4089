import Hummingbird
import Metrics
import NIOCore
import Prometheus
import TouchLog

extension TouchLogServer {
    /// A Prometheus factory over `registry` for `MetricsSystem.bootstrap`: touchlog's duration buckets (0.25 ms to
    /// 10 s, for fsyncs as for queries) and Prometheus names for the HTTP metrics Hummingbird's `MetricsMiddleware`
    /// records (`touchlog_http_requests_total{route,method,status}`, `touchlog_http_request_duration_seconds`, …).
    ///
    /// Bootstrap it before opening the store (handles are made when a store and its writer open), then pass
    /// `registry` to ``init(store:options:metrics:)`` so that `GET /metrics` exports it. `touchlog serve` does both.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .milliseconds(2_500), .seconds(5), .seconds(10),
        ]
        factory.nameAndLabelSanitizer = { name, labels in
            (httpMetricNames[name] ?? name, labels.map { (httpLabelNames[$0.0] ?? $0.0, $0.1) })
        }
        return factory
    }

    /// Hummingbird's metric labels and the names `/metrics` gives them.
    private static let httpMetricNames = [
        "hb.requests": "touchlog_http_requests_total",
        "hb.request.errors": "touchlog_http_request_errors_total",
        "http.server.request.duration": "touchlog_http_request_duration_seconds",
        "http.server.active_requests": "touchlog_http_active_requests",
    ]
    private static let httpLabelNames = [
        "http.route": "route", "http.request.method": "method", "http.response.status_code": "status",
        "error.type": "status",
    ]

    /// `GET /metrics`: the registry in Prometheus's text format, after setting the gauges read from the store's files
    /// (log bytes and events, snapshots, segments).
    func addMetricsRoute(to router: Router<BasicRequestContext>, registry: PrometheusCollectorRegistry) {
        let gauges = StoreGauges(registry: registry)
        router.get("/metrics") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            try gauges.update(from: store)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }
}

/// The gauges `/metrics` reads from the store when it is scraped: what another process may have changed (a
/// read-only server's writer) is current at every scrape.
private struct StoreGauges: Sendable {
    let logBytes: Prometheus.Gauge
    let logEvents: Prometheus.Gauge
    let snapshots: Prometheus.Gauge
    let snapshotBytes: Prometheus.Gauge
    let segments: Prometheus.Gauge

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String, _ unit: String, _ help: String) -> Prometheus.Gauge {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    namespace: "touchlog", metricName: name, unitName: unit, helpText: help))
        }
        logBytes = gauge("log", "bytes", "Bytes of the log's files.")
        logEvents = gauge("log", "events", "Events committed to the log (its end offset).")
        snapshots = gauge("snapshots", "", "Snapshot files in the store.")
        snapshotBytes = gauge("snapshot", "bytes", "Bytes of the snapshot files.")
        segments = gauge("segments", "", "Current segment definitions.")
    }

    func update(from store: TouchLogStore) throws {
        logBytes.set(Double(store.logBytes()))
        logEvents.set(Double(store.endOffset))
        let files = try store.snapshots()
        snapshots.set(Double(files.count))
        snapshotBytes.set(Double(files.reduce(Int64(0)) { $0 + $1.bytes }))
        segments.set(Double(try store.segments.list().count))
    }
}
