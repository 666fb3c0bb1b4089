import Crypto
import Foundation
import TouchLogStorage

/// An Ed25519 private key that signs audit records (see <doc:Audits>).
///
/// Its file is PEM (PKCS #8, `-----BEGIN PRIVATE KEY-----`), as `openssl genpkey -algorithm ed25519` writes it, and
/// must be readable by its owner only (mode 0600): reading one that others can read is refused, as ssh refuses.
public struct AuditSigningKey: Sendable {
    /// The key's 32 secret bytes (Crypto's key type is not `Sendable`).
    private let raw: [UInt8]
    private var key: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: raw) }

    /// A new random key.
    public static func generate() -> AuditSigningKey { AuditSigningKey(key: Curve25519.Signing.PrivateKey()) }

    /// The key in a PEM text (what ``write(to:)`` writes); throws ``TouchLogError/Code-swift.struct/invalidInput``
    /// when the text is not an Ed25519 private key.
    public init(pem: String, source: String = "the key") throws(TouchLogError) {
        let raw = try PEMKey.decode(pem, source: source, want: .privateKey)
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw TouchLogError(code: .invalidInput, message: "\(source) is not a valid Ed25519 private key")
        }
        self.init(key: key)
    }

    private init(key: Curve25519.Signing.PrivateKey) { self.raw = Array(key.rawRepresentation) }

    /// Reads the private key file at `path`. Throws ``TouchLogError/Code-swift.struct/notFound`` when there is none,
    /// and ``TouchLogError/Code-swift.struct/invalidInput`` when others may read it or it is not an Ed25519 private
    /// key (a public key included).
    public init(contentsOf path: String) throws(TouchLogError) {
        let (text, permissions) = try PEMKey.read(path)
        try self.init(pem: text, source: path)
        guard permissions & 0o077 == 0 else {
            throw TouchLogError(
                code: .invalidInput,
                message: "\(path): others can read this private key (permissions 0\(String(permissions, radix: 8))); "
                    + "it must be readable by its owner only: chmod 600 \(path)")
        }
    }

    /// The key as PEM (PKCS #8).
    public var pem: String { PEMKey.encode(Array(key.rawRepresentation), as: .privateKey) }

    /// The public half, which checks the records this key signs.
    public var publicKey: AuditPublicKey { AuditPublicKey(raw: Array(key.publicKey.rawRepresentation)) }

    /// Writes the key to `path` (mode 0600) and its public key to `path.pub`, both new files (an existing file is never
    /// overwritten: ``TouchLogError/Code-swift.struct/conflict``).
    public func write(to path: String) throws(TouchLogError) {
        for file in [path, path + ".pub"] where SystemFile.exists(file) {
            throw TouchLogError(code: .conflict, message: "\(file) already exists; not overwritten")
        }
        try PEMKey.write(Array(pem.utf8), to: path, mode: .createPrivate)
        try PEMKey.write(Array(publicKey.pem.utf8), to: path + ".pub", mode: .createReadWrite)
    }

    /// The Ed25519 signature of `message`.
    func signature(for message: [UInt8]) throws(TouchLogError) -> [UInt8] {
        do { return Array(try key.signature(for: message)) } catch {
            throw TouchLogError(code: .io, message: "signing failed: \(error)")
        }
    }
}

/// The public half of an ``AuditSigningKey``: checks an audit record's signature. Its file is PEM
/// (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo), which `openssl pkeyutl -verify` reads too.
public struct AuditPublicKey: Sendable, Hashable {
    /// The key's 32 bytes.
    public let raw: [UInt8]

    init(raw: [UInt8]) { self.raw = raw }

    /// The key in a PEM text; throws ``TouchLogError/Code-swift.struct/invalidInput`` when it is not an Ed25519 public
    /// key.
    public init(pem: String, source: String = "the key") throws(TouchLogError) {
        self.init(raw: try PEMKey.decode(pem, source: source, want: .publicKey))
    }

    /// The key as 64 hexadecimal digits (how an audit record names it); nil when `hex` is not that.
    public init?(hex: String) {
        guard let raw = Hex.bytes(hex, count: 32) else { return nil }
        self.init(raw: raw)
    }

    /// Reads the public key file at `path` (``TouchLogError/Code-swift.struct/notFound`` when there is none).
    public init(contentsOf path: String) throws(TouchLogError) {
        try self.init(pem: try PEMKey.read(path).text, source: path)
    }

    /// The key as PEM.
    public var pem: String { PEMKey.encode(raw, as: .publicKey) }

    /// The key as 64 lowercase hexadecimal digits.
    public var hex: String { Hex.text(raw) }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    func verifies(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

/// Ed25519 keys in PEM files: the DER of an Ed25519 key (RFC 8410) is a fixed prefix followed by the key's 32 bytes.
enum PEMKey {
    enum Kind {
        case privateKey, publicKey

        var label: String { self == .privateKey ? "PRIVATE KEY" : "PUBLIC KEY" }
        /// PKCS #8 `PrivateKeyInfo` and `SubjectPublicKeyInfo` with the Ed25519 algorithm (OID 1.3.101.112).
        var prefix: [UInt8] {
            switch self {
            case .privateKey:
                [0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]
            case .publicKey: [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]
            }
        }
        var name: String { self == .privateKey ? "private key" : "public key" }
    }

    static func encode(_ raw: [UInt8], as kind: Kind) -> String {
        let body = Data(kind.prefix + raw).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(kind.label)-----\n\(body)\n-----END \(kind.label)-----\n"
    }

    static func decode(_ text: String, source: String, want kind: Kind) throws(TouchLogError) -> [UInt8] {
        let other: Kind = kind == .privateKey ? .publicKey : .privateKey
        func refuse(_ why: String) -> TouchLogError {
            TouchLogError(code: .invalidInput, message: "\(source) is not an Ed25519 \(kind.name): \(why)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") }) else {
            throw refuse("no PEM block (a line \"-----BEGIN \(kind.label)-----\")")
        }
        if lines[begin] == "-----BEGIN \(other.label)-----" {
            throw TouchLogError(
                code: .invalidInput,
                message: "\(source) is a \(other.name), not a \(kind.name)"
                    + (kind == .privateKey ? " (signing needs the file `audit keygen` wrote without .pub)" : ""))
        }
        guard lines[begin] == "-----BEGIN \(kind.label)-----",
            let end = lines[begin...].firstIndex(of: "-----END \(kind.label)-----")
        else {
            throw refuse(
                "found \"\(lines[begin])\" where \"-----BEGIN \(kind.label)-----\" … \"-----END\" was expected")
        }
        guard let der = Data(base64Encoded: lines[(begin + 1)..<end].joined()) else {
            throw refuse("its PEM block is not base64")
        }
        let bytes = Array(der)
        guard bytes.count == kind.prefix.count + 32, bytes.starts(with: kind.prefix) else {
            throw refuse(
                "it holds \(bytes.count) bytes of another kind of key (an Ed25519 key is \(kind.prefix.count + 32))")
        }
        return Array(bytes[kind.prefix.count...])
    }

    /// The text of the key file at `path` and its permission bits.
    static func read(_ path: String) throws(TouchLogError) -> (text: String, permissions: UInt32) {
        do {
            let file = try SystemFile.open(path, .readOnly)
            defer { file.close() }
            let status = try file.status()
            guard status.kind == .file, status.size <= 1 << 16 else {
                throw TouchLogError(code: .invalidInput, message: "\(path) is not a key file")
            }
            let bytes = try file.read(at: 0, count: Int(status.size))
            return (String(decoding: bytes, as: UTF8.self), status.permissions)
        } catch let error as SystemCallError {
            throw TouchLogError(
                code: error.isNotFound ? .notFound : .io, message: "cannot read \(path): \(error.reason)")
        } catch let error as TouchLogError {
            throw error
        } catch {
            throw TouchLogError(code: .io, message: "cannot read \(path): \(error)")
        }
    }

    static func write(_ bytes: [UInt8], to path: String, mode: SystemFile.Mode) throws(TouchLogError) {
        do {
            let file = try SystemFile.open(path, mode)
            defer { file.close() }
            try file.write(bytes, at: 0)
            try file.sync()
        } catch {
            throw TouchLogError(
                code: error.isNotFound ? .notFound : .io, message: "cannot write \(path): \(error.reason)")
        }
    }
}
