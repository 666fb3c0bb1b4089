import Hummingbird
import Synchronization
import TouchLog

/// An error answered as JSON: `{"error":{"status":422,"code":"invalidInput","message":"…","problems":[…]}}`.
///
/// Every failure of the API has this shape, including Hummingbird's own (unknown route, body too large), so that a
/// client needs one way to read errors. A request that fails changes nothing.
struct APIError: Error, HTTPResponseError {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var problems: [InputProblem] = []
    var headers: HTTPFields = [:]

    static func badRequest(_ message: String) -> APIError {
        APIError(status: .badRequest, code: "invalidArgument", message: message)
    }

    init(
        status: HTTPResponse.Status, code: String, message: String, problems: [InputProblem] = [],
        headers: HTTPFields = [:]
    ) {
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems
        self.headers = headers
    }

    /// The HTTP form of a store error.
    init(_ error: TouchLogError) {
        let status: HTTPResponse.Status
        switch error.code {
        case .invalidInput: status = .unprocessableContent
        case .invalidArgument: status = .badRequest
        case .notFound: status = .notFound
        case .readOnly: status = .forbidden
        case .locked: status = .conflict
        case .writerFailed: status = .serviceUnavailable
        case .unsupported, .conflict: status = .conflict
        default: status = .internalServerError
        }
        self.init(status: status, code: error.code.name, message: error.message, problems: error.problems)
    }

    /// Any error as an API error (unknown ones are internal errors).
    init(from error: any Error) {
        switch error {
        case let error as APIError: self = error
        case let error as TouchLogError where error.cause is DefinitionError:
            self.init(status: .badRequest, code: "invalidDefinition", message: error.message)
        case let error as TouchLogError: self.init(error)
        case let error as DefinitionError:
            self.init(status: .badRequest, code: "invalidDefinition", message: error.description)
        case let error as HTTPError:
            let code =
                error.status == .contentTooLarge
                ? "bodyTooLarge" : error.status == .notFound ? "noSuchRoute" : "http\(error.status.code)"
            self.init(
                status: error.status, code: code, message: error.body ?? error.status.reasonPhrase,
                headers: error.headers)
        default: self.init(status: .internalServerError, code: "internal", message: "\(error)")
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var out = JSONWriter()
        out.object { $0.field("error") { write(to: &$0) } }
        var response = out.response(status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    /// The error object: `{"status","code","message"}`, and `problems` when there are any.
    func write(to out: inout JSONWriter) {
        out.object {
            $0.field("status", status.code)
            $0.field("code", code)
            $0.field("message", message)
            if !problems.isEmpty {
                $0.field("problems") {
                    $0.array(problems) { out, problem in problem.write(to: &out) }
                }
            }
        }
    }
}

/// The server's routes (method and path pattern, `{name}` matching one path component), known once they are all added.
final class RouteTable: Sendable {
    private let routes = Mutex<[(method: HTTPRequest.Method, path: [Substring])]>([])

    func set(_ routes: [(method: HTTPRequest.Method, path: String)]) {
        self.routes.withLock { $0 = routes.map { ($0.method, $0.path.split(separator: "/")) } }
    }

    /// The methods with a route for `path`.
    func methods(for path: String) -> [HTTPRequest.Method] {
        let components = path.split(separator: "/")
        return routes.withLock { routes in
            routes.filter { route in
                route.path.count == components.count
                    && zip(route.path, components).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == $1 }
            }.map(\.method)
        }
    }
}

/// Turns every error thrown below it into the JSON error shape, and answers unknown routes the same way (405 with
/// `Allow` when the path has routes for other methods).
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = routes.methods(for: request.uri.path)
            let apiError: APIError
            if allowed.isEmpty {
                let message = "no route \(request.method) \(request.uri.path) (the API is described at /openapi.yaml)"
                apiError = APIError(status: .notFound, code: "noSuchRoute", message: message)
            } else {
                let list = allowed.map(\.rawValue).sorted().joined(separator: ", ")
                apiError = APIError(
                    status: .methodNotAllowed, code: "methodNotAllowed",
                    message: "\(request.uri.path) takes \(list), not \(request.method)",
                    headers: [.allow: list])
            }
            return try apiError.response(from: request, context: context)
        } catch {
            return try APIError(from: error).response(from: request, context: context)
        }
    }
}
