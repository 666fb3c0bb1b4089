import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import TouchLog

/// The HTTP API of a store (`touchlog serve`): JSON over HTTP/1.1 for services in other languages.
///
/// Routes are under `/v1` (see `openapi.yaml`, served at `/openapi.yaml`). Every error is a JSON object
/// `{"error":{"status","code","message"}}` and a failed request changes nothing. Appends are group-committed with
/// each other, so many concurrent appenders share fsyncs; each is durable when its response is sent.
public struct TouchLogServer: Sendable {
    public let store: TouchLogStore
    public let options: ServerOptions
    /// What `GET /metrics` exports; without one there is no such route.
    public let metrics: PrometheusCollectorRegistry?

    /// Throws ``TouchLogError/Code-swift.struct/invalidArgument`` when the options may not be used (a non-loopback
    /// address without a token, a short token, a bad port). With `metrics`, `GET /metrics` serves that registry in
    /// Prometheus's text format (bootstrap swift-metrics with ``metricsFactory(registry:)`` over it first, before the
    /// store is opened).
    public init(store: TouchLogStore, options: ServerOptions, metrics: PrometheusCollectorRegistry? = nil)
        throws(TouchLogError)
    {
        if let problem = options.problem { throw TouchLogError(code: .invalidArgument, message: problem) }
        self.store = store
        self.options = options
        self.metrics = metrics
    }

    /// Serves until the task is cancelled or the process gets SIGINT or SIGTERM (then open streams are closed and
    /// requests in flight finish). `onListening` gets the port once the server accepts connections.
    public func run(
        logger: Logger = Logger(label: "touchlog.serve"),
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        try await Self.serve(router(), options: options, logger: logger, onListening: onListening)
    }

    /// Serves `router` on the options' address (shared by the store's server and the cluster's).
    static func serve(
        _ router: Router<BasicRequestContext>, options: ServerOptions, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void
    ) async throws {
        let port = options.port
        let app = Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname(options.host, port: port), serverName: "touchlog"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger
        )
        do {
            try await app.runService()
        } catch let error as IOError {
            // Binding fails before anything is served: say so in the words of the command line.
            let reason = error.errnoCode == EADDRINUSE ? "the address is already in use" : "\(error)"
            throw TouchLogError(code: .io, message: "cannot listen on \(options.host):\(port): \(reason)")
        }
    }

    /// The routes, behind the error and token middlewares.
    func router() -> Router<BasicRequestContext> {
        Self.router(options: options, console: true) { router in
            addEventRoutes(to: router)
            addSegmentRoutes(to: router)
            addAdminRoutes(to: router)
            if let metrics { addMetricsRoute(to: router, registry: metrics) }
        }
    }

    /// A router with the metrics, JSON error and token middlewares, then the routes `add` adds; with `console`, the
    /// web console's files too (before the token: they hold no data, and the page asks for the token).
    static func router(
        options: ServerOptions, console: Bool = false, _ add: (Router<BasicRequestContext>) -> Void
    ) -> Router<BasicRequestContext> {
        let router = Router()
        let table = RouteTable()
        // Middlewares first: a route is built with the middlewares added before it. Hummingbird's metrics middleware
        // is outermost, so that it counts every response by route and status, refusals included.
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: JSONErrorMiddleware(routes: table))
        if console { ConsoleFiles.addRoutes(to: router) }
        if let token = options.token { router.add(middleware: BearerTokenMiddleware(token: Array(token.utf8))) }
        add(router)
        router.get("/openapi.yaml") { _, _ -> Response in
            guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
                let text = try? Data(contentsOf: url)
            else {
                throw APIError(
                    status: .notFound, code: "notFound", message: "openapi.yaml is not installed next to this binary")
            }
            return Response(
                status: .ok, headers: [.contentType: "application/yaml"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: Array(text))))
        }
        table.set(router.routes.map { ($0.method, $0.path.description) })
        return router
    }

    /// The body of a request, refused with 413 when longer than `limit` (before reading it, when its length is declared).
    static func body(of request: Request, limit: Int) async throws -> [UInt8] {
        let tooLarge = APIError(
            status: .contentTooLarge, code: "bodyTooLarge",
            message: "the request body is larger than \(limit) bytes; nothing was changed")
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit { throw tooLarge }
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw tooLarge
        }
    }
}
