import Foundation
import Hummingbird
import Logging
import NIOCore
import TouchLog
import TouchLogCluster

/// The HTTP API over a cluster (`touchlog serve --nats`): the same routes and JSON as ``TouchLogServer`` where the
/// cluster can answer them, each asked of the partitions' owners through NATS.
///
/// Differences, each a documented 501 or field: a segment's `version` is its revision in the cluster's bucket (no
/// version history); appends answer `acknowledged` (JetStream has them) instead of offsets; an explanation is the
/// owner's text (`explanation`) with its partition; tail, watch, snapshots and verify are per partition store
/// (`touchlog verify --nats`, or the node's own stores) and answer 501.
public struct TouchLogClusterServer: Sendable {
    public let client: ClusterClient
    public let options: ServerOptions

    public init(client: ClusterClient, options: ServerOptions) throws(TouchLogError) {
        if let problem = options.problem { throw TouchLogError(code: .invalidArgument, message: problem) }
        self.client = client
        self.options = options
    }

    /// Serves until the task is cancelled or the process gets SIGINT or SIGTERM; `onListening` gets the port.
    public func run(
        logger: Logger = Logger(label: "touchlog.serve"),
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        try await TouchLogServer.serve(
            TouchLogServer.router(options: options) { addRoutes(to: $0) }, options: options, logger: logger,
            onListening: onListening)
    }

    /// Runs `work` (which waits on NATS) on a thread of its own, and turns cluster errors into API errors: a missing
    /// partition or an unreachable NATS is 503, a store's error keeps its status.
    func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: Result { try work() }) }
            thread.start()
        }
        do {
            return try result.get()
        } catch let error as ClusterError {
            switch error.kind {
            case .store(let storeError):
                throw APIError(
                    status: APIError(storeError).status, code: storeError.code.name, message: error.message,
                    problems: storeError.problems)
            case .partitionMissing:
                throw APIError(status: .serviceUnavailable, code: "partitionMissing", message: error.message)
            case .notInitialised:
                throw APIError(status: .serviceUnavailable, code: "clusterNotInitialised", message: error.message)
            case .unavailable:
                throw APIError(status: .serviceUnavailable, code: "natsUnavailable", message: error.message)
            case .conflict: throw APIError(status: .conflict, code: "conflict", message: error.message)
            case .corrupt: throw APIError(status: .internalServerError, code: "corrupt", message: error.message)
            }
        }
    }

    static func notOverCluster(_ what: String) -> APIError {
        APIError(
            status: .notImplemented, code: "notAvailableOverCluster",
            message: "\(what) is per partition store: ask a node's store directly (touchlog serve --store DIR/p<N>)")
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        let client = self.client
        router.get("/v1/health") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            let owners = try await blocking { try client.owners() }
            var out = JSONWriter()
            out.object {
                $0.field("status", owners.count == client.config.partitions ? "ok" : "degraded")
                $0.field("cluster", client.config.id)
                $0.field("partitions", client.config.partitions)
                $0.field("ownedPartitions", owners.count)
            }
            return out.response()
        }

        router.get("/v1/stats") { request, _ -> Response in
            let parameters = try RequestParameters(request, allowed: ["allowPartial"])
            let allowPartial = try parameters.bool("allowPartial") ?? false
            let stats = try await blocking { try client.stats(allowPartial: allowPartial) }
            var out = JSONWriter()
            stats.write(to: &out)
            return out.response()
        }

        router.get("/v1/segments") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            let segments = try await blocking { try client.segments() }
            return TouchLogServer.segmentList(segments.map { ($0.name, Int($0.revision), $0.definition) })
        }

        router.put("/v1/segments/:name") { request, context -> Response in
            _ = try RequestParameters(request, allowed: [])
            let name = try context.parameters.require("name")
            let definition = try await TouchLogServer.definition(named: name, in: request, limit: options.maxBodyBytes)
            let (revision, changed) = try await blocking { () throws -> (UInt64, Bool) in
                if let current = try? client.segment(name), current.definition == definition {
                    return (current.revision, false)
                }
                return (try client.putSegment(definition), true)
            }
            return TouchLogServer.stored(name: name, version: Int(revision), changed: changed)
        }

        router.get("/v1/segments/:name") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["version"])
            if parameters.string("version") != nil { throw Self.notOverCluster("a segment's version history") }
            let name = try context.parameters.require("name")
            let (revision, definition) = try await blocking { try client.segment(name) }
            return TouchLogServer.segment(name: name, version: Int(revision), definition)
        }

        router.delete("/v1/segments/:name") { request, context -> Response in
            _ = try RequestParameters(request, allowed: [])
            let name = try context.parameters.require("name")
            try await blocking { try client.removeSegment(name) }
            var out = JSONWriter()
            out.object {
                $0.field("name", name)
                $0.field("removed", true)
            }
            return out.response()
        }

        router.get("/v1/segments/:name/members") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["asOf", "knownAt", "countOnly", "allowPartial"])
            let name = try context.parameters.require("name")
            let time = try parameters.queryTime()
            let (revision, definition) = try await blocking { try client.segment(name) }
            return try await membersResponse(
                definition, name: name, version: revision, time: time, parameters: parameters)
        }

        router.post("/v1/query") { request, _ -> Response in
            let parameters = try RequestParameters(request, allowed: ["asOf", "knownAt", "countOnly", "allowPartial"])
            let time = try parameters.queryTime()
            let definition = try SegmentDefinition(
                json: String(
                    decoding: try await TouchLogServer.body(of: request, limit: options.maxBodyBytes), as: UTF8.self))
            return try await membersResponse(
                definition, name: definition.name, version: nil, time: time, parameters: parameters)
        }

        router.get("/v1/segments/:name/explain") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["profile", "asOf", "knownAt"])
            let name = try context.parameters.require("name")
            guard let profile = parameters.string("profile"), !profile.isEmpty else {
                throw APIError.badRequest("profile: required")
            }
            let time = try parameters.queryTime()
            let text = try await blocking { () throws -> String in
                let (revision, definition) = try client.segment(name)
                return try client.explain(definition, revision: revision, profile: profile, at: time)
            }
            var out = JSONWriter()
            out.object {
                $0.field("segment", name)
                $0.field("profile", profile)
                $0.field("asOf", JSONTime(time.asOf))
                $0.field("knownAt", time.knownAt.map(JSONTime.init))
                $0.field("member", text.hasPrefix("\(profile) is a member"))
                $0.field("partition", client.config.partition(of: profile))
                $0.field("explanation", text)
            }
            return out.response()
        }

        router.get("/v1/segments/:name/history") { request, context -> Response in
            let name = try context.parameters.require("name")
            let (from, to, step, knownAt) = try TouchLogServer.historyParameters(request)
            let (history, missing) = try await blocking { () throws -> (SegmentHistory, [Int]) in
                try client.history(
                    of: try client.segment(name).definition, from: from, to: to, step: step, knownAt: knownAt)
            }
            return TouchLogServer.history(name: name, version: nil, history, missingPartitions: missing)
        }

        router.get("/v1/segments/:name/diff") { request, context -> Response in
            let name = try context.parameters.require("name")
            let (from, to, knownAt) = try TouchLogServer.diffTimes(request)
            let diff = try await blocking { () throws -> SegmentDiff in
                let definition = try client.segment(name).definition
                let before = try client.members(of: definition, at: QueryTime(asOf: from, knownAt: knownAt)).members
                let after = try client.members(of: definition, at: QueryTime(asOf: to, knownAt: knownAt)).members
                return SegmentDiff(before: before, after: after)
            }
            return TouchLogServer.diff(name: name, from: from, to: to, knownAt: knownAt, diff)
        }

        router.post("/v1/events") { request, _ -> Response in
            let parameters = try RequestParameters(request, allowed: ["format"])
            let format = try TouchLogServer.inputFormat(
                parameters.string("format"), contentType: request.headers[.contentType])
            let input = try await TouchLogServer.body(of: request, limit: options.maxEventBodyBytes)
            let appended = try await blocking { () throws -> Int in
                let batch: EventBatch
                do { batch = try EventBatch.parse(input, format: format) } catch let error as TouchLogError {
                    throw ClusterError(.store(error), error.message)
                }
                return try client.append(batch)
            }
            var out = JSONWriter()
            out.object {
                $0.field("appended", appended)
                $0.field("acknowledged", true)
                $0.field("rejected", 0)
                $0.field("problems") { $0.array([String]()) { $0.element($1) } }
            }
            return out.response()
        }

        router.get("/v1/events") { request, _ -> Response in
            let parameters = try RequestParameters(
                request, allowed: ["since", "until", "knownAt", "includeErased", "allowPartial"],
                repeatable: ["profile", "touchpoint", "type"])
            var filter = try TouchLogServer.replayFilter(parameters)
            filter.includeErased = try parameters.bool("includeErased") ?? false
            let allowPartial = try parameters.bool("allowPartial") ?? false
            let replayFilter = filter
            let lines = try await blocking { try client.replay(replayFilter, allowPartial: allowPartial).lines }
            return Response(
                status: .ok, headers: [.contentType: "application/x-ndjson"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: lines)))
        }

        router.delete("/v1/profiles/:id") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["reason"])
            guard let id = try context.parameters.require("id").removingPercentEncoding else {
                throw APIError.badRequest("the profile in the path is not valid percent-encoded UTF-8")
            }
            let reason = parameters.string("reason") ?? ""
            _ = try await blocking { try client.erase(profiles: [id], reason: reason) }
            var out = JSONWriter()
            out.object { $0.field("erased", true) }
            return out.response()
        }

        for (method, path, what) in [
            (HTTPRequest.Method.get, "/v1/segments/:name/versions", "a segment's version history"),
            (.get, "/v1/segments/:name/watch", "watching a segment"), (.get, "/v1/events/tail", "tailing events"),
            (.get, "/v1/snapshots", "snapshots"), (.post, "/v1/snapshots", "snapshots"),
            (.post, "/v1/verify", "verify"),
        ] {
            router.on(RouterPath(path), method: method) { _, _ -> Response in throw Self.notOverCluster(what) }
        }
    }

    func membersResponse(
        _ definition: SegmentDefinition, name: String, version: UInt64?, time: QueryTime,
        parameters: RequestParameters
    ) async throws -> Response {
        let countOnly = try parameters.bool("countOnly") ?? false
        let allowPartial = try parameters.bool("allowPartial") ?? false
        let client = self.client
        let answer = try await blocking { () throws -> (count: Int, members: [String]?, missing: [Int]) in
            if countOnly {
                let result = try client.count(of: definition, at: time, allowPartial: allowPartial)
                return (result.count, nil, result.missing)
            }
            let result = try client.members(of: definition, at: time, allowPartial: allowPartial)
            return (result.members.count, result.members, result.missing)
        }
        return TouchLogServer.members(
            name: name, version: version.map { Int($0) }, time: time, count: answer.count, members: answer.members,
            missingPartitions: answer.missing)
    }
}
