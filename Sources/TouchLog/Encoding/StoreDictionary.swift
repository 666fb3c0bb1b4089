/// The store-wide ids of profiles and touchpoints in a format-2 log: id `i` is the `i`-th string the log
/// introduced. A block introduces the strings its events use that no earlier block did (in ascending byte order),
/// in its dictionary section, and every event names its profile and touchpoint by id; so each identifier is
/// written once in the whole log, where a later erasure can find (and destroy) it.
///
/// Derived from the log: a reader builds it by reading the dictionary sections of the blocks it has seen; the
/// writer keeps it, with a hash index, to give new events their ids.
struct StoreDictionary: Sendable {
    var profiles = StringTable()
    var touchpoints = StringTable()
    /// How many blocks of the log (from the first) have had their new profiles, and their new touchpoints, read.
    var profileBlocks = 0
    var touchpointBlocks = 0

    /// Adds the profiles a block introduces, given its summary and its (checked, decompressed) new-profiles section.
    /// With `strict` (verify), also checks what the writer guarantees: each string is 1–256 bytes of UTF-8, the
    /// block's new strings ascend, and none was introduced before (this builds a hash index over all of them).
    mutating func addProfiles(_ summary: BlockSummary, section: UnsafeRawBufferPointer, strict: Bool) throws(DecodeError) {
        guard summary.firstNewProfile == UInt32(profiles.count) else {
            throw DecodeError(byte: 0, reason: "introduces profiles from id \(summary.firstNewProfile), the store has \(profiles.count)")
        }
        try Self.add(section, summary.newProfiles, to: &profiles, strict: strict, "profile")
        profileBlocks += 1
    }

    /// Adds the touchpoints a block introduces, given its summary and its new-touchpoints section; see
    /// ``addProfiles(_:section:strict:)``.
    mutating func addTouchpoints(_ summary: BlockSummary, section: UnsafeRawBufferPointer, strict: Bool) throws(DecodeError) {
        guard summary.firstNewTouchpoint == UInt32(touchpoints.count) else {
            throw DecodeError(byte: 0, reason: "introduces touchpoints from id \(summary.firstNewTouchpoint), the store has \(touchpoints.count)")
        }
        try Self.add(section, summary.newTouchpoints, to: &touchpoints, strict: strict, "touchpoint")
        touchpointBlocks += 1
    }

    private static func add(_ section: UnsafeRawBufferPointer, _ count: Int, to table: inout StringTable, strict: Bool,
                            _ what: String) throws(DecodeError) {
        var input = PayloadCursor(section)
        let before = table.count
        do throws(DecodeError) {
            try read(&input, count, into: &table, strict: strict, what)
            guard input.isAtEnd else { throw input.fail("\(input.remaining) bytes after the new \(what)s") }
        } catch {
            table.truncate(to: before)
            throw error
        }
    }

    /// Reads `count` front-coded strings (see ``EventBlockCodec/frontCode(_:from:into:)``) onto the end of `table`.
    private static func read(_ input: inout PayloadCursor, _ count: Int, into table: inout StringTable, strict: Bool,
                             _ what: String) throws(DecodeError) {
        var previous: [UInt8] = []
        var current: [UInt8] = []
        for index in 0..<count {
            let shared = try input.count(max: previous.count, "new \(what) \(index) shared prefix")
            let suffixLength = try input.count(max: EventLimits.maxIdentifierBytes, "new \(what) \(index) length")
            let suffix = try input.take(suffixLength)
            current.removeAll(keepingCapacity: true)
            current.append(contentsOf: previous[..<shared])
            current.append(contentsOf: UnsafeBufferPointer(start: suffix, count: suffixLength))
            if strict {
                guard (1...EventLimits.maxIdentifierBytes).contains(current.count) else {
                    throw input.fail("new \(what) \(index) is \(current.count) bytes")
                }
                guard index == 0 || current.lexicographicallyPrecedes(previous) == false && current != previous else {
                    throw input.fail("new \(what)s are not in ascending order at \(index)")
                }
                let valid = current.withUnsafeBytes { isValidUTF8($0) }
                guard valid else { throw input.fail("new \(what) \(index) is not valid UTF-8") }
                let before = table.count
                let id = current.withUnsafeBytes { table.intern($0) }
                guard Int(id) == before else { throw input.fail("new \(what) \(index) was introduced before, as id \(id)") }
            } else {
                guard shared + suffixLength > 0, shared + suffixLength <= EventLimits.maxIdentifierBytes else {
                    throw input.fail("new \(what) \(index) is \(shared + suffixLength) bytes")
                }
                table.append(current)
            }
            swap(&previous, &current)
        }
    }
}
