import TouchLog

/// Requests to a partition's owner and its replies, over NATS request/reply.
///
/// A request is one JSON object (`op` and its arguments). A reply is one or more messages, each a JSON header line
/// (`{"chunk":0,"last":true}`, or with `"error"` and `"code"` when the request failed) followed by body bytes; the
/// body of a long answer (a million members) is split over chunks that stay under NATS's message size.
enum ClusterRequest {
    static func encode(_ fields: [(key: String, value: JSONValue)]) -> [UInt8] {
        Array(JSONValue.object(fields).text.utf8)
    }

    static func decode(_ bytes: [UInt8]) -> JSONValue? { try? JSONValue.parse(String(decoding: bytes, as: UTF8.self)) }

    static func time(_ value: QueryTime) -> [(key: String, value: JSONValue)] {
        var fields: [(key: String, value: JSONValue)] = [("asOf", .number(String(value.asOf)))]
        if let knownAt = value.knownAt { fields.append(("knownAt", .number(String(knownAt)))) }
        return fields
    }

    static func time(from request: JSONValue) -> QueryTime? {
        guard let asOf = request["asOf"]?.integer else { return nil }
        return QueryTime(asOf: asOf, knownAt: request["knownAt"]?.integer)
    }
}

/// Cuts a reply body into messages of at most `limit` bytes, at line ends.
enum ClusterReply {
    static let chunkBytes = 256 << 10

    static func chunks(_ body: [UInt8], error: TouchLogError? = nil, limit: Int = chunkBytes) -> [[UInt8]] {
        if let error {
            let header = JSONValue.object([
                ("chunk", .number("0")), ("last", .bool(true)), ("error", .string(error.message)),
                ("code", .string(error.code.name)),
            ])
            return [Array(header.text.utf8) + [0x0A]]
        }
        var pieces: [ArraySlice<UInt8>] = []
        var start = 0
        while start < body.count || pieces.isEmpty {
            var end = min(body.count, start + limit)
            if end < body.count, let newline = body[start..<end].lastIndex(of: 0x0A), newline > start {
                end = newline + 1
            }
            pieces.append(body[start..<end])
            start = end
            if start >= body.count { break }
        }
        return pieces.enumerated().map { index, piece in
            let header = JSONValue.object([
                ("chunk", .number(String(index))), ("last", .bool(index == pieces.count - 1)),
            ])
            return Array(header.text.utf8) + [0x0A] + piece
        }
    }

    /// The header and body of one reply message.
    static func parse(_ message: [UInt8]) -> (chunk: Int, last: Bool, error: TouchLogError?, body: ArraySlice<UInt8>)? {
        guard let newline = message.firstIndex(of: 0x0A),
            let header = ClusterRequest.decode(Array(message[..<newline])),
            let chunk = header["chunk"]?.integer
        else { return nil }
        let last: Bool
        if case .bool(let b)? = header["last"] { last = b } else { last = false }
        var error: TouchLogError?
        if let message = header["error"]?.string {
            error = TouchLogError(
                code: header["code"]?.string.flatMap(TouchLogError.Code.init(named:)) ?? .io, message: message)
        }
        return (Int(chunk), last, error, message[(newline + 1)...])
    }
}
