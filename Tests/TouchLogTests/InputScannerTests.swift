import Foundation
import Testing
import TouchLogTestSupport

@testable import TouchLog

@Suite struct InputScannerTests {
    /// Records as the scanner hands them out, for random inputs of random sizes read in small chunks with a small
    /// record limit (so carried records, too-long records and buffer growth happen often), against a plain split.
    @Test func recordsMatchAPlainSplitAtAnyChunkAndLimit() throws {
        var random = SplitMix64(seed: 77)
        let dir = TemporaryDirectory()
        for round in 0..<300 {
            var bytes: [UInt8] = []
            for _ in 0..<random.below(40) {
                let length = random.chance(0.1) ? random.below(400) : random.below(30)
                bytes += (0..<length).map { _ in random.chance(0.05) ? 0x20 : UInt8(0x61 + random.below(26)) }
                bytes += random.chance(0.2) ? [0x0D, 0x0A] : [0x0A]
            }
            if random.chance(0.5) { bytes += [0x62, 0x63] }  // no final newline
            let path = dir.file("in-\(round)", bytes: bytes)
            var scanner = try InputScanner.open(path)
            defer { scanner.close() }
            scanner.chunkBytes = 1 + random.below(64)
            scanner.maxRecordBytes = 1 + random.below(100)
            var got: [String] = []
            try scanner.forEachRecord { record in
                switch record {
                case .text(let raw, let line): got.append("\(line) \(String(decoding: raw, as: UTF8.self))")
                case .tooLong(let line): got.append("\(line) too long")
                }
            }
            var expected: [String] = []
            for (index, var line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
                if index == bytes.split(separator: 0x0A, omittingEmptySubsequences: false).count - 1 && line.isEmpty {
                    break
                }
                if line.last == 0x0D { line = line.dropLast() }
                if line.count > scanner.maxRecordBytes {
                    expected.append("\(index + 1) too long")
                } else if !line.allSatisfy({ $0 == 0x20 }) {
                    expected.append("\(index + 1) \(String(decoding: line, as: UTF8.self))")
                }
            }
            #expect(got == expected, "round \(round), chunk \(scanner.chunkBytes), limit \(scanner.maxRecordBytes)")
        }
    }
}
