/// What a format-3 erasure commit records in the log (its marker's commit metadata): which profiles were erased,
/// by internal id, and why. No identifier: the record itself holds no personal data (the reason is the caller's
/// text and should hold none either).
///
/// Bytes: `TLER`; version 1 (one byte); the reason's length (varint, at most 1,000) and its UTF-8 bytes; the number
/// of profiles (varint, at least 1); the first id (varint), then each next id minus the one before (varint, at
/// least 1): the ids strictly ascend. The commit's recorded time is when it happened.
struct ErasureRecord: Equatable, Sendable {
    static let magic = Array("TLER".utf8)
    static let maxReasonBytes = 1_000

    var profiles: [Int]
    var reason: String

    func encoded() -> [UInt8] {
        precondition(!profiles.isEmpty && zip(profiles, profiles.dropFirst()).allSatisfy { $0 < $1 }, "ids ascend")
        var out = ByteWriter()
        out.bytes = Self.magic
        out.byte(1)
        out.varint(reason.utf8.count)
        out.bytes.append(contentsOf: reason.utf8)
        out.varint(profiles.count)
        var previous = 0
        for (k, id) in profiles.enumerated() {
            out.varint(k == 0 ? id : id - previous)
            previous = id
        }
        return out.bytes
    }

    /// The record in commit metadata `bytes`, or nil when the metadata is not an erasure record.
    init?(metadata bytes: [UInt8]) throws(DecodeError) {
        guard bytes.starts(with: Self.magic) else { return nil }
        let parsed = try bytes.withDecodedBytes { raw throws(DecodeError) -> ErasureRecord in
            var input = PayloadCursor(raw)
            _ = try input.take(4)
            guard try input.byte() == 1 else { throw input.fail("unknown erasure record version") }
            let reasonLength = try input.count(max: Self.maxReasonBytes, "reason length")
            let reason = String(
                decoding: UnsafeBufferPointer(start: try input.take(reasonLength), count: reasonLength), as: UTF8.self)
            let count = try input.count(max: input.remaining, "profile count")
            guard count > 0 else { throw input.fail("an erasure of no profiles") }
            var profiles: [Int] = []
            profiles.reserveCapacity(count)
            for k in 0..<count {
                let step = try input.varint()
                guard k == 0 || step > 0, step <= UInt64(UInt32.max) else {
                    throw input.fail("profile ids do not ascend")
                }
                let id = (profiles.last ?? 0) + Int(step)
                guard id <= Int(UInt32.max) else { throw input.fail("profile id \(id) out of range") }
                profiles.append(id)
            }
            guard input.isAtEnd else { throw input.fail("\(input.remaining) bytes after the erasure record") }
            return ErasureRecord(profiles: profiles, reason: reason)
        }
        self = parsed
    }

    init(profiles: [Int], reason: String) {
        self.profiles = profiles
        self.reason = reason
    }
}
