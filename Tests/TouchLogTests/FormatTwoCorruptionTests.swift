import Glibc
import Testing

@testable import TouchLog
@testable import TouchLogStorage

@Suite struct FormatTwoCorruptionTests {
    /// Every section a query reads is checked on its own (XXH3), so damage there is an error, never an answer; the
    /// block hash catches it everywhere else, and verify names the block.
    @Test func aFlippedBitInAnyPartOfAFormatTwoBlockIsRefusedByQueriesAndNamedByVerify() async throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/s"
        _ = try await SegmentDifferentialTests.dataset(seed: 41, store: path, formatVersion: 2)
        let definition = try SegmentDefinition(
            json: """
                {"name":"s","match":"any","rules":[{"interaction":"any","touchpoint":{"contains":"e"},"conversion":"converted"},
                  {"interaction":"view","touchpoint":{"startsWith":"s"},"negate":true}]}
                """)
        let time = QueryTime(asOf: SegmentDifferentialTests.start + SegmentDifferentialTests.span)
        let answer = try StoreReader(directory: path).members(of: definition, at: time)
        #expect(!answer.isEmpty)
        let log = try LogReader(directory: path + "/log")
        let block = log.blocks[3]
        let file = path + "/log/" + log.files[block.fileIndex].name
        let original = readWholeFile(file)
        let start = Int(block.position) + BlockHeader.size
        let summary = Int(block.header.summaryLength)
        let stored = Int(block.header.storedLength)
        // The summary, then bytes spread over the body (every section of this block is a few dozen bytes at least).
        var positions = [start, start + summary / 2, start + summary - 1]
        positions += stride(from: start + summary, to: start + stored, by: max(1, (stored - summary) / 24)).map { $0 }
        var refusals = 0
        for position in positions {
            var damaged = original
            damaged[position] ^= 0x04
            writeWholeFile(file, damaged)
            let reader = try StoreReader(directory: path)
            var refused = false
            do {
                let members = try reader.members(of: definition, at: time)
                // A byte of a section this query does not read may be damaged without changing the answer.
                #expect(members == answer, "damage at byte \(position) changed the answer instead of failing it")
            } catch let error as TouchLogError {
                #expect(error.code == .corrupt, "\(error)")
                refused = true
            }
            let report = try StoreVerifier.verify(directory: path)
            #expect(!report.isIntact, "verify missed damage at byte \(position)")
            #expect(report.log.problems.contains { $0.location?.block == block.blockIndex }, "\(report.log.problems)")
            if refused { refusals += 1 }
            if position < start + summary {
                #expect(refused, "damage in the summary at byte \(position) was not refused")
            }
        }
        #expect(refusals > positions.count / 2, "\(refusals) of \(positions.count) damaged bytes refused")
        writeWholeFile(file, original)
        #expect(try StoreVerifier.verify(directory: path).isIntact)
    }
}
