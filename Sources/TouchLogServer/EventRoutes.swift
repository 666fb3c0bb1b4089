import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TouchLog

extension TouchLogServer {
    func addEventRoutes(to router: Router<BasicRequestContext>) {
        // Append: a JSON Lines (or CSV) body, one atomic durable commit.
        router.post("/v1/events") { request, _ -> Response in
            let parameters = try RequestParameters(request, allowed: ["skipInvalid", "format"])
            var ingest = IngestOptions(skipInvalid: try parameters.bool("skipInvalid") ?? false)
            ingest.format = try Self.inputFormat(
                parameters.string("format"), contentType: request.headers[.contentType])
            let input = try await Self.body(of: request, limit: options.maxEventBodyBytes)
            let report = try await store.append(contentsOf: input, options: ingest)
            var out = JSONWriter()
            out.object {
                $0.field("appended", report.appendedCount)
                $0.field("fromOffset", report.offsets.lowerBound)
                $0.field("endOffset", report.offsets.upperBound)
                $0.field("rejected", report.rejectedCount)
                $0.field("problems") { $0.array(report.problems) { out, problem in out.element(problem.description) } }
            }
            return out.response()
        }

        // Replay: the events matching the filter, as JSON Lines (what `touchlog replay` prints), streamed.
        router.get("/v1/events") { request, _ -> Response in
            let parameters = try RequestParameters(
                request, allowed: ["fromOffset", "toOffset", "since", "until", "knownAt", "includeErased"],
                repeatable: ["profile", "touchpoint", "type"])
            var filter = try Self.replayFilter(parameters)
            filter.includeErased = try parameters.bool("includeErased") ?? false
            let events = store.replay(matching: filter)
            let body = ResponseBody { writer in
                var out: [UInt8] = []
                for try await event in events {
                    EventJSON.appendLine(event, to: &out)
                    if out.count >= 1 << 16 {
                        try await writer.write(ByteBuffer(bytes: out))
                        out.removeAll(keepingCapacity: true)
                    }
                }
                if !out.isEmpty { try await writer.write(ByteBuffer(bytes: out)) }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: body)
        }

        // Erase a profile (format 3): durable on return; the identifier can never be read again.
        router.delete("/v1/profiles/:id") { request, context -> Response in
            let parameters = try RequestParameters(request, allowed: ["reason"])
            // A profile identifier may hold any character: the path carries it percent-encoded.
            guard let id = try context.parameters.require("id").removingPercentEncoding else {
                throw APIError.badRequest("the profile in the path is not valid percent-encoded UTF-8")
            }
            let report = try await store.erase(profiles: [id], reason: parameters.string("reason") ?? "")
            var out = JSONWriter()
            out.object {
                $0.field("erased", true)
                $0.field("head", report.head.description)
            }
            return out.response()
        }

        // Tail: server-sent events, one per committed event (id = offset); `Last-Event-ID` resumes after that offset.
        router.get("/v1/events/tail") { request, _ -> Response in
            let parameters = try RequestParameters(
                request, allowed: ["fromOffset"], repeatable: ["profile", "touchpoint", "type"])
            var filter = try Self.replayFilter(parameters)
            if let last = request.headers[.lastEventID] {
                guard let offset = UInt64(last) else {
                    throw APIError.badRequest("Last-Event-ID: \"\(last)\" is not an offset")
                }
                filter.fromOffset = offset + 1
            }
            let events = store.tail(from: filter.fromOffset, matching: filter)
            return serverSentEvents(heartbeat: options.heartbeat) { send in
                for try await event in events {
                    var line: [UInt8] = []
                    EventJSON.appendLine(event, to: &line)
                    send("event", String(event.offset), line.dropLast())
                }
            }
        }
    }

    /// The input format: the `format` parameter, else the content type (`text/csv` is CSV, JSON types are JSON
    /// Lines), else detected from the body.
    static func inputFormat(_ parameter: String?, contentType: String?) throws(APIError) -> InputFormat? {
        if let parameter {
            guard let format = InputFormat(rawValue: parameter) else {
                throw .badRequest("format: \"\(parameter)\" is not jsonl or csv")
            }
            return format
        }
        let type = contentType?.split(separator: ";").first.map { $0.filter { $0 != " " && $0 != "\t" }.lowercased() }
        switch type {
        case "text/csv"?: return .csv
        case "application/x-ndjson"?, "application/jsonl"?, "application/jsonlines"?, "application/json"?: return .jsonl
        default: return nil
        }
    }

    static func replayFilter(_ parameters: RequestParameters) throws(APIError) -> ReplayFilter {
        var types: Set<EventType> = []
        for name in parameters.strings("type") {
            guard let type = EventType(name: name) else {
                throw .badRequest("type: \"\(name)\" is not view, click or conversion")
            }
            types.insert(type)
        }
        let filter = ReplayFilter(
            fromOffset: try parameters.offset("fromOffset"), toOffset: try parameters.offset("toOffset"),
            since: try parameters.time("since"), until: try parameters.time("until"),
            profiles: parameters.strings("profile"), touchpoints: parameters.strings("touchpoint"), types: types,
            knownAt: try parameters.time("knownAt"))
        return filter
    }
}

extension HTTPField.Name {
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
