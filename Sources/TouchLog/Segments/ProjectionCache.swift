import Synchronization

/// The latest folded projection of the segment definitions a store was recently queried for, kept in memory and
/// shared by the store's readers: a query starts from it (when it is usable at the query's time, like a snapshot)
/// and folds only the blocks committed since, instead of loading a snapshot and folding up to a million events.
///
/// Entries are prefix projections of this log (folded whole blocks, never the late-event additions of one query);
/// the log only grows, and each is checked against the log's block hash at its offset before use. At most
/// ``capacity`` definitions are kept, the least recently used dropped first. Like snapshots, the cache only makes
/// queries faster: it never changes an answer.
final class ProjectionCache: Sendable {
    private struct Entry {
        var definition: SegmentDefinition
        var projection: SegmentProjection
        var lastUse: UInt64
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var clock: UInt64 = 0
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int = 4) {
        self.capacity = capacity
    }

    /// The cached projection of `definition` if it may start a query at `time` (watermark ≤ T, recorded ≤ K) and
    /// lies within the first `endOffset` events of the log.
    func projection(of definition: SegmentDefinition, usableAt time: QueryTime, within endOffset: UInt64)
        -> SegmentProjection?
    {
        state.withLock { state in
            let key = SnapshotStore.key(definition)
            guard var entry = state.entries[key], entry.definition == definition else { return nil }
            let p = entry.projection
            guard p.endOffset > 0, p.endOffset <= endOffset, p.watermark <= time.asOf,
                p.recorded <= (time.knownAt ?? .max)
            else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[key] = entry
            return p
        }
    }

    /// Keeps `projection` (a prefix projection of `definition`) when it is further along the log than the one kept.
    func offer(_ projection: SegmentProjection, of definition: SegmentDefinition) {
        state.withLock { state in
            let key = SnapshotStore.key(definition)
            if let kept = state.entries[key], kept.definition == definition,
                kept.projection.endOffset >= projection.endOffset
            {
                return
            }
            state.clock += 1
            state.entries[key] = Entry(definition: definition, projection: projection, lastUse: state.clock)
            while state.entries.count > capacity,
                let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })
            {
                state.entries.removeValue(forKey: oldest.key)
            }
        }
    }

    /// Forgets every projection.
    func removeAll() {
        state.withLock { $0.entries.removeAll() }
    }
}
