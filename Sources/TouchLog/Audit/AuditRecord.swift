import Crypto
import TouchLogStorage

/// What an audit found: "as of T, by what the store knew at K, segment S version V had these N members", pinned to
/// the place in the log it was computed at, so that anyone can later recompute it from the store and compare
/// (``TouchLogStore/check(_:publicKey:)-(String,_)``). See <doc:Audits> for its JSON, field by field.
///
/// Its JSON (``json``) is canonical: the same answer always gives the same bytes, and any edit of a byte is found.
public struct AuditRecord: Sendable, Equatable {
    /// A segment that the audited one refers to (directly or not), at the version it had then.
    public struct Reference: Sendable, Hashable {
        /// The segment's name.
        public var segment: String
        /// Its version when the record was made.
        public var version: Int
    }

    /// The version of the record's layout.
    public static let layout = 1

    /// The audited segment's name.
    public var segment: String
    /// Its version (see ``SegmentCatalog/history(_:)``).
    public var version: Int
    /// Its definition as stored at ``version`` (references to other segments by name).
    public var definition: SegmentDefinition
    /// The segments it refers to, sorted by name, each at its version then.
    public var references: [Reference]
    /// T: the time the membership is for, epoch milliseconds.
    public var asOf: Int64
    /// K: only events recorded at or before it counted, epoch milliseconds.
    public var knownAt: Int64
    /// The offset after the last event in the log when the record was made.
    public var offset: UInt64
    /// The chain head then: the hash of the log's last committed block (what `touchlog verify` printed then).
    public var chainHead: BlockHash
    /// How many members the segment had.
    public var members: Int
    /// The SHA-256 of the member list: each member's UTF-8 bytes followed by a line feed, sorted ascending by bytes
    /// (what `touchlog query S --as-of T --known-at K` prints, so `sha256sum` of its output gives the same digest).
    public var memberDigest: BlockHash
    /// The key that signed the record (nil: unsigned).
    public var publicKey: AuditPublicKey?
    /// The Ed25519 signature of ``signedBytes`` (nil: unsigned).
    public var signature: [UInt8]?

    /// The record as canonical JSON (one line, no trailing line feed).
    public var json: String { String(decoding: encoded(signed: true), as: UTF8.self) }

    /// The bytes the signature covers: ``json`` without its `signature` member (its public key included), that is, the
    /// record's bytes up to `,"signature":` followed by `}`.
    public var signedBytes: [UInt8] { encoded(signed: false) }

    /// The digest of a member list, sorted ascending by bytes (see ``memberDigest``).
    public static func digest(of sortedMembers: [String]) -> BlockHash {
        var hasher = SHA256()
        for member in sortedMembers {
            hasher.update(data: Array(member.utf8))
            hasher.update(data: [0x0A])
        }
        return BlockHash(bytes: Array(hasher.finalize()))
    }

    /// Signs the record with `key` (replacing any signature it had).
    public mutating func sign(with key: AuditSigningKey) throws(TouchLogError) {
        publicKey = key.publicKey
        signature = try key.signature(for: signedBytes)
    }

    private func encoded(signed: Bool) -> [UInt8] {
        var fields: [(key: String, value: JSONValue)] = [
            ("touchlogAudit", .number(String(Self.layout))),
            ("segment", .string(segment)),
            ("version", .number(String(version))),
            ("definition", definition.encoded()),
            (
                "references",
                .array(
                    references.map {
                        .object([("segment", .string($0.segment)), ("version", .number(String($0.version)))])
                    })
            ),
            ("asOf", .string(Timestamp.format(asOf))),
            ("knownAt", .string(Timestamp.format(knownAt))),
            ("offset", .number(String(offset))),
            ("chainHead", .string(chainHead.description)),
            ("members", .number(String(members))),
            ("memberDigest", .string(memberDigest.description)),
        ]
        if let publicKey { fields.append(("publicKey", .string(publicKey.hex))) }
        if signed, let signature { fields.append(("signature", .string(Hex.text(signature)))) }
        return Array(JSONValue.object(fields).text.utf8)
    }
}

extension AuditRecord {
    /// Parses a record (its JSON, as ``json`` writes it; one trailing line feed is allowed). Throws
    /// ``TouchLogError/Code-swift.struct/invalidInput``, naming the field, when the text is not an audit record. It
    /// does not check that the text is canonical: ``TouchLogStore/check(_:publicKey:)-(String,_)`` with the text does.
    public init(json text: String) throws(TouchLogError) {
        func refuse(_ why: String) -> TouchLogError {
            TouchLogError(code: .invalidInput, message: "not an audit record: \(why)")
        }
        let root: JSONValue
        do { root = try JSONValue.parse(text) } catch { throw refuse("\(error)") }
        guard case .object(let fields) = root else { throw refuse("expected a JSON object, found \(root.kind)") }
        let known: Set<String> = [
            "touchlogAudit", "segment", "version", "definition", "references", "asOf", "knownAt", "offset", "chainHead",
            "members", "memberDigest", "publicKey", "signature",
        ]
        if let unknown = fields.first(where: { !known.contains($0.key) }) {
            throw refuse("unknown field \"\(unknown.key)\"")
        }
        func field(_ key: String) throws(TouchLogError) -> JSONValue {
            guard let value = root[key] else { throw refuse("no \"\(key)\" field") }
            return value
        }
        func string(_ key: String) throws(TouchLogError) -> String {
            let value = try field(key)
            guard let s = value.string else { throw refuse("\"\(key)\" is \(value.kind), not a string") }
            return s
        }
        func integer(_ value: JSONValue, _ key: String) throws(TouchLogError) -> Int64 {
            guard let n = value.integer, n >= 0 else { throw refuse("\"\(key)\" is not a whole number ≥ 0") }
            return n
        }
        func time(_ key: String) throws(TouchLogError) -> Int64 {
            guard let ms = Timestamp.parse(try string(key)) else { throw refuse("\"\(key)\" is not an RFC 3339 time") }
            return ms
        }
        func hash(_ key: String) throws(TouchLogError) -> BlockHash {
            guard let hash = BlockHash(hex: try string(key)) else {
                throw refuse("\"\(key)\" is not 64 hexadecimal digits")
            }
            return hash
        }
        guard try integer(try field("touchlogAudit"), "touchlogAudit") == Int64(Self.layout) else {
            throw refuse("\"touchlogAudit\" is not \(Self.layout), the only layout this version reads")
        }
        segment = try string("segment")
        version = Int(try integer(try field("version"), "version"))
        let definitionValue = try field("definition")
        do { definition = try SegmentDefinition(value: definitionValue) } catch {
            throw refuse("\"definition\": \(error)")
        }
        guard case .array(let items) = try field("references") else { throw refuse("\"references\" is not an array") }
        references = []
        for item in items {
            guard let name = item["segment"]?.string, let number = item["version"] else {
                throw refuse("a reference is not {\"segment\": NAME, \"version\": N}")
            }
            references.append(Reference(segment: name, version: Int(try integer(number, "references.version"))))
        }
        asOf = try time("asOf")
        knownAt = try time("knownAt")
        offset = UInt64(try integer(try field("offset"), "offset"))
        chainHead = try hash("chainHead")
        members = Int(try integer(try field("members"), "members"))
        memberDigest = try hash("memberDigest")
        switch (root["publicKey"], root["signature"]) {
        case (nil, nil):
            publicKey = nil
            signature = nil
        case (.some, .some):
            guard let key = AuditPublicKey(hex: try string("publicKey")) else {
                throw refuse("\"publicKey\" is not 64 hexadecimal digits (an Ed25519 public key)")
            }
            guard let bytes = Hex.bytes(try string("signature"), count: 64) else {
                throw refuse("\"signature\" is not 128 hexadecimal digits (an Ed25519 signature)")
            }
            publicKey = key
            signature = bytes
        default:
            throw refuse("\"publicKey\" and \"signature\" come together or not at all")
        }
    }
}
