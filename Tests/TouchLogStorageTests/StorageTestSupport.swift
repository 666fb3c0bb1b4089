import Glibc
@_exported import TouchLogTestSupport

@testable import TouchLogStorage

extension TemporaryDirectory {
    var log: String { path + "/log" }
    var lock: String { path + "/LOCK" }
}

/// A block with a summary, of format `version` (by default the one new logs get): a summary naming a marker and a
/// body of `count * 4` copies of it, so tests can tell blocks apart.
func testBlock(_ marker: UInt8, count: Int = 10, time: Int64 = 1_000, version: UInt16 = LogOptions.defaultFormatVersion)
    -> RawBlock
{
    RawBlock(
        summary: Array("block \(marker)".utf8), body: [UInt8](repeating: marker, count: count * 4), count: count,
        minTime: time, maxTime: time + Int64(count), version: version)
}

/// A format-1 block: a payload of `count * 4` copies of a marker and its name, compressed when written.
func formatOneBlock(_ marker: UInt8, count: Int = 10, time: Int64 = 1_000) -> RawBlock {
    RawBlock(
        payload: [UInt8](repeating: marker, count: count * 4) + Array("block \(marker)".utf8), count: count,
        minTime: time, maxTime: time + Int64(count))
}

extension RawBlock {
    /// The bytes a reader serves for this block: a format-2 block's summary and body, a format-1 block's payload.
    var servedBytes: [UInt8] { (summary ?? []) + payload }
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
