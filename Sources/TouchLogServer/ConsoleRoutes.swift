import Foundation
import Hummingbird
import NIOCore

/// The web console (`/`): static files bundled with the server (`Console/`), read once when the routes are built.
/// They hold no data (the console asks the API for everything, with the token when there is one), so they are
/// served without the token: a browser must load the page before it can ask for it.
enum ConsoleFiles {
    /// Path, file in `Console/`, content type.
    static let files: [(path: String, name: String, type: String)] = [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/console/console.js", "console.js", "text/javascript; charset=utf-8"),
        ("/console/builder.js", "builder.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "console.css", "text/css; charset=utf-8"),
    ]

    /// Adds a GET route for each file; a file missing from the installation answers 404 saying so.
    static func addRoutes(to router: Router<BasicRequestContext>) {
        for file in files {
            let bytes = Bundle.module.url(forResource: file.name, withExtension: nil, subdirectory: "Console")
                .flatMap { try? Data(contentsOf: $0) }.map { Array($0) }
            router.get(RouterPath(file.path)) { _, _ -> Response in
                guard let bytes else {
                    throw APIError(
                        status: .notFound, code: "notFound",
                        message: "the console's \(file.name) is not installed next to this binary")
                }
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: file.type, .cacheControl: "no-cache",
                        .contentSecurityPolicy: "default-src 'self'; frame-ancestors 'none'",
                        .xContentTypeOptions: "nosniff",
                    ],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
            }
        }
    }
}
