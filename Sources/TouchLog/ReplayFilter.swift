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
    public var profiles: [String] = []
    public var touchpoints: [String] = []
    public var types: Set<EventType> = []

    public init(fromOffset: UInt64? = nil, toOffset: UInt64? = nil, since: Int64? = nil, until: Int64? = nil,
                profiles: [String] = [], touchpoints: [String] = [], types: Set<EventType> = []) {
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
    public func matches(in block: DecodedBlock) -> [Int] {
        let events = block.events
        // String conditions are resolved once per dictionary entry, not per event.
        let profileAllowed = allowed(profiles, in: events.profiles)
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
