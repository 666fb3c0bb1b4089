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
        let total =
            ids.isEmpty
            ? 0 : Int(table.ends[ids.upperBound - 1]) - (ids.lowerBound == 0 ? 0 : Int(table.ends[ids.lowerBound - 1]))
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
            throw TouchLogError(
                code: .io, message: "cannot read /dev/urandom, which seals profile identifiers: \(error)")
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
    static func open(
        _ section: UnsafeRawBufferPointer, count: Int, firstProfile: Int, pads: [UInt8],
        erased: (Int) -> Bool
    ) throws(DecodeError) -> (opened: [UInt8], padRanges: [Range<Int>]) {
        let ranges = try padRanges(section, count: count)
        guard ranges.last?.upperBound ?? 0 == pads.count else {
            throw DecodeError(
                byte: 0,
                reason:
                    "the key record holds \(pads.count) pad bytes, the sealed profiles need \(ranges.last?.upperBound ?? 0)"
            )
        }
        // The same shape, the sealed bytes XORed in place in a copy (an erased entry's length becomes 0, its bytes go).
        var opened = [UInt8](repeating: 0, count: section.count)
        var end = 0
        var input = PayloadCursor(section)
        try opened.withUnsafeMutableBufferPointer { out throws(DecodeError) in
            try pads.withUnsafeBufferPointer { pads throws(DecodeError) in
                for (k, range) in ranges.enumerated() {
                    _ = try input.varint()
                    _ = try input.varint()
                    let sealed = try input.take(range.count)
                    out[end] = 0
                    end += 1
                    if erased(firstProfile + k) {
                        out[end] = 0
                        end += 1
                        continue
                    }
                    // A length of 1–256 is one or two varint bytes.
                    if range.count < 0x80 {
                        out[end] = UInt8(range.count)
                        end += 1
                    } else {
                        out[end] = UInt8(truncatingIfNeeded: range.count) | 0x80
                        out[end + 1] = UInt8(range.count >> 7)
                        end += 2
                    }
                    for i in 0..<range.count { out[end + i] = sealed[i] ^ pads[range.lowerBound + i] }
                    end += range.count
                }
            }
        }
        opened.removeSubrange(end...)
        return (opened, ranges)
    }

    /// Appends to `strings` the identifiers of profiles `wanted` (ascending ids, all in the section) of a sealed
    /// section whose first profile is `firstProfile`, opened with `pads`; an erased one (in `erased`) is empty. The
    /// others are only stepped over.
    static func copy(
        _ section: UnsafeRawBufferPointer, firstProfile: Int, pads: [UInt8], wanted: ArraySlice<Int>,
        erased: Set<Int>, into strings: inout StringTable
    ) throws(DecodeError) {
        var input = PayloadCursor(section)
        var padStart = 0
        var next = wanted.startIndex
        var id = firstProfile
        var opened = [UInt8](repeating: 0, count: EventLimits.maxIdentifierBytes)
        while next < wanted.endIndex {
            guard try input.varint() == 0 else {
                throw input.fail("sealed profile \(id - firstProfile) shares a prefix")
            }
            let length = try input.count(
                max: EventLimits.maxIdentifierBytes, "sealed profile \(id - firstProfile) length")
            let sealed = try input.take(length)
            guard padStart + length <= pads.count else {
                throw input.fail("the key record holds \(pads.count) pad bytes, too few")
            }
            if wanted[next] == id {
                if erased.contains(id) {
                    strings.append(UnsafeRawBufferPointer(start: nil, count: 0))
                } else {
                    for i in 0..<length { opened[i] = sealed[i] ^ pads[padStart + i] }
                    opened.withUnsafeBytes { strings.append(UnsafeRawBufferPointer(rebasing: $0[..<length])) }
                }
                next += 1
            }
            padStart += length
            id += 1
        }
    }
}
