/// Which events a replay returns. Every condition given must hold; a list condition holds when any of its
/// entries matches.
public struct ReplayFilter: Sendable {
    /// First offset to return.
    public var fromOffset: UInt64?
    /// Last offset to return (inclusive).
    public var toOffset: UInt64?
    /// Earliest event time (inclusive), ms.
    public var since: Int64?
    /// Latest event time (inclusive), ms.
    public var until: Int64?
    /// Only these profiles (empty: all).
    public var profiles: [String] = []
    /// Only these touchpoints (empty: all).
    public var touchpoints: [String] = []
    /// Only these event types (empty: all).
    public var types: Set<EventType> = []
    /// Also the events of erased profiles (format 3), whose profile is empty (left out by default).
    public var includeErased = false
    /// Only events recorded at or before this time, ms: what the store knew then (nil: everything recorded).
    public var knownAt: Int64?

    /// A filter; each condition left out matches everything.
    public init(
        fromOffset: UInt64? = nil, toOffset: UInt64? = nil, since: Int64? = nil, until: Int64? = nil,
        profiles: [String] = [], touchpoints: [String] = [], types: Set<EventType> = [], includeErased: Bool = false,
        knownAt: Int64? = nil
    ) {
        self.includeErased = includeErased
        self.knownAt = knownAt
        self.fromOffset = fromOffset
        self.toOffset = toOffset
        self.since = since
        self.until = until
        self.profiles = profiles
        self.touchpoints = touchpoints
        self.types = types
    }

    /// False when no event of a block with these bounds can match (the block is skipped unread).
    func mayMatch(firstOffset: UInt64, endOffset: UInt64, minTime: Int64, maxTime: Int64) -> Bool {
        if let fromOffset, endOffset <= fromOffset { return false }
        if let toOffset, firstOffset > toOffset { return false }
        if let since, maxTime < since { return false }
        if let until, minTime > until { return false }
        return true
    }

    /// The positions in `block` of the events that match.
    package func matches(in block: DecodedBlock) -> [Int] {
        // A commit's blocks all carry its recorded time.
        if let knownAt, block.recorded > knownAt { return [] }
        let events = block.events
        // String conditions are resolved once per dictionary entry, not per event.
        var profileAllowed = allowed(profiles, in: events.profiles)
        if !includeErased {
            // An erased profile (format 3) is an empty entry of the block's dictionary.
            let erased = (0..<events.profiles.count).filter { events.profiles.range($0).isEmpty }
            if !erased.isEmpty {
                var allowed = profileAllowed ?? [Bool](repeating: true, count: events.profiles.count)
                for id in erased { allowed[id] = false }
                profileAllowed = allowed
            }
        }
        let touchpointAllowed = allowed(touchpoints, in: events.touchpoints)
        if profileAllowed?.contains(true) == false || touchpointAllowed?.contains(true) == false { return [] }
        let typeMask = types.isEmpty ? UInt8(7) : types.reduce(UInt8(0)) { $0 | (1 << $1.rawValue) }
        var result: [Int] = []
        result.reserveCapacity(events.count)
        for i in 0..<events.count {
            let offset = block.firstOffset + UInt64(i)
            if let fromOffset, offset < fromOffset { continue }
            if let toOffset, offset > toOffset { break }
            let t = events.times[i]
            if let since, t < since { continue }
            if let until, t > until { continue }
            if typeMask & (1 << events.types[i]) == 0 { continue }
            if let profileAllowed, !profileAllowed[Int(events.profileIDs[i])] { continue }
            if let touchpointAllowed {
                let id = events.touchpointIDs[i]
                if id == 0 || !touchpointAllowed[Int(id - 1)] { continue }
            }
            result.append(i)
        }
        return result
    }

    private func allowed(_ wanted: [String], in table: StringTable) -> [Bool]? {
        guard !wanted.isEmpty else { return nil }
        var flags = [Bool](repeating: false, count: table.count)
        for string in wanted {
            if let id = table.firstIndex(of: Array(string.utf8)) { flags[id] = true }
        }
        return flags
    }
}

/// Format 2: a replay filter's string and type conditions as store-wide ids, so that a block can be passed over by
/// its summary (which touchpoints and types it holds, the range of its profile ids) and, when a profile is asked for,
/// by its profile ids alone, without decoding it.
struct BlockPruning {
    /// The store-wide ids of the filter's profiles, ascending (nil: no profile condition).
    var profiles: [UInt32]?
    /// The filter's touchpoints as group keys hold them, id + 1 (nil: no touchpoint condition).
    var touchpoints: Set<UInt32>?
    /// A bit per event type the filter lets through.
    var typeMask: UInt8

    /// True when no event can match: a profile or touchpoint condition names only strings the store never saw.
    var matchesNothing: Bool { profiles?.isEmpty == true || touchpoints?.isEmpty == true }
}

extension StoreReader {
    /// The pruning of `filter` for this store (nil for format 1, whose blocks carry their own dictionaries, and for a
    /// filter without profile, touchpoint or type conditions).
    func pruning(for filter: ReplayFilter) throws(TouchLogError) -> BlockPruning? {
        guard formatVersion >= 2, !(filter.profiles.isEmpty && filter.touchpoints.isEmpty && filter.types.isEmpty)
        else { return nil }
        var pruning = BlockPruning(
            typeMask: filter.types.isEmpty ? 7 : filter.types.reduce(0) { $0 | (1 << $1.rawValue) })
        if !filter.touchpoints.isEmpty {
            try loadTouchpoints()
            pruning.touchpoints = Set(
                filter.touchpoints.compactMap { dictionary.touchpoints.firstIndex(of: Array($0.utf8)) }.map {
                    UInt32($0 + 1)
                })
        }
        if !filter.profiles.isEmpty {
            try loadDictionary()
            pruning.profiles = Set(filter.profiles.compactMap { dictionary.profiles.firstIndex(of: Array($0.utf8)) })
                .map(UInt32.init).sorted()
        }
        return pruning
    }

    /// Whether format-2 block `index` may hold an event that `pruning` lets through: one of its groups has a wanted
    /// type and touchpoint, and (with a profile condition) one of its events names a wanted profile.
    func mayHold(_ pruning: BlockPruning, block index: Int) throws(TouchLogError) -> Bool {
        let summary = try summary(of: index)
        let groupMatches = summary.groups.contains { group in
            pruning.typeMask & (1 << group.type) != 0 && (pruning.touchpoints?.contains(group.touchpoint) ?? true)
        }
        guard groupMatches else { return false }
        guard let profiles = pruning.profiles else { return true }
        // Ids the block can hold: introduced by it or before, and within its base and id width.
        let base = UInt64(summary.profileBase)
        let end = min(
            UInt64(summary.firstNewProfile) + UInt64(summary.newProfiles),
            base + (UInt64(1) << UInt64(summary.profileWidth)))
        let candidates = profiles.filter { UInt64($0) >= base && UInt64($0) < end }.map { $0 - UInt32(base) }
        guard !candidates.isEmpty else { return false }
        try Self.readSection(
            .profiles, of: log.blocks[index], summary, reader: log, stored: &sectionBytes, into: &pruningBytes)
        pruningIDs.resize(to: summary.count, filler: 0)
        do {
            try pruningBytes.withDecodedBytes { raw throws(DecodeError) in
                var input = PayloadCursor(raw)
                _ = try pruningIDs.withUnsafeMutableBufferPointer { ids throws(DecodeError) in
                    try input.unpack(summary.count, width: summary.profileWidth, into: ids)
                }
            }
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(log.location(of: log.blocks[index])): bad block: \(error)")
        }
        if candidates.count == 1 { return pruningIDs.contains(candidates[0]) }
        let wanted = Set(candidates)
        return pruningIDs.contains { wanted.contains($0) }
    }
}
