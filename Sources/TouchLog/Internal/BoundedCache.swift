import Synchronization

/// Values by key, shared across threads and bounded by their bytes: the least recently used go first when room is
/// needed, and a value bigger than ``largest`` is not kept. What a store's readers keep of what their queries read
/// (``SnapshotCache``, ``SectionCache``).
final class BoundedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var bytes: Int
        var lastUse: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    /// The most bytes kept.
    let capacity: Int
    /// The most bytes of one value kept.
    let largest: Int
    private let state = Mutex(State())

    init(capacity: Int, largest: Int) {
        self.capacity = capacity
        self.largest = min(largest, capacity)
    }

    /// The value kept for `key`, now the most recently used.
    func value(for key: Key) -> Value? {
        state.withLock { state in
            guard var entry = state.entries[key] else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.value
        }
    }

    /// Keeps `value`, which takes `bytes`, for `key` (in place of what was kept for it), making room by dropping the
    /// least recently used.
    func keep(_ value: Value, bytes: Int, for key: Key) {
        guard bytes <= largest else { return }
        state.withLock { state in
            if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.bytes }
            if state.bytes + bytes > capacity {
                // Oldest first, until there is room (one sort per round of dropping).
                for (old, entry) in state.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse })
                where state.bytes + bytes > capacity {
                    state.entries.removeValue(forKey: old)
                    state.bytes -= entry.bytes
                }
            }
            state.clock += 1
            state.entries[key] = Entry(value: value, bytes: bytes, lastUse: state.clock)
            state.bytes += bytes
        }
    }

    /// The bytes kept, and how many values.
    var usage: (bytes: Int, values: Int) {
        state.withLock { ($0.bytes, $0.entries.count) }
    }
}
