import ArgumentParser
import Dispatch
import Synchronization
import TouchLog
import TouchLogStorage

/// Exit statuses of the CLI, from the product contract (sysexits values).
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 64
    static let invalidInput: Int32 = 65
    static let notFound: Int32 = 66
    static let locked: Int32 = 75

    /// The status for an error from the library.
    static func of(_ error: TouchLogError) -> Int32 {
        switch error.code {
        case .invalidInput: return invalidInput
        case .notFound: return notFound
        case .locked: return locked
        case .invalidArgument: return usage
        default: return failure
        }
    }
}

/// Writes to standard error.
func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    writeStandardError(line)
}

func writeStandardError(_ text: String) {
    try? StandardStream.error.write(text)
}

/// Runs a command body, printing library errors as one `touchlog: …` line and exiting with their status.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as TouchLogError { throw report(error) }
}

/// ``reportingErrors(_:)`` for an async body.
func reportingErrorsAsync(_ body: () async throws -> Void) async throws {
    do { try await body() } catch let error as TouchLogError { throw report(error) }
}

/// Prints a library error (its problems, then one `touchlog: …` line) and returns the exit code for it.
private func report(_ error: TouchLogError) -> ExitCode {
    for problem in error.problems { printError(problem.description) }
    printError("touchlog: \(error.message)")
    return ExitCode(ExitStatus.of(error))
}

/// Buffered standard output.
struct StandardOutput {
    var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(1 << 16) }

    mutating func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    /// Writes one JSON document (what `body` writes) as a line.
    mutating func writeJSONLine(_ body: (inout JSONWriter) -> Void) {
        var writer = JSONWriter()
        body(&writer)
        buffer.append(contentsOf: writer.bytes)
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func flushIfFull() {
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        do throws(SystemCallError) {
            try StandardStream.output.write(buffer)
        } catch {
            // A closed pipe (`| head`) or a full disk: nothing more can be written.
            printError("touchlog: cannot write output: \(error.reason)")
            Platform.exit(error.isBrokenPipe ? 0 : ExitStatus.failure)
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Reads a whole input file ('-': standard input).
func readWholeInput(_ path: String) throws(TouchLogError) -> [UInt8] {
    let file: SystemFile
    do throws(SystemCallError) { file = path == "-" ? .standardInput : try SystemFile.open(path, .readOnly) } catch {
        throw TouchLogError(code: error.isNotFound ? .notFound : .io, message: "cannot read \(path): \(error.reason)")
    }
    defer { file.close() }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let result = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(SystemCallError) in try file.readNext(into: raw) }
        }
        switch result {
        case .success(0): return bytes
        case .success(let n): bytes += buffer[..<n]
        case .failure(let error):
            throw TouchLogError(code: .io, message: "cannot read \(path): \(error.reason)")
        }
    }
}

/// Turns SIGTERM and SIGINT into a call of `handler` (the process does not end by itself) until ``cancel()``.
struct TerminationSignals {
    private let sources: [any DispatchSourceSignal]

    init(_ handler: @escaping @Sendable () -> Void) {
        sources = Platform.terminationSignals.map { number in
            Platform.ignoreSignal(number)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}

/// A file the user named for output (`--rejects`, `--output`): created or emptied, then written from its start.
final class OutputFile {
    private let file: SystemFile
    private var position: Int64 = 0

    init(_ path: String) throws(TouchLogError) {
        do { file = try SystemFile.open(path, .replace) } catch {
            throw TouchLogError(code: .io, message: "cannot write \(path): \(error.reason)")
        }
    }

    func write(_ bytes: [UInt8]) throws(TouchLogError) {
        do { try file.write(bytes, at: position) } catch {
            throw TouchLogError(code: .io, message: "cannot write \(file.path): \(error.reason)")
        }
        position += Int64(bytes.count)
    }

    func close() { file.close() }
}

/// Progress on standard error, shown only when it is a terminal and at most a few times a second; updated from any
/// thread (a query's runs on one of its own).
final class Progress: Sendable {
    private let enabled: Bool
    private let label: String
    /// When it was last shown (monotonic milliseconds) and whether it ever was.
    private let state = Mutex((lastShown: Int64(0), shown: false))

    /// `sharesTerminalWithOutput`: the command prints much to stdout, so progress only shows when stdout is not the terminal.
    init(_ label: String, sharesTerminalWithOutput: Bool = false) {
        self.label = label
        self.enabled = Platform.isTerminal(.error) && !(sharesTerminalWithOutput && Platform.isTerminal(.output))
    }

    func update(_ done: Int64, of total: Int64?, unit: String = "bytes") {
        guard enabled else { return }
        let now = monotonicMilliseconds()
        let due = state.withLock { state in
            guard now - state.lastShown >= 200 else { return false }
            state = (now, true)
            return true
        }
        guard due else { return }
        var text = "\r\(label): \(formatCount(done, unit: unit))"
        if let total, total > 0 { text += " of \(formatCount(total, unit: unit)) (\(done * 100 / total)%)" }
        writeStandardError(text + "   ")
    }

    func finish() {
        if state.withLock({ $0.shown }) { writeStandardError("\r\u{1B}[K") }
    }

    private func formatCount(_ n: Int64, unit: String) -> String {
        unit == "bytes" ? formatBytes(n) : "\(n) \(unit)"
    }
}

func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(n)
    var unit = 0
    while value >= 1000 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(n) B" : String(format1: value) + " " + units[unit]
}

extension String {
    /// One decimal place, without Foundation.
    init(format1 value: Double) {
        let tenths = Int64((value * 10).rounded())
        self = "\(tenths / 10).\(abs(tenths % 10))"
    }
}

func monotonicMilliseconds() -> Int64 {
    Int64(Platform.monotonicNanoseconds() / 1_000_000)
}

/// `1 block`, `2 blocks`: a count with its noun, plural when needed.
func counted(_ n: some BinaryInteger, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}
