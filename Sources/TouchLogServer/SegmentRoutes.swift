import Hummingbird
import TouchLog

extension TouchLogServer {
    func addSegmentRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v1/segments") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            return Self.segmentList(try store.segments.list())
        }

        router.put("/v1/segments/:name") { request, context -> Response in
            _ = try RequestParameters(request, allowed: [])
            let name = try context.parameters.require("name")
            let definition = try await Self.definition(named: name, in: request, limit: options.maxBodyBytes)
            let (version, changed) = try await store.putSegment(definition)
            return Self.stored(name: name, version: version, changed: changed)
        }

        router.get("/v1/segments/:name") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["version"])
            let name = try context.parameters.require("name")
            let version: Int
            let definition: SegmentDefinition
            if let number = try parameters.integer("version", in: 1...999_999) {
                (version, definition) = (number, try store.segments.version(name, number))
            } else {
                (version, definition) = try store.currentSegment(name)
            }
            return Self.segment(name: name, version: version, definition)
        }

        router.get("/v1/segments/:name/versions") { request, context -> Response in
            _ = try RequestParameters(request, allowed: [])
            let name = try context.parameters.require("name")
            let history = try store.segments.history(name)
            guard !history.isEmpty else {
                throw TouchLogError(code: .notFound, message: "no segment named \"\(name)\"")
            }
            var out = JSONWriter()
            out.object {
                $0.field("name", name)
                $0.field("versions") {
                    $0.array(history) { out, version in
                        out.object {
                            $0.field("version", version.number)
                            $0.field("removed", version.definition == nil)
                            if let definition = version.definition { $0.field("definition", raw: definition.json) }
                        }
                    }
                }
            }
            return out.response()
        }

        router.delete("/v1/segments/:name") { request, context -> Response in
            _ = try RequestParameters(request, allowed: [])
            let name = try context.parameters.require("name")
            let version = try await store.removeSegment(name)
            var out = JSONWriter()
            out.object {
                $0.field("name", name)
                $0.field("version", version)
                $0.field("removed", true)
            }
            return out.response()
        }

        router.get("/v1/segments/:name/members") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["asOf", "knownAt", "countOnly"])
            let name = try context.parameters.require("name")
            let time = try parameters.queryTimeUnlessNow()
            let (version, definition) = try store.currentSegment(name)
            return try await Self.membersResponse(
                store, definition, name: name, version: version, time: time,
                countOnly: try parameters.bool("countOnly") ?? false)
        }

        // An ad-hoc definition, evaluated without being stored (`touchlog query --rules FILE`).
        router.post("/v1/query") { request, _ -> Response in
            let parameters = try RequestParameters(request, allowed: ["asOf", "knownAt", "countOnly"])
            let time = try parameters.queryTimeUnlessNow()
            let definition = try SegmentDefinition(
                json: String(decoding: try await Self.body(of: request, limit: options.maxBodyBytes), as: UTF8.self))
            return try await Self.membersResponse(
                store, definition, name: definition.name, version: nil, time: time,
                countOnly: try parameters.bool("countOnly") ?? false)
        }

        router.get("/v1/segments/:name/explain") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["profile", "asOf", "knownAt"])
            let name = try context.parameters.require("name")
            guard let profile = parameters.string("profile"), !profile.isEmpty else {
                throw APIError.badRequest("profile: required")
            }
            let explanation = try await store.explain(name, profile: profile, at: try parameters.queryTime())
            var out = JSONWriter()
            out.object {
                $0.field("segment", name)
                $0.field("profile", explanation.profile)
                $0.field("asOf", JSONTime(explanation.time.asOf))
                $0.field("knownAt", explanation.time.knownAt.map(JSONTime.init))
                $0.field("known", explanation.isKnown)
                $0.field("member", explanation.isMember)
                $0.field("rules") { $0.array(explanation.rules) { Self.write($1, to: &$0) } }
            }
            return out.response()
        }

        // An audit record (what `touchlog audit NAME` prints), signed when the server was given a key.
        router.get("/v1/segments/:name/audit") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["asOf", "knownAt"])
            let name = try context.parameters.require("name")
            guard let asOf = try parameters.time("asOf") else { throw APIError.badRequest("asOf: required") }
            let record = try await store.audit(
                name, at: QueryTime(asOf: asOf, knownAt: try parameters.time("knownAt")), signingKey: options.auditKey)
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: record.json + "\n")))
        }

        router.get("/v1/segments/:name/diff") { request, context -> Response in
            let name = try context.parameters.require("name")
            let (from, to, knownAt) = try Self.diffTimes(request)
            let diff = try await store.diff(
                name, from: QueryTime(asOf: from, knownAt: knownAt), to: QueryTime(asOf: to, knownAt: knownAt))
            return Self.diff(name: name, from: from, to: to, knownAt: knownAt, diff)
        }

        router.get("/v1/segments/:name/history") { request, context -> Response in
            let name = try context.parameters.require("name")
            let (from, to, step, knownAt) = try Self.historyParameters(request)
            let (version, definition) = try store.currentSegment(name)
            let history = try await store.history(of: definition, from: from, to: to, step: step, knownAt: knownAt)
            return Self.history(name: name, version: version, history)
        }

        // Entries and exits as they happen, as server-sent events (`event: update`, id = the log's end offset).
        router.get("/v1/segments/:name/watch") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["initial", "recheck"])
            let name = try context.parameters.require("name")
            _ = try store.currentSegment(name)  // 404 now rather than an error event
            var watchOptions = SegmentWatchOptions(includeInitialMembers: try parameters.bool("initial") ?? true)
            if let recheck = try parameters.duration("recheck") { watchOptions.recheckInterval = recheck }
            let watch = store.watch(name, options: watchOptions)
            return serverSentEvents(heartbeat: options.heartbeat) { send in
                for try await update in watch {
                    var out = JSONWriter()
                    out.object {
                        $0.field("segment", update.segment)
                        $0.field("version", update.version)
                        $0.field("asOf", JSONTime(update.asOf))
                        $0.field("endOffset", update.endOffset)
                        $0.field("initial", update.isInitial)
                        $0.field("entered", strings: update.entered)
                        $0.field("exited", strings: update.exited)
                    }
                    send("update", String(update.endOffset), out.bytes)
                }
            }
        }
    }

    /// The answer to a members query of `definition`: its members and their count, or with `countOnly` the count alone
    /// (which never builds the list of strings). Nil `time`: now, as of the time the store answered at (a repeated
    /// ask is answered by the definition's live audience).
    static func membersResponse(
        _ store: TouchLogStore, _ definition: SegmentDefinition, name: String, version: Int?, time: QueryTime?,
        countOnly: Bool
    ) async throws(TouchLogError) -> Response {
        let answer = try await store.answer(definition, at: time, listing: !countOnly)
        return Self.members(
            name: name, version: version, time: time ?? QueryTime(asOf: answer.asOf), count: answer.count,
            members: answer.members)
    }

    /// `{"segment","version","asOf","knownAt","count","members"}`, and `missingPartitions` from a cluster that
    /// answered in part.
    static func members(
        name: String, version: Int?, time: QueryTime, count: Int, members: [String]?, missingPartitions: [Int] = []
    ) -> Response {
        var out = JSONWriter()
        out.object {
            $0.field("segment", name)
            $0.field("version", version)
            $0.field("asOf", JSONTime(time.asOf))
            $0.field("knownAt", time.knownAt.map(JSONTime.init))
            $0.field("count", count)
            if let members { $0.field("members", strings: members) }
            if !missingPartitions.isEmpty {
                $0.field("missingPartitions") { $0.array(missingPartitions) { $0.element($1) } }
            }
        }
        return out.response()
    }

    /// The `from`, `to` (both required) and `knownAt` of a diff request.
    static func diffTimes(_ request: Request) throws -> (from: Int64, to: Int64, knownAt: Int64?) {
        let parameters = try RequestParameters(request, allowed: ["from", "to", "knownAt"])
        guard let from = try parameters.time("from"), let to = try parameters.time("to") else {
            throw APIError.badRequest("from and to: both required")
        }
        return (from, to, try parameters.time("knownAt"))
    }

    /// The `from`, `to`, `step` (all required) and `knownAt` of a history request.
    static func historyParameters(_ request: Request) throws -> (from: Int64, to: Int64, step: Int64, knownAt: Int64?) {
        let parameters = try RequestParameters(request, allowed: ["from", "to", "step", "knownAt"])
        guard let from = try parameters.time("from"), let to = try parameters.time("to"),
            let step = try parameters.duration("step")
        else {
            throw APIError.badRequest("from, to and step: all required")
        }
        // The range itself is checked where every history is (an invalid argument: 400).
        let ms = step.components.seconds * 1000 + step.components.attoseconds / 1_000_000_000_000_000
        return (from, to, ms, try parameters.time("knownAt"))
    }

    /// `{"segment","version","from","to","step","knownAt","points":[{"time","count"}]}`, and `missingPartitions` from a
    /// cluster that answered in part.
    static func history(name: String, version: Int?, _ history: SegmentHistory, missingPartitions: [Int] = [])
        -> Response
    {
        var out = JSONWriter()
        out.object {
            $0.field("segment", name)
            $0.field("version", version)
            $0.field("from", JSONTime(history.from))
            $0.field("to", JSONTime(history.to))
            $0.field("step", RuleDuration.format(history.step))
            $0.field("knownAt", history.knownAt.map(JSONTime.init))
            $0.field("points") {
                $0.array(history.points) { out, point in point.write(to: &out) }
            }
            if !missingPartitions.isEmpty {
                $0.field("missingPartitions") { $0.array(missingPartitions) { $0.element($1) } }
            }
        }
        return out.response()
    }

    /// `{"segment","from","to","knownAt","entered","exited"}`.
    static func diff(name: String, from: Int64, to: Int64, knownAt: Int64?, _ diff: SegmentDiff) -> Response {
        var out = JSONWriter()
        out.object {
            $0.field("segment", name)
            $0.field("from", JSONTime(from))
            $0.field("to", JSONTime(to))
            $0.field("knownAt", knownAt.map(JSONTime.init))
            $0.field("entered", strings: diff.entered)
            $0.field("exited", strings: diff.exited)
        }
        return out.response()
    }

    /// The definition a `PUT /v1/segments/{name}` carries, refused when it names another segment.
    static func definition(named name: String, in request: Request, limit: Int) async throws -> SegmentDefinition {
        let definition = try SegmentDefinition(
            json: String(decoding: try await body(of: request, limit: limit), as: UTF8.self))
        guard definition.name == name else {
            throw APIError.badRequest(
                "name: the definition is named \"\(definition.name)\" but was sent to /v1/segments/\(name)")
        }
        return definition
    }

    /// `{"name","version","changed"}`: 201 when the definition changed, 200 when it was already the current one.
    static func stored(name: String, version: Int, changed: Bool) -> Response {
        var out = JSONWriter()
        out.object {
            $0.field("name", name)
            $0.field("version", version)
            $0.field("changed", changed)
        }
        return out.response(status: changed ? .created : .ok)
    }

    /// `{"name","version","definition"}`.
    static func segment(name: String, version: Int, _ definition: SegmentDefinition) -> Response {
        var out = JSONWriter()
        out.object {
            $0.field("name", name)
            $0.field("version", version)
            $0.field("definition", raw: definition.json)
        }
        return out.response()
    }

    /// `{"segments":[{"name","version","description","definition"}]}`.
    static func segmentList(_ segments: [(name: String, version: Int, definition: SegmentDefinition)]) -> Response {
        var out = JSONWriter()
        out.object {
            $0.field("segments") {
                $0.array(segments) { out, segment in
                    out.object {
                        $0.field("name", segment.name)
                        $0.field("version", segment.version)
                        $0.field("description", segment.definition.description)
                        $0.field("definition", raw: segment.definition.json)
                    }
                }
            }
        }
        return out.response()
    }

    static func write(_ verdict: Explanation.RuleVerdict, to out: inout JSONWriter) {
        out.object {
            $0.field("path", verdict.path)
            $0.field("rule", verdict.summary)
            $0.field("holds", verdict.holds)
            $0.field("negated", verdict.negated)
            if let segment = verdict.referencedSegment { $0.field("segment", segment) }
            if let aggregate = verdict.aggregate { $0.field("aggregate", aggregate) }
            if !verdict.matchedSequence.isEmpty {
                $0.field("matchedSequence") { $0.array(verdict.matchedSequence) { write($1, to: &$0) } }
            }
            if !verdict.children.isEmpty {
                $0.field("rules") { $0.array(verdict.children) { write($1, to: &$0) } }
            } else {
                $0.field("qualifying") { $0.array(verdict.qualifying) { write($1, to: &$0) } }
                if let conversion = verdict.conversion {
                    $0.field("conversion", conversion.rawValue)
                    $0.field("conversions") { $0.array(verdict.conversions) { write($1, to: &$0) } }
                }
            }
        }
    }

    static func write(_ event: StoredEvent, to out: inout JSONWriter) {
        out.object {
            $0.field("offset", event.offset)
            $0.field("recorded", JSONTime(event.recorded))
            $0.field("time", JSONTime(event.event.time))
            $0.field("profile", event.event.profile)
            $0.field("type", event.event.type.name)
            $0.field("touchpoint", event.event.touchpoint)
            $0.field("value", event.event.value)
        }
    }
}
