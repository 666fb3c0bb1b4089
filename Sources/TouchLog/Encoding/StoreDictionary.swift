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

    /// Walks a new-profiles (or new-touchpoints) section whose entries have ids `entries`, appending to `strings`
    /// those whose ids are in `wanted` (ascending) from index `from` on; returns the index of the first wanted id past
    /// the section. Only the wanted strings are copied out; the others are only stepped over.
    static func copy(_ section: UnsafeRawBufferPointer, entries: Range<Int>, wanted: [Int], from: Int,
                     into strings: inout StringTable) throws(DecodeError) -> Int {
        var input = PayloadCursor(section)
        var previous = [UInt8](repeating: 0, count: EventLimits.maxIdentifierBytes)
        var previousLength = 0
        var next = from
        for id in entries {
            guard next < wanted.count, wanted[next] < entries.upperBound else { break }
            let shared = try input.count(max: previousLength, "entry \(id - entries.lowerBound) shared prefix")
            let suffixLength = try input.count(max: EventLimits.maxIdentifierBytes - shared, "entry \(id - entries.lowerBound) length")
            let suffix = try input.take(suffixLength)
            previous.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: shared).update(from: suffix, count: suffixLength) }
            previousLength = shared + suffixLength
            if wanted[next] == id {
                strings.append(previous[..<previousLength])
                next += 1
            }
        }
        return next
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

    /// Reads `count` front-coded strings onto the end of `table` (see
    /// ``EventBlockCodec/appendFrontCoded(_:count:to:checkingLengths:strict:_:)``); `strict` also checks that none was
    /// introduced before (building a hash index over every string).
    private static func read(_ input: inout PayloadCursor, _ count: Int, into table: inout StringTable, strict: Bool,
                             _ what: String) throws(DecodeError) {
        guard strict else {
            try EventBlockCodec.appendFrontCoded(&input, count: count, to: &table, checkingLengths: true, strict: false, "new \(what)")
            return
        }
        // The block's strings apart first, then each interned into the table: appending them to it directly would
        // drop its hash index (rebuilt over every string so far, for every block).
        var added = StringTable()
        try EventBlockCodec.appendFrontCoded(&input, count: count, to: &added, checkingLengths: true, strict: true, "new \(what)")
        for index in 0..<count {
            let before = table.count
            let id = added[index].withUnsafeBytes { table.intern($0) }
            guard Int(id) == before else { throw input.fail("new \(what) \(index) was introduced before, as id \(id)") }
        }
    }
}
