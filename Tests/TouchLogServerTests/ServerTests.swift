import Foundation
import NIOHTTP1
import Prometheus
import Testing
import TouchLog
import TouchLogTestSupport

@testable import TouchLogServer

private let t0: Int64 = 1_654_070_400_000  // 2022-06-01T08:00:00Z
private let hour: Int64 = 3_600_000

private let promoClickers = """
    {"name":"promo-clickers","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"},
     "timeframe":{"last":"1d"},"conversion":"not_converted"}]}
    """

/// `touchlog serve` through real HTTP on loopback. (The time limit only catches a hang: in the full run these tests
/// share the cooperative threads with CPU-bound tests.)
@Suite(.timeLimit(.minutes(10))) struct ServerTests {
    /// (Whether the requests share fsyncs depends on how many arrive together, which the full test run's load
    /// decides: group commit itself is tested in the storage and store tests, and `Tools/load` shows it.)
    @Test func concurrentAppendersOverHTTPLoseNothingAndEachRequestStaysWhole() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s", blockEvents: 128)
        let server = try await RunningServer.start(store)
        let clients = 12
        let requestsPerClient = 20
        let eventsPerRequest = 50
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask {
                    for n in 0..<requestsPerClient {
                        let events = (0..<eventsPerRequest).map { i in
                            click("c\(client)-r\(n)-e\(i)", at: t0 + Int64(i))
                        }
                        let reply = try await server.post("/v1/events", jsonLines(events))
                        #expect(reply.status == 200)
                        #expect(reply.json["appended"] as? Int == eventsPerRequest)
                    }
                }
            }
            try await group.waitForAll()
        }
        // Checked by replay, over HTTP: every event once, each request's events together and in order.
        let replay = try await server.get("/v1/events")
        let lines = replay.text.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let total = clients * requestsPerClient * eventsPerRequest
        #expect(lines.count == total)
        #expect(lines.map { $0["offset"] as! Int } == Array(0..<total))
        let profiles = lines.map { $0["profile"] as! String }
        #expect(Set(profiles).count == total)
        for start in stride(from: 0, to: total, by: eventsPerRequest) {
            let prefix = profiles[start].prefix { $0 != "e" }
            #expect(
                profiles[start..<start + eventsPerRequest]
                    == ArraySlice((0..<eventsPerRequest).map { "\(prefix)e\($0)" }))
        }
        await server.stop()
    }

    @Test func malformedRequestsGetA4xxJSONErrorAndChangeNothing() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let server = try await RunningServer.start(store) { $0.maxEventBodyBytes = 10_000 }
        #expect(try await server.post("/v1/events", jsonLines([click("a", at: t0)])).status == 200)

        let badLine = try await server.post(
            "/v1/events", jsonLines([click("b", at: t0)]) + "{\"time\":\"x\",\"profile\":\"p\"}\nnot json\n")
        #expect(badLine.status == 422)
        #expect(badLine.errorCode == "invalidInput")
        let problems = (badLine.json["error"] as? [String: Any])?["problems"] as? [[String: Any]] ?? []
        #expect(problems.map { $0["line"] as? Int } == [2, 3])
        #expect(problems.first?["column"] as? Int == 9)

        let tooLarge = try await server.post("/v1/events", jsonLines((0..<200).map { click("p\($0)", at: t0) }))
        #expect(tooLarge.status == 413)
        #expect(tooLarge.errorCode == "bodyTooLarge")

        let unknownParameter = try await server.get("/v1/events?fromoffset=3")
        #expect(unknownParameter.status == 400)
        #expect(unknownParameter.text.contains("unknown query parameter 'fromoffset'"))
        #expect(try await server.get("/v1/events?fromOffset=-1").status == 400)
        #expect(try await server.get("/v1/events?since=yesterday").status == 400)
        #expect(try await server.get("/v1/events?type=purchase").status == 400)
        #expect(try await server.post("/v1/events?format=xml", "").status == 400)

        let invalidDefinition = try await server.request(
            .PUT, "/v1/segments/x",
            body: Array(
                #"{"name":"x","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"a"},"timeframe":{"last":"30x"}}]}"#
                    .utf8))
        #expect(invalidDefinition.status == 400)
        #expect(invalidDefinition.json.description.contains(#"rules[0].timeframe.last: bad duration \"30x\""#))
        let misnamed = try await server.request(.PUT, "/v1/segments/y", body: Array(promoClickers.utf8))
        #expect(misnamed.status == 400)
        #expect(try await server.request(.PUT, "/v1/segments/x", body: Array("{".utf8)).status == 400)

        let noRoute = try await server.get("/v2/events")
        #expect(noRoute.status == 404)
        #expect(noRoute.errorCode == "noSuchRoute")
        let wrongMethod = try await server.request(.DELETE, "/v1/events")
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["Allow"].first == "GET, POST")
        #expect(try await server.get("/v1/segments/nope/members").status == 404)
        #expect(try await server.get("/v1/segments/promo-clickers/explain").status == 400)
        #expect(try await server.get("/v1/segments/promo-clickers/explain?profile=a").status == 404)
        #expect(try await server.request(.POST, "/v1/segments/promo-clickers/members").status == 405)

        // Nothing of the refused requests reached the store.
        #expect(store.endOffset == 1)
        #expect(try store.segments.list().isEmpty)
        #expect(try await store.verify().isIntact)
        await server.stop()
    }

    @Test func segmentsAndQueriesOverHTTPAnswerWhatTheLibraryAnswers() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let server = try await RunningServer.start(store)
        let put = try await server.request(.PUT, "/v1/segments/promo-clickers", body: Array(promoClickers.utf8))
        #expect(put.status == 201)
        #expect(put.json["version"] as? Int == 1)
        #expect(
            try await server.request(.PUT, "/v1/segments/promo-clickers", body: Array(promoClickers.utf8)).status == 200
        )

        _ = try await server.post(
            "/v1/events", jsonLines([click("a", at: t0), click("b", at: t0 + hour), click("c", at: t0, "other")]))
        let csv = try await server.post(
            "/v1/events", "time,profile,type,touchpoint,value\n\(t0 + 2 * hour),a,conversion,,12.5\n",
            contentType: "text/csv")
        #expect(csv.json["fromOffset"] as? Int == 3)

        let asOf = "2022-06-01T09:30:00Z"
        let members = try await server.get("/v1/segments/promo-clickers/members?asOf=\(asOf)")
        #expect(members.json["members"] as? [String] == ["a", "b"])
        #expect(members.json["count"] as? Int == 2)
        #expect(try await store.members(of: "promo-clickers", at: QueryTime(asOf: t0 + 90 * 60_000)) == ["a", "b"])
        let later = try await server.get("/v1/segments/promo-clickers/members?asOf=\(t0 + 3 * hour)&countOnly=true")
        #expect(later.json["count"] as? Int == 1)
        #expect(later.json["members"] == nil)
        // Known-at: before the conversion was recorded, a was still a member.
        let recorded = try await store.events().last!.recorded
        let before = try await server.get(
            "/v1/segments/promo-clickers/members?asOf=\(t0 + 3 * hour)&knownAt=\(recorded - 1)")
        #expect(before.json["members"] as? [String] == ["a", "b"])

        let diff = try await server.get("/v1/segments/promo-clickers/diff?from=\(t0 + 90 * 60_000)&to=\(t0 + 3 * hour)")
        #expect(diff.json["exited"] as? [String] == ["a"])
        #expect(diff.json["entered"] as? [String] == [])
        // History: the count at each step, as the library computes it, and refusals of bad parameters.
        let history = try await server.get("/v1/segments/promo-clickers/history?from=\(t0)&to=\(t0 + 3 * hour)&step=1h")
        #expect(history.status == 200)
        #expect((history.json["points"] as? [[String: Any]])?.map { $0["count"] as? Int } == [1, 2, 1, 1])
        #expect((history.json["points"] as? [[String: Any]])?.first?["time"] as? String == "2022-06-01T08:00:00.000Z")
        #expect(history.json["step"] as? String == "1h" && history.json["version"] as? Int == 1)
        let library = try await store.history(of: "promo-clickers", from: t0, to: t0 + 3 * hour, step: hour)
        #expect(library.points.map(\.count) == [1, 2, 1, 1])
        #expect(try await server.get("/v1/segments/promo-clickers/history?from=\(t0)&to=\(t0 + hour)").status == 400)
        #expect(
            try await server.get("/v1/segments/promo-clickers/history?from=\(t0)&to=\(t0 + hour)&step=1x").status == 400
        )
        #expect(
            try await server.get("/v1/segments/promo-clickers/history?from=\(t0)&to=\(t0 + 100 * hour)&step=1ms").status
                == 400)
        #expect(try await server.get("/v1/segments/nope/history?from=\(t0)&to=\(t0 + hour)&step=1h").status == 404)
        let explain = try await server.get("/v1/segments/promo-clickers/explain?profile=a&asOf=\(t0 + 3 * hour)")
        #expect(explain.json["member"] as? Bool == false)
        let rule = (explain.json["rules"] as? [[String: Any]])?.first
        #expect((rule?["conversions"] as? [[String: Any]])?.first?["value"] as? Double == 12.5)

        let adHoc = try await server.post(
            "/v1/query?asOf=\(t0 + hour)",
            #"{"name":"others","match":"all","rules":[{"interaction":"any","touchpoint":{"exactly":"other"}}]}"#,
            contentType: "application/json")
        #expect(adHoc.json["members"] as? [String] == ["c"])

        let list = try await server.get("/v1/segments")
        #expect((list.json["segments"] as? [[String: Any]])?.map { $0["name"] as? String } == ["promo-clickers"])
        #expect(try await server.request(.DELETE, "/v1/segments/promo-clickers").json["version"] as? Int == 2)
        let versions = try await server.get("/v1/segments/promo-clickers/versions")
        #expect((versions.json["versions"] as? [[String: Any]])?.map { $0["removed"] as? Bool } == [false, true])
        #expect(try await server.get("/v1/segments/promo-clickers?version=1").status == 200)
        #expect(try await server.get("/v1/segments/promo-clickers").status == 404)

        let replay = try await server.get("/v1/events?profile=a&type=conversion")
        #expect(
            replay.text
                == #"{"offset":3,"recorded":"\#(Timestamp.format(recorded))","time":"2022-06-01T10:00:00.000Z","profile":"a","type":"conversion","value":12.5}"#
                + "\n")
        #expect(try await server.get("/v1/stats").json["events"] as? Int == 4)
        #expect(try await server.request(.POST, "/v1/verify").json["intact"] as? Bool == true)
        #expect(try await server.get("/v1/health").json["endOffset"] as? Int == 4)
        await server.stop()
    }

    @Test func aWatchStreamsEntriesAndExitsAndATailResumesFromLastEventID() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await store.putSegment(
            try SegmentDefinition(
                json:
                    #"{"name":"recent","match":"all","rules":[{"interaction":"click","touchpoint":{"exactly":"promo"},"conversion":"not_converted"}]}"#
            ))
        let server = try await RunningServer.start(store)
        let now = Timestamp.now()
        _ = try await server.post("/v1/events", jsonLines([click("a", at: now - hour)]))

        var watch = try await server.events("/v1/segments/recent/watch?recheck=100ms").makeAsyncIterator()
        let initial = try #require(try await watch.next())
        #expect(initial.event == "update")
        #expect(initial.json["initial"] as? Bool == true)
        #expect(initial.json["entered"] as? [String] == ["a"])
        _ = try await server.post(
            "/v1/events",
            jsonLines([click("b", at: now - hour), Event(time: now - 1, profile: "a", type: .conversion)]))
        let update = try #require(try await watch.next())
        #expect(update.json["entered"] as? [String] == ["b"])
        #expect(update.json["exited"] as? [String] == ["a"])
        #expect(update.id == "3")

        var tail = try await server.events("/v1/events/tail", headers: [("Last-Event-ID", "0")]).makeAsyncIterator()
        var offsets: [String?] = []
        for _ in 0..<2 { offsets.append(try await tail.next()?.id) }
        #expect(offsets == ["1", "2"])
        _ = try await server.post("/v1/events", jsonLines([click("c", at: now)]))
        let live = try #require(try await tail.next())
        #expect(live.id == "3")
        #expect(live.json["profile"] as? String == "c")

        // Removing the segment ends its watch with an error event.
        _ = try await server.request(.DELETE, "/v1/segments/recent")
        var last: ServerSentEvent?
        while let event = try await watch.next() {
            last = event
            if event.event == "error" { break }
        }
        #expect(last?.event == "error")
        #expect(last?.json["code"] as? String == "notFound")
        await server.stop()
    }

    @Test func aTokenIsRequiredOffLoopbackAndCheckedOnEveryRequest() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        var open = ServerOptions()
        open.host = "0.0.0.0"
        #expect(throws: TouchLogError.self) { try TouchLogServer(store: store, options: open) }
        open.token = "short"
        #expect(throws: TouchLogError.self) { try TouchLogServer(store: store, options: open) }

        let server = try await RunningServer.start(store) { $0.token = "a-secret-token-of-some-length" }
        let missing = try await server.request(.GET, "/v1/health", authorized: false)
        #expect(missing.status == 401)
        #expect(missing.errorCode == "unauthorized")
        #expect(missing.headers["WWW-Authenticate"].first == "Bearer")
        let wrong = try await server.request(
            .POST, "/v1/events", body: Array(jsonLines([click("a", at: t0)]).utf8),
            headers: [("Authorization", "Bearer a-secret-token-of-some-lengtH")], authorized: false)
        #expect(wrong.status == 401)
        #expect(store.endOffset == 0)
        #expect(try await server.post("/v1/events", jsonLines([click("a", at: t0)])).status == 200)
        #expect(store.endOffset == 1)
        await server.stop()
    }

    @Test func aReadOnlyServerAnswersQueriesAndRefusesChanges() async throws {
        let dir = TemporaryDirectory()
        let writer = try TouchLogStore(directory: dir.path + "/s")
        try await writer.append([click("a", at: t0)])
        let server = try await RunningServer.start(try TouchLogStore(readingFrom: dir.path + "/s"))
        let refused = try await server.post("/v1/events", jsonLines([click("b", at: t0)]))
        #expect(refused.status == 403)
        #expect(refused.errorCode == "readOnly")
        #expect(try await server.get("/v1/events").text.contains(#""profile":"a""#))
        try await writer.append([click("b", at: t0)])
        #expect(try await server.get("/v1/health").json["endOffset"] as? Int == 2)
        await server.stop()
    }

    @Test func theOpenAPIDocumentDescribesExactlyTheServedRoutes() async throws {
        let dir = TemporaryDirectory()
        let server = try await RunningServer.start(try TouchLogStore(directory: dir.path + "/s"))
        let reply = try await server.get("/openapi.yaml")
        #expect(reply.status == 200)
        // Paths are the two-space keys under `paths:`, operations the four-space method keys under them.
        var documented: Set<String> = []
        var path: String?
        for line in reply.text.split(separator: "\n") {
            if line == "components:" { break }
            if line.hasPrefix("  /"), line.hasSuffix(":") { path = String(line.dropFirst(2).dropLast()) }
            for method in ["get", "put", "post", "delete"] where line == "    \(method):" {
                documented.insert("\(method.uppercased()) \(path!)")
            }
        }
        let served = Set(
            try TouchLogServer(store: server.store, options: ServerOptions(), metrics: PrometheusCollectorRegistry())
                .router().routes.map {
                    "\($0.method) \($0.path)"
                })
        #expect(documented == served)
        #expect(documented.count == 27)
        await server.stop()
    }

    /// `DELETE /v1/profiles/{id}` erases a profile: members and replay over HTTP no longer show it, and a second
    /// erasure of it, or of a profile never seen, is a 404 that changes nothing.
    @Test func aProfileErasedOverHTTPLeavesEveryAnswer() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        let server = try await RunningServer.start(store)
        _ = try await server.request(.PUT, "/v1/segments/promo-clickers", body: Array(promoClickers.utf8))
        _ = try await server.post("/v1/events", jsonLines([click("a b", at: t0), click("c", at: t0 + hour)]))
        let erased = try await server.request(.DELETE, "/v1/profiles/a%20b?reason=request%2017")
        #expect(erased.status == 200 && erased.json["erased"] as? Bool == true, "\(erased.status) \(erased.text)")
        #expect(erased.json["head"] as? String == (try store.headHash()).description)
        let members = try await server.get("/v1/segments/promo-clickers/members?asOf=\(t0 + 2 * hour)")
        #expect(members.json["members"] as? [String] == ["c"])
        #expect(try await server.get("/v1/events").text.split(separator: "\n").count == 1)
        let all = try await server.get("/v1/events?includeErased=true")
        #expect(all.text.hasPrefix(#"{"offset":0,"#) && all.text.contains(#""profile":null,"erased":true"#))
        for path in ["/v1/profiles/a%20b", "/v1/profiles/nobody"] {
            let again = try await server.request(.DELETE, path)
            #expect(again.status == 404 && again.errorCode == "notFound")
        }
        await server.stop()
    }

    @Test func anAuditOverHTTPIsTheLibrarysRecordByteForByteSignedWithTheServersKey() async throws {
        let dir = TemporaryDirectory()
        let store = try TouchLogStore(directory: dir.path + "/s")
        try await store.putSegment(try SegmentDefinition(json: promoClickers))
        try await store.append([click("a", at: t0), click("b", at: t0 + hour)])
        let key = AuditSigningKey.generate()
        let server = try await RunningServer.start(store) { $0.auditKey = key }
        let reply = try await server.get("/v1/segments/promo-clickers/audit?asOf=2022-06-01T09:30:00Z")
        #expect(reply.status == 200)
        let record = try await store.audit(
            "promo-clickers", at: QueryTime(asOf: Timestamp.parse("2022-06-01T09:30:00Z")!), signingKey: key)
        #expect(reply.text == record.json + "\n")
        #expect(record.members == 2 && record.publicKey == key.publicKey)
        #expect(try await store.check(reply.text, publicKey: key.publicKey).isValid)
        #expect(try await server.get("/v1/segments/promo-clickers/audit").status == 400)
        #expect(try await server.get("/v1/segments/nobody/audit?asOf=0").status == 404)
        let events = try await server.get("/v1/events?knownAt=0")
        #expect(events.status == 200 && events.body.isEmpty)
        await server.stop()
    }
}
