import Foundation
import Glibc
import TouchLog
@_exported import TouchLogRandom

/// The tests' seeded randomness ("seed N" is the same stream as the generator's).
public typealias TestRandom = SplitMix64

/// `events` as JSON Lines, the input `append` takes (each line an ``Event``'s `Codable` form).
public func jsonLines(_ events: [Event]) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    return events.map { String(decoding: try! encoder.encode($0), as: UTF8.self) + "\n" }.joined()
}

/// A click by `profile` on `touchpoint` at `time` (epoch ms).
public func click(_ profile: String, at time: Int64, _ touchpoint: String = "promo") -> Event {
    Event(time: time, profile: profile, type: .click, touchpoint: touchpoint)
}

/// A fresh directory under /tmp, removed with everything in it when released.
public final class TemporaryDirectory {
    public let path: String

    public init() {
        var template = Array("/tmp/touchlog-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { _ = system("rm -rf '\(path)'") }

    /// A store's directory inside it (not made until a store is opened there).
    public var store: String { path + "/store" }

    /// Writes `contents` to a file in the directory and returns its path.
    @discardableResult
    public func file(_ name: String, _ contents: String) -> String {
        file(name, bytes: Array(contents.utf8))
    }

    /// Writes `bytes` to a file in the directory and returns its path.
    @discardableResult
    public func file(_ name: String, bytes: [UInt8]) -> String {
        let full = path + "/" + name
        let f = fopen(full, "w")!
        _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
        return full
    }
}

/// The path of `relative` under the package's `Fixtures/`, found by walking up from `file` (pass `#filePath`).
public func fixturePath(_ relative: String, from file: String) -> String {
    var parts = file.split(separator: "/", omittingEmptySubsequences: false).dropLast()
    while !parts.isEmpty {
        let candidate = parts.joined(separator: "/") + "/Fixtures"
        var info = stat()
        if stat(candidate, &info) == 0 { return candidate + "/" + relative }
        parts = parts.dropLast()
    }
    fatalError("no Fixtures directory above \(file)")
}

/// A clock that tests set by hand (for recorded times): `LogOptions(clock: clock.read)`.
public final class ManualClock: @unchecked Sendable {
    // Unchecked: tests set it between appends, never concurrently with a read.
    private var value: Int64

    public init(_ start: Int64 = 0) { value = start }

    public func set(_ milliseconds: Int64) { value = milliseconds }

    public func read() -> Int64 { value }
}

/// The bytes of the file at `path` (which must exist).
public func readWholeFile(_ path: String) -> [UInt8] {
    let file = fopen(path, "r")!
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n == 0 { break }
        bytes.append(contentsOf: chunk[..<n])
    }
    return bytes
}

/// Replaces the file at `path` with `bytes`.
public func writeWholeFile(_ path: String, _ bytes: [UInt8]) {
    let file = fopen(path, "w")!
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}
