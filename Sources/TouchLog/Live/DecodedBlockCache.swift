import Synchronization
import TouchLogStorage

/// Blocks decoded lately, shared by a store's watches: after a commit every watch takes in the same new blocks, and
/// decoding them once for all of them is most of what a hundred watches cost. Holds blocks of at most `capacity`
/// events, the newest; a block is known by its first offset and its hash. A new erasure empties it: a block decoded
/// before the erasure still names the erased profiles. Format-2 blocks are kept without profile strings of their own
/// (``DecodedBlock/storeProfileIDs``): a live audience looks up only the profiles it meets for the first time, in its
/// reader's dictionary, which ``forEachBlock(of:from:erasures:_:)`` loads through the last block.
final class DecodedBlockCache: Sendable {
    private struct State {
        var blocks: [UInt64: (hash: BlockHash, block: DecodedBlock)] = [:]
        /// First offsets, oldest first.
        var order: [UInt64] = []
        var events = 0
        var erasures = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 1 << 19) { self.capacity = capacity }

    /// Calls `body` with each committed block of `reader` from the one holding `offset` on, in log order: from the
    /// cache when it holds the block, else decoded by `reader` and kept. `erasures`: how many erasures `reader` has
    /// read.
    func forEachBlock(
        of reader: StoreReader, from offset: UInt64, erasures: Int, _ body: (DecodedBlock) throws -> Void
    ) throws {
        guard let start = reader.log.blockIndex(containing: offset) else { return }
        if let last = reader.log.blocks.last, last.header.version >= 2 { try reader.loadDictionary() }
        for index in start..<reader.log.blocks.count {
            let location = reader.log.blocks[index]
            let header = location.header
            let cached = state.withLock { state -> DecodedBlock? in
                if state.erasures != erasures { state = State(erasures: erasures) }
                guard let entry = state.blocks[header.firstOffset], entry.hash == header.hash else { return nil }
                return entry.block
            }
            if let cached {
                try body(cached)
                continue
            }
            let block = try reader.decode(location, profileNames: false)
            keep(block, hash: header.hash, erasures: erasures)
            try body(block)
        }
    }

    private func keep(_ block: DecodedBlock, hash: BlockHash, erasures: Int) {
        let count = block.events.count
        guard count <= capacity else { return }
        state.withLock { state in
            guard state.erasures == erasures, state.blocks[block.firstOffset] == nil else { return }
            state.blocks[block.firstOffset] = (hash, block)
            state.order.append(block.firstOffset)
            state.events += count
            var dropped = 0
            while state.events > capacity, dropped < state.order.count {
                if let old = state.blocks.removeValue(forKey: state.order[dropped]) {
                    state.events -= old.block.events.count
                }
                dropped += 1
            }
            state.order.removeFirst(dropped)
        }
    }
}
