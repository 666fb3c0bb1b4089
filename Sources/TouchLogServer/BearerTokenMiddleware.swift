import Hummingbird

/// Refuses requests without `Authorization: Bearer TOKEN` (401, and the JSON error shape).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let given = request.headers[.authorization].map { Array($0.utf8) } ?? []
        let prefix = Array("Bearer ".utf8)
        guard given.starts(with: prefix), Self.equalInConstantTime(Array(given.dropFirst(prefix.count)), token) else {
            throw APIError(
                status: .unauthorized, code: "unauthorized",
                message: "this server needs an 'Authorization: Bearer TOKEN' header with its token",
                headers: [.wwwAuthenticate: "Bearer"])
        }
        return try await next(request, context)
    }

    /// Compares without returning early, so the time taken does not tell how much of a guess was right.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
