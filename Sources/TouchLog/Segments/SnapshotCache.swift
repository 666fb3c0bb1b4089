import Synchronization

/// Format-2 snapshots decoded lately, by path, shared by a store's readers and bounded by their decoded bytes: the
/// least recently used go first. A snapshot file never changes once written, and a reader checks that a snapshot
/// belongs to its log before using it, cached or not. A million-profile snapshot takes from a few hundred kilobytes
/// to some ten megabytes decoded, and a tenth to most of a query's time to read and decode again.
final class SnapshotCache: Sendable {
    private struct Entry {
        var snapshot: GroupedSnapshot
        var bytes: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    /// The most decoded bytes kept.
    let capacity: Int
    private let state = Mutex(State())

    /// 64 MiB: every snapshot of a few segments of a million profiles.
    static let defaultCapacity = 64 << 20

    init(capacity: Int = SnapshotCache.defaultCapacity) {
        self.capacity = capacity
    }

    /// The snapshot decoded from the file at `path` (relative to the store), if kept.
    func snapshot(at path: String) -> GroupedSnapshot? {
        state.withLock { state in
            guard var entry = state.entries[path] else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[path] = entry
            return entry.snapshot
        }
    }

    /// Keeps `snapshot`, decoded from the file at `path`, making room by dropping the least recently used; one
    /// bigger than the whole capacity is not kept.
    func keep(_ snapshot: GroupedSnapshot, at path: String) {
        let bytes = snapshot.decodedBytes
        guard bytes <= capacity else { return }
        state.withLock { state in
            if let old = state.entries.removeValue(forKey: path) { state.bytes -= old.bytes }
            while state.bytes + bytes > capacity,
                let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })
            {
                state.entries.removeValue(forKey: oldest.key)
                state.bytes -= oldest.value.bytes
            }
            state.clock += 1
            state.entries[path] = Entry(snapshot: snapshot, bytes: bytes, lastUse: state.clock)
            state.bytes += bytes
        }
    }

    /// The decoded bytes kept, and how many snapshots.
    var usage: (bytes: Int, snapshots: Int) {
        state.withLock { ($0.bytes, $0.entries.count) }
    }
}

extension GroupedSnapshot {
    /// About how many bytes its decoded columns take.
    var decodedBytes: Int {
        func size<T>(_ array: [T]) -> Int { array.count * MemoryLayout<T>.stride }
        var total = 0
        for case let entries? in rules {
            total += size(entries.ids) + size(entries.counts) + size(entries.firsts) + size(entries.valueCounts)
            total += size(entries.valueSums) + size(entries.valueLeast) + size(entries.valueGreatest)
        }
        if let conversions { total += size(conversions.ids) + size(conversions.times) }
        for case let entries? in sequences { total += size(entries.matched) + size(entries.candidates) }
        return total
    }
}
