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

    /// Readies both tables for lookups from several threads (``StringTable/prepareLookups()``).
    mutating func prepareLookups() {
        profiles.prepareLookups()
        touchpoints.prepareLookups()
    }

    /// Adds the profiles a block introduces, given its summary and its (checked, decompressed) new-profiles section.
    /// With `strict`, also checks what the writer guarantees of a block's new strings: each is 1–256 bytes of UTF-8,
    /// and they ascend (see ``read(_:_:into:strict:_:)``).
    ///
    /// `sealed`: the section of a format-3 block, opened (``ProfileSealing``): in no order, an erased profile empty.
    mutating func addProfiles(
        _ summary: BlockSummary, section: UnsafeRawBufferPointer, strict: Bool, sealed: Bool = false
    ) throws(DecodeError) {
        try checkIntroducesNextProfiles(summary)
        try Self.add(section, summary.newProfiles, to: &profiles, strict: strict, sealed: sealed, "profile")
        profileBlocks += 1
    }

    /// Adds the profiles a block introduces, already decoded into `table` (``read(_:_:into:strict:sealed:_:)``, as
    /// ``addProfiles(_:section:strict:sealed:)`` would).
    mutating func addProfiles(_ summary: BlockSummary, decoded table: StringTable) throws(DecodeError) {
        try checkIntroducesNextProfiles(summary)
        profiles.append(contentsOf: table)
        profileBlocks += 1
    }

    /// Checks that the block's new profiles start where the table ends.
    private func checkIntroducesNextProfiles(_ summary: BlockSummary) throws(DecodeError) {
        guard summary.firstNewProfile == UInt32(profiles.count) else {
            throw DecodeError(
                byte: 0,
                reason: "introduces profiles from id \(summary.firstNewProfile), the store has \(profiles.count)")
        }
    }

    /// Adds the touchpoints a block introduces, given its summary and its new-touchpoints section; see
    /// ``addProfiles(_:section:strict:)``.
    mutating func addTouchpoints(_ summary: BlockSummary, section: UnsafeRawBufferPointer, strict: Bool)
        throws(DecodeError)
    {
        guard summary.firstNewTouchpoint == UInt32(touchpoints.count) else {
            throw DecodeError(
                byte: 0,
                reason:
                    "introduces touchpoints from id \(summary.firstNewTouchpoint), the store has \(touchpoints.count)")
        }
        try Self.add(section, summary.newTouchpoints, to: &touchpoints, strict: strict, "touchpoint")
        touchpointBlocks += 1
    }

    /// Walks a new-profiles (or new-touchpoints) section whose entries have ids `entries`, appending to `strings` those
    /// whose ids are in `wanted` (ascending, all within `entries`), in order. Only the wanted strings are copied out;
    /// the others are only stepped over.
    static func copy(
        _ section: UnsafeRawBufferPointer, entries: Range<Int>, wanted: ArraySlice<Int>,
        into strings: inout StringTable
    ) throws(DecodeError) {
        var input = PayloadCursor(section)
        // The entry being rebuilt, with 16 bytes of room past the longest: a short suffix is copied as one 16-byte load
        // and store (when 16 bytes can be read where it starts).
        let previous = UnsafeMutableRawPointer.allocate(byteCount: EventLimits.maxIdentifierBytes + 16, alignment: 16)
        defer { previous.deallocate() }
        let sectionEnd = input.base + input.size
        var previousLength = 0
        var next = wanted.startIndex
        for id in entries {
            guard next < wanted.endIndex else { break }
            let shared = try input.count(max: previousLength, "entry \(id - entries.lowerBound) shared prefix")
            let suffixLength = try input.count(
                max: EventLimits.maxIdentifierBytes - shared, "entry \(id - entries.lowerBound) length")
            let suffix = try input.take(suffixLength)
            if suffixLength <= 16 && sectionEnd - suffix >= 16 {
                (previous + shared).storeBytes(
                    of: UnsafeRawPointer(suffix).loadUnaligned(as: SIMD16<UInt8>.self), as: SIMD16<UInt8>.self)
            } else {
                (previous + shared).copyMemory(from: suffix, byteCount: suffixLength)
            }
            previousLength = shared + suffixLength
            if wanted[next] == id {
                strings.append(UnsafeRawBufferPointer(start: previous, count: previousLength))
                next += 1
            }
        }
    }

    private static func add(
        _ section: UnsafeRawBufferPointer, _ count: Int, to table: inout StringTable, strict: Bool,
        sealed: Bool = false, _ what: String
    ) throws(DecodeError) {
        let before = table.count
        do throws(DecodeError) { try read(section, count, into: &table, strict: strict, sealed: sealed, what) } catch {
            table.truncate(to: before)
            throw error
        }
    }

    /// Reads the `count` front-coded strings of a new-profiles (or new-touchpoints) section onto the end of `table`
    /// (see ``EventBlockCodec/appendFrontCoded(_:count:to:checkingLengths:strict:_:)``); `strict` also checks that each
    /// is UTF-8 and that they ascend. (That none was introduced by an earlier block is checked by `verify`, over the
    /// whole log at once.)
    /// `sealed`: an opened format-3 section, whose strings are in no order and empty where erased.
    static func read(
        _ section: UnsafeRawBufferPointer, _ count: Int, into table: inout StringTable, strict: Bool,
        sealed: Bool = false, _ what: String
    ) throws(DecodeError) {
        var input = PayloadCursor(section)
        try EventBlockCodec.appendFrontCoded(
            &input, count: count, to: &table, checkingLengths: !sealed, strict: strict,
            ordered: !sealed, "new \(what)")
        guard input.isAtEnd else { throw input.fail("\(input.remaining) bytes after the new \(what)s") }
    }
}
