import ArgumentParser
import Glibc
import TouchLog

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
    var bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + done, $0.count - done) }
        if n <= 0 {
            if n < 0 && errno == EINTR { continue }
            return
        }
        done += n
    }
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
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + done, buffer.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                // A closed pipe (`| head`) or a full disk: nothing more can be written.
                printError("touchlog: cannot write output: \(String(cString: strerror(errno)))")
                Glibc.exit(errno == EPIPE ? 0 : ExitStatus.failure)
            }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Progress on standard error, shown only when it is a terminal and at most a few times a second.
final class Progress {
    private let enabled: Bool
    private let label: String
    private var lastShown: Int64 = 0
    private var shown = false

    /// `sharesTerminalWithOutput`: the command prints much to stdout, so progress only shows when stdout is not the terminal.
    init(_ label: String, sharesTerminalWithOutput: Bool = false) {
        self.label = label
        self.enabled = isatty(2) == 1 && !(sharesTerminalWithOutput && isatty(1) == 1)
    }

    func update(_ done: Int64, of total: Int64?, unit: String = "bytes") {
        guard enabled else { return }
        let now = monotonicMilliseconds()
        guard now - lastShown >= 200 else { return }
        lastShown = now
        shown = true
        var text = "\r\(label): \(formatCount(done, unit: unit))"
        if let total, total > 0 { text += " of \(formatCount(total, unit: unit)) (\(done * 100 / total)%)" }
        writeStandardError(text + "   ")
    }

    func finish() {
        if shown { writeStandardError("\r\u{1B}[K") }
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
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
}

/// `1 block`, `2 blocks`: a count with its noun, plural when needed.
func counted(_ n: some BinaryInteger, _ noun: String) -> String {
    "\(n) \(noun)\(n == 1 ? "" : "s")"
}
