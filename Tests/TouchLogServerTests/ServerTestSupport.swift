import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import TouchLog
import TouchLogServer
import TouchLogTestSupport

/// A `touchlog serve` on a free loopback port for one test, reached through a real HTTP client.
///
/// Requests may wait minutes for an answer in the full test run: Swift Testing runs every suite in one process, and
/// the CPU-bound suites (the SQL differential test) can hold both of Swift's cooperative threads, on which the
/// server's handlers and the client's continuations also run. So the client's timeout is long; a hang still ends.
struct RunningServer {
    static let requestTimeout: TimeAmount = .minutes(10)
    /// `HTTPClient.shared` gives up reading after 90 s; this one waits as long as ``requestTimeout``.
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: requestTimeout, read: requestTimeout)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    let store: TouchLogStore
    let port: Int
    let task: Task<Void, any Error>
    var token: String?

    /// Starts a server for `store` (port 0: the system picks a free one), serving `metrics` at `/metrics` if given.
    static func start(
        _ store: TouchLogStore, metrics: PrometheusCollectorRegistry? = nil,
        configure: (inout ServerOptions) -> Void = { _ in }
    ) async throws -> RunningServer {
        var options = ServerOptions()
        options.port = 0
        options.heartbeat = .milliseconds(200)
        configure(&options)
        let server = try TouchLogServer(store: store, options: options, metrics: metrics)
        let (ports, listening) = AsyncStream<Int>.makeStream()
        let task = Task {
            try await server.run(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) { port in
                listening.yield(port)
            }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        return RunningServer(store: store, port: port, task: task, token: options.token)
    }

    func stop() async {
        task.cancel()
        _ = await task.result
    }

    /// What a request got back.
    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        /// The body as a JSON object.
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        /// `error.code` of a JSON error.
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    }

    func request(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [(String, String)] = [],
        authorized: Bool = true
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let token, authorized { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await Self.client.execute(request, timeout: Self.requestTimeout)
        let collected = try await response.body.collect(upTo: 256 << 20)
        return Reply(
            status: Int(response.status.code), headers: response.headers, body: Array(collected.readableBytesView))
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> Reply {
        try await request(.GET, path, headers: headers)
    }

    func post(_ path: String, _ body: String, contentType: String = "application/x-ndjson") async throws -> Reply {
        try await request(.POST, path, body: Array(body.utf8), headers: [("Content-Type", contentType)])
    }

    /// Opens a server-sent-events stream and returns its events as they arrive, until the task is cancelled.
    func events(_ path: String, headers: [(String, String)] = []) async throws -> AsyncThrowingStream<
        ServerSentEvent, any Error
    > {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response = try await Self.client.execute(request, timeout: Self.requestTimeout)
        guard response.status == .ok else { throw ServerSentEvent.Failure(status: Int(response.status.code)) }
        return AsyncThrowingStream { continuation in
            let reader = Task {
                var pending: [UInt8] = []
                do {
                    for try await buffer in response.body {
                        pending += buffer.readableBytesView
                        while let end = ServerSentEvent.frameEnd(in: pending) {
                            if let event = ServerSentEvent(frame: pending[..<end]) { continuation.yield(event) }
                            pending.removeFirst(end + 2)
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in reader.cancel() }
        }
    }
}

/// One server-sent event (comments are dropped).
struct ServerSentEvent {
    struct Failure: Error { var status: Int }
    var event = "message"
    var id: String?
    var data = ""
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:] }

    /// The index of the blank line ending the first frame.
    static func frameEnd(in bytes: [UInt8]) -> Int? {
        guard bytes.count >= 2 else { return nil }
        for i in 0..<(bytes.count - 1) where bytes[i] == 0x0A && bytes[i + 1] == 0x0A { return i }
        return nil
    }

    init?(frame: ArraySlice<UInt8>) {
        var sawField = false
        for line in String(decoding: frame, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") || line.isEmpty { continue }
            sawField = true
            if line.hasPrefix("event: ") { event = String(line.dropFirst(7)) }
            if line.hasPrefix("id: ") { id = String(line.dropFirst(4)) }
            if line.hasPrefix("data: ") { data += line.dropFirst(6) }
        }
        if !sawField { return nil }
    }
}
