import Foundation
import Hummingbird
import TouchLog

extension TouchLogServer {
    func addAdminRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v1/health") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            var out = JSONWriter()
            out.object {
                $0.field("status", "ok")
                $0.field("endOffset", store.endOffset)
                $0.field("readOnly", store.isReadOnly)
            }
            return out.response()
        }

        router.get("/v1/stats") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            let stats = try await store.stats()
            var out = JSONWriter()
            stats.write(to: &out)
            return out.response()
        }

        // Checks the whole store; 200 with "intact": false when damage is found (the request itself succeeded).
        router.post("/v1/verify") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            let report = try await store.verify()
            var out = JSONWriter()
            out.object {
                $0.field("intact", report.isIntact)
                $0.field("files", report.log.files)
                $0.field("blocks", report.log.blocks)
                $0.field("events", report.log.records)
                $0.field("logBytes", Int(report.log.bytes))
                $0.field("head", report.log.head.description)
                $0.field("snapshotsChecked", report.snapshotsChecked)
                $0.field("problems", strings: report.log.problems.map(\.description) + report.otherProblems)
            }
            return out.response()
        }

        router.get("/v1/snapshots") { request, _ -> Response in
            _ = try RequestParameters(request, allowed: [])
            let snapshots = try store.snapshots()
            var out = JSONWriter()
            out.object {
                $0.field("snapshots") {
                    $0.array(snapshots) { out, info in
                        out.object {
                            $0.field("segment", info.segment)
                            $0.field("key", info.key)
                            $0.field("endOffset", info.endOffset)
                            $0.field("watermark", JSONTime(info.watermark))
                            $0.field("recorded", JSONTime(info.recorded))
                            $0.field("bytes", Int(info.bytes))
                        }
                    }
                }
            }
            return out.response()
        }

        // Snapshots every current segment (or `segment`) at the end of the log.
        router.post("/v1/snapshots") { request, _ -> Response in
            let parameters = try RequestParameters(request, allowed: ["segment"])
            let created = try await store.createSnapshots(of: parameters.string("segment"))
            var out = JSONWriter()
            out.object {
                $0.field("snapshots") {
                    $0.array(created) { out, item in
                        out.object {
                            $0.field("segment", item.segment)
                            $0.field("created", item.snapshot != nil)
                            $0.field("endOffset", item.snapshot?.endOffset)
                        }
                    }
                }
            }
            return out.response()
        }
    }
}
