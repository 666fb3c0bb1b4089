import Foundation
import Testing
import TouchLogTestSupport

@testable import TouchLog

@Suite struct JSONStringTests {
    /// Every byte that JSON requires escaped is escaped, runs without one are copied whole, and the text round-trips
    /// through a JSON parser; the String, contiguous-bytes and other-collection paths write the same bytes.
    @Test func stringsAreEscapedAndRoundTrip() throws {
        let texts = [
            "", "plain", "a\"b", "back\\slash", "tab\tnew\nline\rcr", "\u{01}\u{1f}ctl", "é-vente 日本", "end\"", "\"",
            "x\u{7f}y",
        ]
        for text in texts {
            var viaString: [UInt8] = []
            EventJSON.appendString(text, to: &viaString)
            var viaBytes: [UInt8] = []
            EventJSON.appendString(Array(text.utf8), to: &viaBytes)
            var viaView: [UInt8] = []
            EventJSON.appendString(text.utf8.lazy.map { $0 }, to: &viaView)
            #expect(viaString == viaBytes && viaBytes == viaView, "\(text)")
            let decoded = try JSONSerialization.jsonObject(with: Data(viaString), options: .fragmentsAllowed) as? String
            #expect(decoded == text, "\(String(decoding: viaString, as: UTF8.self))")
            #expect(!viaString.dropFirst().dropLast().contains { $0 < 0x20 })
        }
    }
}
