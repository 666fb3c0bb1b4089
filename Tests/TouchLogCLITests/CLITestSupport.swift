import Foundation

/// The result of running the `touchlog` executable.
struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The built executable `name` (`touchlog`, `touchlog-crash`, …): next to the test bundle (same build directory).
func builtExecutable(_ name: String) -> String {
    let testBinary =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory.deleteLastPathComponent()
    }
    fatalError("no \(name) executable beside \(testBinary); run `swift build` first")
}

let touchlogExecutable = builtExecutable("touchlog")

/// Runs `touchlog ARGS`, feeding `stdin`, with `TOUCHLOG_STORE` unset unless given in `environment`.
@discardableResult
func touchlog(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Run {
    try run(touchlogExecutable, arguments, stdin: stdin, environment: environment)
}

/// Runs the executable at `path` with `arguments`, feeding `stdin`, with `TOUCHLOG_STORE` unset unless given in
/// `environment`.
func run(_ path: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> Run
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "TOUCHLOG_STORE")
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    let feeder = Thread {
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
    }
    feeder.start()
    // Read both pipes to the end concurrently so neither can fill and block the child.
    nonisolated(unsafe) var errData = Data()
    let errReader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    errReader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while errReader.isExecuting || !errReader.isFinished { usleep(1000) }
    return Run(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

/// A file under the package's `Fixtures/`.
func fixture(_ relative: String) -> String {
    var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while directory.path != "/" {
        let candidate = directory.appendingPathComponent("Fixtures")
        if FileManager.default.fileExists(atPath: candidate.path) {
            return candidate.appendingPathComponent(relative).path
        }
        directory.deleteLastPathComponent()
    }
    fatalError("no Fixtures directory")
}

/// Replay output without the `recorded` field (the wall clock at append time).
func withoutRecorded(_ jsonl: String) -> String {
    jsonl.replacingOccurrences(of: #","recorded":"[^"]*""#, with: "", options: .regularExpression)
}
