import Hummingbird
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

    init(status: HTTPResponse.Status, code: String, message: String, problems: [InputProblem] = [], headers: HTTPFields = [:]) {
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
        default: status = .internalServerError
        }
        self.init(status: status, code: error.code.name, message: error.message, problems: error.problems)
    }

    /// Any error as an API error (unknown ones are internal errors).
    init(from error: any Error) {
        switch error {
        case let error as APIError: self = error
        case let error as TouchLogError: self.init(error)
        case let error as DefinitionError: self.init(status: .badRequest, code: "invalidDefinition", message: error.description)
        case let error as HTTPError:
            let code = error.status == .contentTooLarge ? "bodyTooLarge" : error.status == .notFound ? "noSuchRoute" : "http\(error.status.code)"
            self.init(status: error.status, code: code, message: error.body ?? error.status.reasonPhrase, headers: error.headers)
        default: self.init(status: .internalServerError, code: "internal", message: "\(error)")
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var out = JSONWriter()
        out.object {
            $0.field("error") {
                $0.object {
                    $0.field("status", status.code)
                    $0.field("code", code)
                    $0.field("message", message)
                    if !problems.isEmpty {
                        $0.field("problems") {
                            $0.array(problems) { out, problem in
                                out.object {
                                    $0.field("line", problem.line)
                                    if let column = problem.column { $0.field("column", column) }
                                    $0.field("reason", problem.reason)
                                    $0.field("message", problem.description)
                                }
                            }
                        }
                    }
                }
            }
        }
        var response = out.response(status: status)
        response.headers.append(contentsOf: headers)
        return response
    }
}

/// Turns every error thrown below it into the JSON error shape, and answers unknown routes the same way.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let message = "no route \(request.method) \(request.uri.path) (the API is described at /openapi.yaml)"
            return try APIError(status: .notFound, code: "noSuchRoute", message: message).response(from: request, context: context)
        } catch {
            return try APIError(from: error).response(from: request, context: context)
        }
    }
}
