import TouchLogStorage

/// How a format-3 block keeps the profile identifiers it introduces: each XORed with a one-time pad of its own, as
/// long as the identifier and drawn from the kernel's random generator for it alone; the pads are kept in the
/// store's key file (``ProfileKeyFile``), never in the log. With its pad, an identifier is read back by one XOR;
/// with the pad overwritten (an erasure), the bytes in the log are independent of the identifier, whatever else
/// is known, so the log stays as it was, and every hash of its chain with it.
///
/// The sealed new-profiles section has the shape of a front-coded one whose entries share nothing: for each
/// profile, a 0 (varint), its length (varint), then its sealed bytes. Readers open it into the same shape with
/// the identifiers in clear, an erased profile's entry becoming empty (no identifier is).
///
/// What a sealed section still tells: how many profiles a block introduced and each identifier's length; and
/// the order of their ids, which is the order of their first events in the block (not of their bytes).
enum ProfileSealing {
    /// Fresh random pads for strings `ids` of `table`, back to back.
    static func pads(for table: StringTable, ids: Range<Int>) throws(TouchLogError) -> [UInt8] {
        let total = ids.isEmpty ? 0 : Int(table.ends[ids.upperBound - 1]) - (ids.lowerBound == 0 ? 0 : Int(table.ends[ids.lowerBound - 1]))
        return try randomBytes(total)
    }

    /// `count` bytes from the kernel's cryptographically secure generator (`/dev/urandom`, which on Linux is the
    /// same generator as getrandom(2), and never runs short once the system has started).
    static func randomBytes(_ count: Int) throws(TouchLogError) -> [UInt8] {
        guard count > 0 else { return [] }
        do {
            let file = try SystemFile.open("/dev/urandom", .readOnly)
            defer { file.close() }
            var bytes: [UInt8] = []
            while bytes.count < count {
                let got = try file.read(at: 0, count: count - bytes.count)
                precondition(!got.isEmpty, "/dev/urandom ended")
                bytes += got
            }
            return bytes
        } catch {
            throw TouchLogError(code: .io, message: "cannot read /dev/urandom, which seals profile identifiers: \(error)")
        }
    }

    /// Writes the sealed section of strings `ids` of `table`, given their `pads` (``pads(for:ids:)``).
    static func seal(_ table: StringTable, ids: Range<Int>, pads: [UInt8], into out: inout ByteWriter) {
        var p = 0
        for id in ids {
            let string = table[id]
            out.varint(0)
            out.varint(string.count)
            for byte in string {
                out.byte(byte ^ pads[p])
                p += 1
            }
        }
        precondition(p == pads.count, "one pad byte per identifier byte")
    }

    /// The byte range of each entry's pad among the record's pads, read from the lengths of a sealed section of
    /// `count` entries.
    static func padRanges(_ section: UnsafeRawBufferPointer, count: Int) throws(DecodeError) -> [Range<Int>] {
        var input = PayloadCursor(section)
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(count)
        var end = 0
        for k in 0..<count {
            guard try input.varint() == 0 else { throw input.fail("sealed profile \(k) shares a prefix") }
            let length = try input.count(max: EventLimits.maxIdentifierBytes, "sealed profile \(k) length")
            guard length > 0 else { throw input.fail("sealed profile \(k) is empty") }
            _ = try input.take(length)
            ranges.append(end..<(end + length))
            end += length
        }
        guard input.isAtEnd else { throw input.fail("\(input.remaining) bytes after the sealed profiles") }
        return ranges
    }

    /// Opens a sealed section of `count` profiles (ids from `firstProfile` on) with the block's `pads`: the same
    /// shape with the identifiers in clear, the entry of each profile `erased` says is erased left empty; and where
    /// each profile's pad lies among the pads.
    static func open(_ section: UnsafeRawBufferPointer, count: Int, firstProfile: Int, pads: [UInt8],
                     erased: (Int) -> Bool) throws(DecodeError) -> (opened: [UInt8], padRanges: [Range<Int>]) {
        let ranges = try padRanges(section, count: count)
        guard ranges.last?.upperBound ?? 0 == pads.count else {
            throw DecodeError(byte: 0, reason: "the key record holds \(pads.count) pad bytes, the sealed profiles need \(ranges.last?.upperBound ?? 0)")
        }
        var out = ByteWriter()
        out.bytes.reserveCapacity(section.count)
        var input = PayloadCursor(section)
        for (k, range) in ranges.enumerated() {
            _ = try input.varint()
            _ = try input.varint()
            let sealed = try input.take(range.count)
            out.varint(0)
            if erased(firstProfile + k) {
                out.varint(0)
                continue
            }
            out.varint(range.count)
            for i in 0..<range.count { out.byte(sealed[i] ^ pads[range.lowerBound + i]) }
        }
        return (out.bytes, ranges)
    }
}
