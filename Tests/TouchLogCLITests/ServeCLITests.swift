import Foundation
import Testing
import TouchLogTestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `touchlog serve` as a user runs it: a process, a port, SIGTERM.
@Suite struct ServeCLITests {
    @Test func bindingBeyondLoopbackWithoutATokenIsAUsageError() throws {
        let scratch = TemporaryDirectory()
        let refused = try touchlog(["serve", "--store", scratch.store, "--host", "0.0.0.0"])
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("binding 0.0.0.0 exposes the store beyond this machine: give a bearer token"))
        let short = try touchlog(["serve", "--store", scratch.store, "--token", "abc"])
        #expect(short.status == 64)
        #expect(!FileManager.default.fileExists(atPath: scratch.store))
    }

    @Test func serveAnswersOverHTTPHoldsTheLockAndReleasesItOnSIGTERM() throws {
        let scratch = TemporaryDirectory()
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: touchlogExecutable)
        process.arguments = ["serve", "--store", scratch.store, "--port", "0"]
        let err = Pipe()
        process.standardError = err
        try process.run()
        // The first line says where it listens: "touchlog: serving DIR on http://127.0.0.1:PORT (…)".
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let text = String(decoding: line, as: UTF8.self)
        let port = try #require(
            text.split(separator: ":").dropFirst(3).first.flatMap { Int($0.prefix { $0.isNumber }) }, "\(text)")
        #expect(text.hasPrefix("touchlog: serving \(scratch.store) on http://127.0.0.1:\(port)"))

        let health = try Data(contentsOf: URL(string: "http://127.0.0.1:\(port)/v1/health")!)
        #expect(String(decoding: health, as: UTF8.self) == #"{"status":"ok","endOffset":42,"readOnly":false}"# + "\n")
        // The server is the store's writer.
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 75)
        // A second server on the same port says why it cannot start.
        let taken = try touchlog(["serve", "--store", scratch.store, "--read-only", "--port", String(port)])
        #expect(taken.status == 1)
        #expect(taken.stderr == "touchlog: cannot listen on 127.0.0.1:\(port): the address is already in use\n")

        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(try touchlog(["append", "--store", scratch.store, fixture("events/sample.jsonl")]).status == 0)
    }
}
