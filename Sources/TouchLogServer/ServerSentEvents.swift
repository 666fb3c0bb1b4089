import Hummingbird
import NIOCore
import TouchLog

/// A `text/event-stream` response fed by `produce`, with a comment line every `heartbeat` while it is idle.
///
/// `produce` gets a function that queues one event (`event:`, `id:`, `data:` lines) and runs until it returns or
/// throws; an error it throws is sent as a last `event: error` whose data is the JSON error. The stream ends when
/// the client goes away (a failed write cancels `produce`).
func serverSentEvents(
    heartbeat: Duration,
    _ produce:
        @escaping @Sendable (_ send: @Sendable (_ event: String, _ id: String?, _ data: [UInt8]) -> Void) async throws
        -> Void
) -> Response {
    let body = ResponseBody { writer in
        let (frames, output) = AsyncStream<ByteBuffer>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await produce { event, id, data in
                        var frame = Array("event: \(event)\n".utf8)
                        if let id { frame += Array("id: \(id)\n".utf8) }
                        frame += Array("data: ".utf8) + data + Array("\n\n".utf8)
                        output.yield(ByteBuffer(bytes: frame))
                    }
                } catch {
                    var out = JSONWriter()
                    APIError(from: error).write(to: &out)
                    output.yield(ByteBuffer(bytes: Array("event: error\ndata: ".utf8) + out.bytes + Array("\n\n".utf8)))
                }
                output.finish()
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: heartbeat)
                    output.yield(ByteBuffer(string: ": keep-alive\n\n"))
                }
            }
            // A write fails once the client has gone: leaving the group then cancels the producer and the heartbeat.
            output.yield(ByteBuffer(string: ": touchlog\n\n"))
            for await frame in frames { try await writer.write(frame) }
            group.cancelAll()
        }
        try await writer.finish(nil)
    }
    return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
}
