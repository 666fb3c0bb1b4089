import ArgumentParser
import Logging
import Metrics
import Prometheus
import TouchLog
import TouchLogCluster
import TouchLogServer
import TouchLogStorage

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the store's JSON API over HTTP (see /openapi.yaml) until SIGINT or SIGTERM.",
        discussion: """
            Binds 127.0.0.1 by default. Binding any other address needs a bearer token (--token or TOUCHLOG_TOKEN, \
            at least 16 characters); every request must then send 'Authorization: Bearer TOKEN'. \
            The server is the store's writer (it holds the lock) unless --read-only is given. With --nats it serves \
            the API over a cluster instead: queries are gathered from the partitions' owners, appends go to JetStream.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var cluster: ClusterOptions
    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port to listen on (0: any free port, printed at start).") var port = 8080
    @Option(help: ArgumentHelp("The bearer token clients must send (default: $TOUCHLOG_TOKEN).", valueName: "token"))
    var token: String?
    @Option(help: ArgumentHelp("The largest body accepted by POST /v1/events, in bytes.", valueName: "bytes"))
    var maxEventBody = 64 << 20
    @Flag(help: "Open the store read-only: no lock is taken, changes get 403 (queries still save snapshots).")
    var readOnly = false
    @Flag(help: "Log each server event at info level on stderr.") var verbose = false
    @Option(
        help: ArgumentHelp(
            "The nice value of the threads that answer queries, 0 (the server's own priority) through 19: above 0, appends keep more of a busy CPU and queries wait longer.",
            valueName: "n"))
    var queryNice: Int32 = QueryPriority.belowAppends.nice
    @Option(
        help: ArgumentHelp(
            "Sign the audit records of GET /v1/segments/{name}/audit with this Ed25519 private key.",
            valueName: "keyfile"))
    var auditKey: String?

    func validate() throws {
        if let problem = serverOptions().problem { throw ValidationError(problem) }
        if maxEventBody < 1 { throw ValidationError("--max-event-body must be positive") }
        if !(0...19).contains(queryNice) {
            throw ValidationError("--query-nice must be 0 through 19, not \(queryNice)")
        }
    }

    func serverOptions() -> ServerOptions {
        var options = ServerOptions()
        options.host = host
        options.port = port
        options.token = token ?? Platform.environment("TOUCHLOG_TOKEN").flatMap { $0.isEmpty ? nil : $0 }
        options.maxEventBodyBytes = maxEventBody
        return options
    }

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) {
            if readOnly {
                throw ValidationError(
                    "--read-only is not available with --nats: a cluster's changes go through JetStream")
            }
            let client = try reportingClusterErrors { try ClusterClient(urls: urls, name: "touchlog-serve") }
            try await reportingErrorsAsync {
                let server = try TouchLogClusterServer(client: client, options: serverOptions())
                var logger = Logger(label: "touchlog.serve", factory: StandardErrorLogHandler.init)
                logger.logLevel = verbose ? .info : .warning
                let host = self.host.contains(":") ? "[\(self.host)]" : self.host
                try await server.run(logger: logger) { port in
                    printError(
                        "touchlog: serving cluster \(client.config.id) (\(client.config.partitions) partitions) on http://\(host):\(port)"
                    )
                }
            }
            return
        }
        let directory = try storeOptions.directory()
        // Metrics first: the store and its writer make their handles from the backend bootstrapped when they open.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(TouchLogServer.metricsFactory(registry: registry))
        try await reportingErrorsAsync {
            var options = serverOptions()
            options.auditKey = try auditKey.map { path throws(TouchLogError) in try AuditSigningKey(contentsOf: path) }
            let store =
                readOnly
                ? try readingStore(directory)
                : try writableStore(directory, queryPriority: QueryPriority(nice: queryNice))
            defer { store.close() }
            let server = try TouchLogServer(store: store, options: options, metrics: registry)
            var logger = Logger(label: "touchlog.serve", factory: StandardErrorLogHandler.init)
            logger.logLevel = verbose ? .info : .warning
            let host = self.host.contains(":") ? "[\(self.host)]" : self.host
            try await server.run(logger: logger) { port in
                printError(
                    "touchlog: serving \(directory)\(readOnly ? " (read-only)" : "") on http://\(host):\(port) (API document: /openapi.yaml)"
                )
            }
        }
    }
}

/// Log lines on standard error, as `StreamLogHandler` writes them, with the metadata kept as set and formatted only
/// when a line is written. `StreamLogHandler` formats its metadata whenever it is set, and the server sets a request
/// id on every request's logger, most of which never log a line.
struct StandardErrorLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(label: String) { stream = .standardError(label: label) }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var stream = self.stream
        stream.metadata = metadata
        stream.log(event: event)
    }
}
