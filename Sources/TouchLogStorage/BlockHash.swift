import Crypto

/// A SHA-256 digest that links one block to the next.
public struct BlockHash: Hashable, Sendable, CustomStringConvertible {
    /// The 32 digest bytes.
    public let bytes: [UInt8]

    /// The hash that the first block of a log names as its predecessor: 32 zero bytes.
    public static let zero = BlockHash(bytes: [UInt8](repeating: 0, count: 32))

    /// The hash with these 32 bytes.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a block hash has 32 bytes")
        self.bytes = bytes
    }

    /// The hash that `hex` (64 hexadecimal digits, as ``description`` writes them) names, or nil.
    public init?(hex: String) {
        guard let bytes = Hex.bytes(hex, count: 32) else { return nil }
        self.init(bytes: bytes)
    }

    /// Lowercase hexadecimal, as `verify` prints the chain head.
    public var description: String { Hex.text(bytes) }
}

/// Bytes as hexadecimal digits: chain heads, and the keys and signatures of audit records.
package enum Hex {
    /// Two lowercase digits per byte.
    package static func text(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The `count` bytes that `hex` (2 × `count` digits, either case) names, or nil.
    package static func bytes(_ hex: String, count: Int) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 2 * count else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }
}

enum Digest {
    static func sha256(_ parts: ArraySlice<UInt8>...) -> [UInt8] {
        var hasher = SHA256()
        for part in parts { hasher.update(data: part) }
        return Array(hasher.finalize())
    }
}

extension BlockHash {
    /// The SHA-256 of `bytes` (for checksummed files outside the log: definitions, snapshots).
    public static func sha256(of bytes: [UInt8]) -> BlockHash {
        BlockHash(bytes: Digest.sha256(bytes[...]))
    }
}
