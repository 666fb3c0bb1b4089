import TouchLog

/// How `touchlog serve` listens and what it accepts.
public struct ServerOptions: Sendable {
    /// The address to bind. Anything but a loopback address needs a ``token``.
    public var host = "127.0.0.1"
    /// The port (0: any free port; see ``TouchLogServer/run(onListening:)``).
    public var port = 8080
    /// When set, every request must carry `Authorization: Bearer TOKEN`.
    public var token: String?
    /// The largest request body accepted for `POST /v1/events` (bigger ones get 413 and change nothing).
    public var maxEventBodyBytes = 64 << 20
    /// The largest body of any other request (segment definitions).
    public var maxBodyBytes = 1 << 20
    /// How often an idle server-sent-events stream sends a comment, so that proxies keep it open and a vanished
    /// client is noticed.
    public var heartbeat: Duration = .seconds(15)
    /// Signs the audit records of `GET /v1/segments/{name}/audit` (nil: they are unsigned).
    public var auditKey: AuditSigningKey?

    public init() {}

    /// True when `host` names this machine only (127.0.0.0/8, ::1, localhost).
    public var bindsLoopbackOnly: Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// A sentence saying what is wrong with these options, or nil when they may be used.
    public var problem: String? {
        if !bindsLoopbackOnly && (token ?? "").isEmpty {
            return
                "binding \(host) exposes the store beyond this machine: give a bearer token (--token or TOUCHLOG_TOKEN)"
        }
        if let token, token.utf8.count < 16 { return "the bearer token must be at least 16 characters" }
        if !(0...65_535).contains(port) { return "port \(port) is not between 0 and 65535" }
        if maxEventBodyBytes < 1 || maxBodyBytes < 1 { return "body limits must be positive" }
        return nil
    }
}
