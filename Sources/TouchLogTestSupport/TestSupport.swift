import Glibc

/// SplitMix64: a small, fast, well-distributed generator, fully determined by its seed.
///
/// Shared by the data generator and the tests, so "seed N" means the same stream everywhere.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A uniform integer in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// True with probability `p`.
    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// `n` random bytes.
    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
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
