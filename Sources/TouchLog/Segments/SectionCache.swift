import Synchronization
import TouchLogStorage

/// The times and profiles sections of format-2 blocks that queries read lately, decompressed and checked, shared by
/// a store's readers and bounded by their bytes (the least recently used go first). A block's bytes never change
/// once committed, and an entry is found by the block's hash, so it is only ever the section of the very block a
/// query asks for. A windowed rule reads these two sections whole in every block its window meets (at the latest
/// time, tens of megabytes for a rule over the last 60 days' conversions): questions about recent times keep
/// asking for the same blocks, which then cost neither a read, nor a check, nor a copy.
final class SectionCache: Sendable {
    struct Key: Hashable {
        var block: BlockHash
        var kind: Int
    }

    private struct Entry {
        var bytes: [UInt8]
        var lastUse: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    /// The most section bytes kept.
    let capacity: Int
    private let state = Mutex(State())

    /// 64 MiB: the recent months of a store of ten million events.
    static let defaultCapacity = 64 << 20

    init(capacity: Int = SectionCache.defaultCapacity) {
        self.capacity = capacity
    }

    /// The raw bytes kept of section `kind` of the block whose hash is `block`.
    func section(_ kind: BlockSummary.SectionKind, of block: BlockHash) -> [UInt8]? {
        state.withLock { state in
            let key = Key(block: block, kind: kind.rawValue)
            guard var entry = state.entries[key] else { return nil }
            state.clock += 1
            entry.lastUse = state.clock
            state.entries[key] = entry
            return entry.bytes
        }
    }

    /// Keeps `bytes`, the raw section `kind` of block `block`, making room by dropping the least recently used.
    func keep(_ bytes: [UInt8], _ kind: BlockSummary.SectionKind, of block: BlockHash) {
        let size = bytes.capacity
        guard size <= capacity / 4 else { return }
        state.withLock { state in
            let key = Key(block: block, kind: kind.rawValue)
            if let old = state.entries.removeValue(forKey: key) { state.bytes -= old.bytes.capacity }
            if state.bytes + size > capacity {
                // Oldest first, until there is room (a sort per eviction round, not per entry dropped).
                let byAge = state.entries.sorted { $0.value.lastUse < $1.value.lastUse }
                for (old, entry) in byAge where state.bytes + size > capacity {
                    state.entries.removeValue(forKey: old)
                    state.bytes -= entry.bytes.capacity
                }
            }
            state.clock += 1
            state.entries[key] = Entry(bytes: bytes, lastUse: state.clock)
            state.bytes += size
        }
    }

    /// The bytes kept, and how many sections.
    var usage: (bytes: Int, sections: Int) {
        state.withLock { ($0.bytes, $0.entries.count) }
    }
}
