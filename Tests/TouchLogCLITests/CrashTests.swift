import Foundation
import Testing
import TouchLogTestSupport

/// The crash test of the default run: 50 SIGKILLs of a writer at random moments (Tools/crash does 1,000), each
/// followed by reopening the store and checking every acknowledged commit, atomicity, offsets and verify.
@Suite struct CrashTests {
    @Test func aWriterKilledFiftyTimesLosesNothingItAcknowledged() throws {
        let scratch = TemporaryDirectory()
        let seed = UInt64(Date().timeIntervalSince1970 * 1000)
        let result = try run(
            builtExecutable("touchlog-crash"),
            ["run", "--store", scratch.path, "--kills", "50", "--fresh-every", "10", "--seed", String(seed)])
        #expect(result.status == 0, "seed \(seed)\n\(result.stdout.suffix(3000))\n\(result.stderr)")
        #expect(result.stdout.contains("50 kills in"))
        #expect(result.stdout.contains("every check passed"))
    }
}
