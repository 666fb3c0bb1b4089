import Synchronization
import TouchLogStorage

/// Turns events into blocks of the store's format. Format 1: each block on its own, on any thread. Format 2: in
/// two steps, the block's own sorted dictionaries on any thread (``prepare(_:range:scratch:)``), then, with the
/// writer held and in commit order, its store-wide ids (``seal(_:)``), which follow the log: ``finished(committed:)``
/// after each commit keeps or forgets the ids its blocks introduced.
final class BlockEncoder: Sendable {
    let formatVersion: UInt16
    private let state: Mutex<State>

    private struct State {
        var dictionary: StoreDictionary
        /// The dictionary's size as of the last commit.
        var committed: (profiles: Int, touchpoints: Int, blocks: Int)
    }

    private static func size(_ dictionary: StoreDictionary) -> (profiles: Int, touchpoints: Int, blocks: Int) {
        (dictionary.profiles.count, dictionary.touchpoints.count, dictionary.profileBlocks)
    }

    /// A block on its way to the log.
    enum Pending: Sendable {
        case ready(RawBlock)
        case prepared(GroupedBlockCodec.Prepared)
    }

    /// For a log of `formatVersion`; format 2 needs the store's `dictionary` as of the end of the log.
    init(formatVersion: UInt16, dictionary: StoreDictionary = StoreDictionary()) {
        self.formatVersion = formatVersion
        state = Mutex(State(dictionary: dictionary, committed: Self.size(dictionary)))
    }

    /// The first step, for events `range` of `batch`: on any thread.
    func prepare(_ batch: EventBatch, range: Range<Int>, scratch: inout EventBlockCodec.EncodeScratch) -> Pending {
        if formatVersion == 1 {
            var block = EventBlockCodec.encode(batch, range: range, scratch: &scratch)
            block.compress()
            return .ready(block)
        }
        return .prepared(GroupedBlockCodec.prepare(batch, range: range, scratch: &scratch))
    }

    /// The second step, with the writer held, right before the blocks are written (in log order).
    func seal(_ blocks: [Pending]) -> [RawBlock] {
        state.withLock { state in
            blocks.map { pending in
                switch pending {
                case .ready(let block): return block
                case .prepared(let prepared): return GroupedBlockCodec.encode(prepared, dictionary: &state.dictionary)
                }
            }
        }
    }

    /// After a commit (or its failure, or a rollback): the ids its blocks introduced are kept, or forgotten.
    func finished(committed: Bool) {
        state.withLock { state in
            if committed {
                state.committed = Self.size(state.dictionary)
            } else {
                state.dictionary.profiles.truncate(to: state.committed.profiles)
                state.dictionary.touchpoints.truncate(to: state.committed.touchpoints)
                state.dictionary.profileBlocks = state.committed.blocks
                state.dictionary.touchpointBlocks = state.committed.blocks
            }
        }
    }
}
