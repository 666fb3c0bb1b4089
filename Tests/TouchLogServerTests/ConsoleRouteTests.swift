import Testing
import TouchLog
import TouchLogTestSupport

@testable import TouchLogServer

/// The console's files are served without the token (they hold no data; the page asks for the token), with their
/// content types; the API beside them still needs it. (Tools/console-test drives the console in a browser.)
@Suite(.timeLimit(.minutes(10))) struct ConsoleRouteTests {
    @Test func theConsoleLoadsWithoutTheTokenAndTheAPIStillNeedsIt() async throws {
        let dir = TemporaryDirectory()
        let server = try await RunningServer.start(try TouchLogStore(directory: dir.path + "/s")) {
            $0.token = "console-route-token-0123"
        }
        let page = try await server.request(.GET, "/", authorized: false)
        #expect(page.status == 200)
        #expect(page.headers["Content-Type"].first == "text/html; charset=utf-8")
        #expect(page.text.contains("<script src=\"/console/console.js\" defer></script>"))
        #expect(page.headers["Content-Security-Policy"].first?.hasPrefix("default-src 'self'") == true)
        for (path, type) in [("/console/console.js", "text/javascript"), ("/console/console.css", "text/css")] {
            let file = try await server.request(.GET, path, authorized: false)
            #expect(file.status == 200)
            #expect(file.headers["Content-Type"].first == type + "; charset=utf-8")
            #expect(!file.body.isEmpty)
        }
        #expect(try await server.request(.GET, "/v1/segments", authorized: false).status == 401)
        #expect(try await server.request(.GET, "/console/other.js", authorized: false).status == 401)
        await server.stop()
    }
}
