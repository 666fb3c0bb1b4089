import Crypto
import TouchLog

/// What a cluster is made of on NATS, and the settings fixed when it was created.
///
/// - one stream per partition, `touchlog-p<N>`, on the subjects `touchlog.p<N>.events` (JSON Lines of events) and
///   `touchlog.p<N>.erase` (an erasure);
/// - the bucket `touchlog-cluster` with the settings under `config`;
/// - the bucket `touchlog-leases`, one key per partition (`p<N>`) naming its owner; entries live for the lease time;
/// - the bucket `touchlog-nodes`, one key per running node, renewed like leases (for sharing partitions out);
/// - the bucket `touchlog-segments`, the segment definitions, one key per segment name.
public struct ClusterConfig: Sendable, Equatable {
    /// Random, fixed at `cluster init`: a node's local stores record it, so they cannot be mixed with another cluster's.
    public var id: String
    public var partitions: Int
    public var replicas: Int
    /// How long a lease lasts without renewal; owners renew it three times per period.
    public var leaseMilliseconds: Int64

    public init(id: String, partitions: Int, replicas: Int, leaseMilliseconds: Int64) {
        self.id = id
        self.partitions = partitions
        self.replicas = replicas
        self.leaseMilliseconds = leaseMilliseconds
    }

    static let configBucket = "touchlog-cluster"
    static let leaseBucket = "touchlog-leases"
    static let nodeBucket = "touchlog-nodes"
    static let segmentBucket = "touchlog-segments"
    /// The largest message touchlog publishes; the streams accept up to twice this.
    static let maxMessageBytes = 512 << 10

    static func stream(_ partition: Int) -> String { "touchlog-p\(partition)" }
    static func eventSubject(_ partition: Int) -> String { "touchlog.p\(partition).events" }
    static func eraseSubject(_ partition: Int) -> String { "touchlog.p\(partition).erase" }
    static func leaseKey(_ partition: Int) -> String { "p\(partition)" }
    /// Where a partition's owner takes requests (one queue group, so one owner answers each).
    func requestSubject(_ partition: Int) -> String { "touchlog.\(id.prefix(12)).request.p\(partition)" }
    static let ownerQueue = "touchlog-owners"

    /// The partition of a profile: FNV-1a (32-bit) of its UTF-8 bytes, mod the partition count.
    public static func partition(of profile: some Collection<UInt8>, partitions: Int) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in profile {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Int(hash % UInt32(partitions))
    }

    public func partition(of profile: String) -> Int { Self.partition(of: profile.utf8, partitions: partitions) }

    var json: [UInt8] {
        Array(
            JSONValue.object([
                ("id", .string(id)), ("partitions", .number(String(partitions))),
                ("replicas", .number(String(replicas))),
                ("leaseMilliseconds", .number(String(leaseMilliseconds))),
            ]).text.utf8)
    }

    init(json bytes: [UInt8]) throws(ClusterError) {
        guard let value = try? JSONValue.parse(String(decoding: bytes, as: UTF8.self)),
            let id = value["id"]?.string, let partitions = value["partitions"]?.integer, partitions > 0,
            let replicas = value["replicas"]?.integer, let lease = value["leaseMilliseconds"]?.integer, lease > 0
        else {
            throw ClusterError(.corrupt, "the cluster settings in the bucket \(Self.configBucket) are not touchlog's")
        }
        self.init(id: id, partitions: Int(partitions), replicas: Int(replicas), leaseMilliseconds: lease)
    }
}

/// A cluster failure, with the exit code the CLI gives it.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// NATS is unreachable or failed a request.
        case unavailable
        /// `cluster init` has not been run on this NATS system.
        case notInitialised
        /// The request conflicts with the cluster (another partition count, a store of another cluster).
        case conflict
        /// A partition has no owner, or its owner did not answer in time.
        case partitionMissing
        /// Data in NATS or a local store that touchlog did not write.
        case corrupt
        /// Failed in the store (its error is kept).
        case store(TouchLogError)
    }

    public var kind: Kind
    public var message: String
    /// The partitions that did not answer (``Kind/partitionMissing``).
    public var missing: [Int] = []

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    init(_ error: NATSError) { self.init(.unavailable, error.message) }

    public var description: String { message }
}

/// The commit metadata of a partition store's commits: which cluster, partition and stream message the commit applied,
/// and a digest chained over every message applied so far (two replicas that applied the same sequence have the same
/// digest, whatever their local files hold).
///
/// `TLCA`, version (1 byte), cluster id (UTF-8, length byte first), partition (u32 LE), stream sequence (u64 LE),
/// digest (32 bytes, SHA-256 of the previous digest, the sequence and the message's JetStream time in ms as u64 LE,
/// the kind byte (0 events, 1 erasure) and the message's bytes). `LogFormat.md` has it too.
struct AppliedRecord: Equatable {
    var clusterID: String
    var partition: Int
    var sequence: UInt64
    var digest: [UInt8]

    static let magic: [UInt8] = Array("TLCA".utf8)

    var encoded: [UInt8] {
        var out = Self.magic
        out.append(1)
        let id = Array(clusterID.utf8.prefix(255))
        out.append(UInt8(id.count))
        out += id
        withUnsafeBytes(of: UInt32(partition).littleEndian) { out += $0 }
        withUnsafeBytes(of: sequence.littleEndian) { out += $0 }
        out += digest
        return out
    }

    init(clusterID: String, partition: Int, sequence: UInt64, digest: [UInt8]) {
        self.clusterID = clusterID
        self.partition = partition
        self.sequence = sequence
        self.digest = digest
    }

    /// Nil when `metadata` is not an applied record (an erasure's record, say).
    init?(metadata: [UInt8]) {
        guard metadata.count >= 6, Array(metadata[0..<4]) == Self.magic, metadata[4] == 1 else { return nil }
        let idLength = Int(metadata[5])
        guard metadata.count == 6 + idLength + 4 + 8 + 32 else { return nil }
        var i = 6
        clusterID = String(decoding: metadata[i..<(i + idLength)], as: UTF8.self)
        i += idLength
        var partition: UInt32 = 0
        for k in 0..<4 { partition |= UInt32(metadata[i + k]) << (8 * k) }
        i += 4
        var sequence: UInt64 = 0
        for k in 0..<8 { sequence |= UInt64(metadata[i + k]) << (8 * k) }
        i += 8
        self.partition = Int(partition)
        self.sequence = sequence
        digest = Array(metadata[i...])
    }

    /// The digest after applying a message.
    static func chain(_ previous: [UInt8], sequence: UInt64, recorded: Int64, kind: UInt8, payload: [UInt8]) -> [UInt8]
    {
        var hash = SHA256()
        hash.update(data: previous)
        withUnsafeBytes(of: sequence.littleEndian) { hash.update(bufferPointer: $0) }
        withUnsafeBytes(of: UInt64(bitPattern: recorded).littleEndian) { hash.update(bufferPointer: $0) }
        hash.update(data: [kind])
        hash.update(data: payload)
        return Array(hash.finalize())
    }

    static let zeroDigest = [UInt8](repeating: 0, count: 32)
}

extension Array where Element == UInt8 {
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
