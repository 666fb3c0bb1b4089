import Glibc
@testable import TouchLogStorage

/// A fresh temporary directory, removed when the test's scope ends.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/touchlog-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { _ = system("rm -rf '\(path)'") }

    var log: String { path + "/log" }
    var lock: String { path + "/LOCK" }
}

/// Deterministic pseudo-random numbers for tests.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

/// A block whose payload is `count` copies of a marker, so tests can tell blocks apart.
func testBlock(_ marker: UInt8, count: Int = 10, time: Int64 = 1_000) -> RawBlock {
    RawBlock(payload: [UInt8](repeating: marker, count: count * 4) + Array("block \(marker)".utf8), count: count,
             minTime: time, maxTime: time + Int64(count))
}

func fileBytes(_ path: String) -> [UInt8] {
    let file = try! SystemFile.open(path, .readOnly)
    defer { file.close() }
    return try! file.read(at: 0, count: Int(try! file.size()))
}

func writeFileBytes(_ path: String, _ bytes: [UInt8]) {
    let file = try! SystemFile.open(path, .createReadWrite)
    defer { file.close() }
    try! file.truncate(to: 0)
    try! file.write(bytes, at: 0)
}

func logFilePaths(_ directory: String) -> [String] {
    try! LogFile.list(in: directory).map { directory + "/" + $0.name }
}

/// A fixed clock so recorded times are predictable.
let fixedClock: @Sendable () -> Int64 = { 1_700_000_000_000 }
