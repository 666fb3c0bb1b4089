import Metrics
import Prometheus
import Testing
import TouchLog
import TouchLogTestSupport

@testable import TouchLogServer

/// The test process's metrics backend: swift-metrics takes one bootstrap per process, so every test that reads
/// metrics shares this registry (and sees what other tests' stores record meanwhile: checks are on increases).
enum TestMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(TouchLogServer.metricsFactory(registry: registry))
        return registry
    }()
}

private let t0: Int64 = 1_654_070_400_000  // 2022-06-01T08:00:00Z

@Suite(.timeLimit(.minutes(10))) struct MetricsTests {
    /// The samples of a `/metrics` body: `name{labels}` to value.
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    @Test func metricsCountAppendsCommitsQueriesAndRequestsBehindTheToken() async throws {
        let registry = TestMetrics.registry
        let dir = TemporaryDirectory()
        // Opened after the bootstrap, so that the store and its writer record into the registry.
        let store = try TouchLogStore(directory: dir.path + "/s")
        let server = try await RunningServer.start(store, metrics: registry) { $0.token = "metrics-test-token-1234" }

        let unauthorized = try await server.request(.GET, "/metrics", authorized: false)
        #expect(unauthorized.status == 401)
        let first = try await server.get("/metrics")
        #expect(first.status == 200)
        #expect(first.headers["Content-Type"].first?.hasPrefix("text/plain; version=0.0.4") == true)
        let before = Self.samples(first.text)

        for n in 0..<2 {
            let events = (0..<3).map { i in click("p\(n)-\(i)", at: t0 + Int64(i)) }
            #expect(try await server.post("/v1/events", jsonLines(events)).status == 200)
        }
        let definition = """
            {"name":"clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"}}]}
            """
        #expect(try await server.request(.PUT, "/v1/segments/clickers", body: Array(definition.utf8)).status == 201)
        #expect(try await server.get("/v1/segments/clickers/members").status == 200)
        #expect(try await server.get("/v1/segments/clickers/members?asOf=2022-06-01T09:00:00Z").status == 200)
        let knownAt = "/v1/segments/clickers/members?asOf=2022-06-01T09:00:00Z&knownAt=2022-06-01T09:00:00Z"
        #expect(try await server.get(knownAt).status == 200)
        #expect(try await server.get("/v1/segments/nobody/members").status == 404)

        let after = Self.samples(try await server.get("/metrics").text)
        func increase(_ name: String) -> Double { (after[name] ?? 0) - (before[name] ?? 0) }
        #expect(increase("touchlog_appends_total") >= 2)
        #expect(increase("touchlog_appended_events_total") >= 6)
        #expect(increase("touchlog_commits_total") >= 1)
        #expect(increase("touchlog_commit_duration_seconds_count") >= 1)
        #expect(increase("touchlog_fsync_duration_seconds_count") >= 1)
        #expect(increase("touchlog_append_duration_seconds_count") >= 2)
        for kind in ["latest", "past", "known_at"] {
            #expect(increase("touchlog_query_duration_seconds_count{operation=\"members\",time=\"\(kind)\"}") >= 1)
        }
        #expect(increase(#"touchlog_http_requests_total{route="/v1/events",method="POST",status="200"}"#) >= 2)
        // (A request is counted once its response is written: the refused scrape is in the first answer already.)
        #expect(after[#"touchlog_http_requests_total{route="/metrics",method="GET",status="401"}"#] ?? 0 >= 1)
        #expect(
            increase(#"touchlog_http_requests_total{route="/v1/segments/{name}/members",method="GET",status="404"}"#)
                >= 1)
        // The gauges are this store's, read when scraped.
        #expect(after["touchlog_log_events"] == 6)
        #expect(after["touchlog_log_bytes"] == Double(store.logBytes()))
        #expect(after["touchlog_segments"] == 1)
        #expect(after["touchlog_snapshots"] == Double(try store.snapshots().count))
        await server.stop()
    }

    @Test func anOpenWatchIsCountedWhileItStreams() async throws {
        let registry = TestMetrics.registry
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await store.append([Event(time: t0, profile: "p", type: .click, touchpoint: "promo")])
        try await store.putSegment(
            SegmentDefinition(
                json: #"{"name":"s","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"}}]}"#)
        )
        let server = try await RunningServer.start(store, metrics: registry)
        var updates = try await server.events("/v1/segments/s/watch").makeAsyncIterator()
        #expect(try await updates.next()?.event == "update")
        let watching = Self.samples(try await server.get("/metrics").text)
        #expect((watching["touchlog_watched_segments"] ?? 0) >= 1)
        await server.stop()
    }
}
