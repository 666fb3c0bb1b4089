import Dispatch
import Synchronization
import TouchLogStorage

/// Turns events into blocks of the store's format. Format 1: each block on its own, on any thread. Format 2: in
/// two steps, the block's own sorted dictionaries on any thread (``prepare(_:range:scratch:)``), then, with the
/// writer held and in commit order, its store-wide ids (``seal(_:)``), which follow the log: ``finished(committed:)``
/// after each commit keeps or forgets the ids its blocks introduced.
///
/// The store's dictionary (format 2) is read from the log at the first seal, not when the store opens: a store
/// opened only to be queried never needs it.
final class BlockEncoder: Sendable {
    let formatVersion: UInt16
    /// Format 3: the key file the pads of new profiles go to (see ``ProfileSealing``).
    let keys: ProfileKeyFile?
    private let state: Mutex<State>
    private let loadDictionary: @Sendable () throws(TouchLogError) -> StoreDictionary

    private struct State {
        var dictionary: StoreDictionary?
        /// The dictionary's size as of the last commit.
        var committed = (profiles: 0, touchpoints: 0, blocks: 0)
    }

    /// A block on its way to the log.
    enum Pending: Sendable {
        case ready(RawBlock)
        case prepared(GroupedBlockCodec.Prepared)
    }

    /// For a log of `formatVersion`; format 2 reads the store's dictionary with `loadDictionary` when it first needs it.
    init(
        formatVersion: UInt16, keys: ProfileKeyFile? = nil,
        loadDictionary: @escaping @Sendable () throws(TouchLogError) -> StoreDictionary = { StoreDictionary() }
    ) {
        precondition(
            (formatVersion >= 3) == (keys != nil), "format 3, and only format 3, seals profiles with a key file")
        self.formatVersion = formatVersion
        self.keys = keys
        self.loadDictionary = loadDictionary
        state = Mutex(State())
    }

    private static func size(_ dictionary: StoreDictionary) -> (profiles: Int, touchpoints: Int, blocks: Int) {
        (dictionary.profiles.count, dictionary.touchpoints.count, dictionary.profileBlocks)
    }

    /// The first step, for events `range` of `batch`: on any thread.
    func prepare(_ batch: EventBatch, range: Range<Int>, scratch: inout EventBlockCodec.EncodeScratch) -> Pending {
        if formatVersion == 1 {
            var block = EventBlockCodec.encode(batch, range: range, scratch: &scratch)
            block.compress()
            return .ready(block)
        }
        return .prepared(GroupedBlockCodec.prepare(batch, range: range, scratch: &scratch, sealed: keys != nil))
    }

    /// The second step, with the writer held, right before the blocks are written (in log order): the blocks'
    /// strings looked up in the store's dictionary on every core, the ids of those it lacks given one block after
    /// the other, then the blocks' bytes on every core.
    func seal(_ blocks: [Pending]) throws(TouchLogError) -> [RawBlock] {
        let (assigned, dictionary) = try state.withLock {
            (state: inout State) throws(TouchLogError) -> ([GroupedBlockCodec.Assigned?], StoreDictionary?) in
            guard blocks.contains(where: { if case .prepared = $0 { return true } else { return false } }) else {
                return ([], nil)
            }
            try load(&state)
            // Taken out of the state, so that once the lookups (which share it) are done it is changed in place.
            var dictionary = state.dictionary.take()!
            dictionary.prepareLookups()
            let lookups = Self.onEveryCore(blocks.count) { [dictionary] k -> GroupedBlockCodec.Lookups? in
                guard case .prepared(let prepared) = blocks[k] else { return nil }
                return GroupedBlockCodec.lookUp(prepared, in: dictionary)
            }
            dictionary.profiles.reserveSlots(for: lookups.reduce(0) { $0 + ($1?.profiles.missing.count ?? 0) })
            var assigned: [GroupedBlockCodec.Assigned?] = []
            for k in blocks.indices {
                guard case .prepared(let prepared) = blocks[k] else {
                    assigned.append(nil)
                    continue
                }
                assigned.append(GroupedBlockCodec.assignIDs(prepared, lookups[k]!, dictionary: &dictionary))
            }
            state.dictionary = dictionary
            if keys != nil {
                for k in assigned.indices where assigned[k] != nil {
                    assigned[k]!.pads = try ProfileSealing.pads(for: dictionary.profiles, ids: assigned[k]!.newProfiles)
                }
            }
            return (assigned, dictionary)
        }
        guard let dictionary else {
            return blocks.map {
                if case .ready(let block) = $0 { return block } else { preconditionFailure("checked above") }
            }
        }
        // `dictionary` is a copy (its storage shared, never written meanwhile: the writer is held).
        let built = Self.onEveryCore(blocks.count) { k -> (block: RawBlock, binding: UInt64?) in
            switch blocks[k] {
            case .ready(let ready): (ready, nil)
            case .prepared(let prepared): GroupedBlockCodec.build(prepared, assigned[k]!, dictionary: dictionary)
            }
        }
        if let keys {
            // The pads go to the key file before the blocks go to the log (the log writer syncs both before the commit).
            for (k, block) in built.enumerated() {
                guard let assigned = assigned[k], !assigned.newProfiles.isEmpty, let binding = block.binding else {
                    continue
                }
                try keys.append(
                    firstProfile: assigned.newProfiles.lowerBound, count: assigned.newProfiles.count, binding: binding,
                    pads: assigned.pads!)
            }
        }
        return built.map(\.block)
    }

    /// `body(k)` for each `k` in `0..<count`, spread over the cores; the results in order of `k`.
    private static func onEveryCore<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        let workers = max(1, min(Platform.processorCount, count))
        if workers == 1 { return (0..<count).map(body) }
        let results = Mutex([T?](repeating: nil, count: count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for k in stride(from: worker, to: count, by: workers) {
                let result = body(k)
                results.withLock { $0[k] = result }
            }
        }
        return results.withLock { $0.map { $0! } }
    }

    /// Both steps for one batch, as one block, for a caller that holds the writer (bulk ingest).
    func block(of batch: EventBatch) throws(TouchLogError) -> RawBlock {
        var scratch = EventBlockCodec.EncodeScratch()
        return try seal([prepare(batch, range: 0..<batch.count, scratch: &scratch)])[0]
    }

    /// Reads the store's dictionary from the log if it is not in memory.
    private func load(_ state: inout State) throws(TouchLogError) {
        guard state.dictionary == nil else { return }
        let dictionary = try loadDictionary()
        state.dictionary = dictionary
        state.committed = Self.size(dictionary)
    }

    /// The store-wide ids of `profiles` (nil for each the store does not hold, an erased one included); with the
    /// writer held.
    func profileIDs(of profiles: [String]) throws(TouchLogError) -> [Int?] {
        try state.withLock { state throws(TouchLogError) -> [Int?] in
            try load(&state)
            var wanted = StringTable()
            for profile in profiles { wanted.append(Array(profile.utf8)) }
            state.dictionary!.prepareLookups()
            return state.dictionary!.profiles.lookUp(wanted).ids.map { $0 == .max ? nil : Int($0) }
        }
    }

    /// After an erasure: `profiles` can no longer be found in the store's dictionary (their strings are overwritten
    /// in memory), so the same identifier appended later is a new profile. A dictionary not read yet will read them
    /// from the log as erased.
    func forget(profiles: [Int]) {
        state.withLock { state in state.dictionary?.profiles.forget(profiles) }
    }

    /// After a commit (or its failure, or a rollback): the ids its blocks introduced are kept, or forgotten.
    func finished(committed: Bool) {
        state.withLock { state in
            guard state.dictionary != nil else { return }
            if committed {
                state.committed = Self.size(state.dictionary!)
            } else {
                // A pad left behind would only cost space; a later open removes it too.
                try? keys?.truncate(profiles: state.committed.profiles)
                state.dictionary!.profiles.truncate(to: state.committed.profiles)
                state.dictionary!.touchpoints.truncate(to: state.committed.touchpoints)
                state.dictionary!.profileBlocks = state.committed.blocks
                state.dictionary!.touchpointBlocks = state.committed.blocks
            }
        }
    }
}
