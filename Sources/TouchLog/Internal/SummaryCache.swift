import Synchronization
import TouchLogStorage

/// The parsed summaries of a log's first `count` blocks, in chunks of 1,024: a copy shares every chunk, and
/// appending to one copy rewrites at most its last chunk, so the readers of a store can hand the same list around
/// while it grows.
struct BlockSummaries: RandomAccessCollection, Sendable {
    private static let chunkShift = 10
    private static let chunkMask = (1 << chunkShift) - 1
    private var chunks: [[Entry]] = []
    /// Summaries held; a view made by ``truncated(to:)`` shows fewer than its chunks hold.
    private(set) var count = 0

    /// A summary and the first 16 bytes of its block's hash, which say whose log it is.
    private struct Entry: Sendable {
        var summary: BlockSummary
        var hash: (UInt64, UInt64)
    }

    init() {}

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(index: Int) -> BlockSummary { entry(index).summary }

    private func entry(_ index: Int) -> Entry {
        precondition(index >= 0 && index < count, "block summary \(index) of \(count)")
        return chunks[index >> Self.chunkShift][index & Self.chunkMask]
    }

    private static func prefix(_ hash: BlockHash) -> (UInt64, UInt64) {
        hash.bytes.withUnsafeBytes {
            ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
    }

    /// True when summary `index` is that of a block with hash `hash`: then, by the hash chain, every summary before
    /// it is also that of the same log's block.
    func holds(_ hash: BlockHash, at index: Int) -> Bool {
        let held = entry(index).hash
        let given = Self.prefix(hash)
        return held.0 == given.0 && held.1 == given.1
    }

    /// The first `end` summaries, sharing this list's chunks.
    func truncated(to end: Int) -> BlockSummaries {
        precondition(end >= 0 && end <= count, "\(end) block summaries of \(count)")
        var view = self
        view.count = end
        return view
    }

    /// Adds the summary of block ``count``, whose hash is `hash`; only on a list that shows every summary its chunks
    /// hold.
    mutating func append(_ summary: BlockSummary, hash: BlockHash) {
        precondition(
            count == (chunks.isEmpty ? 0 : (chunks.count - 1) << Self.chunkShift + chunks[chunks.count - 1].count),
            "appending to a truncated list of block summaries")
        if count & Self.chunkMask == 0 {
            chunks.append([])
            chunks[chunks.count - 1].reserveCapacity(1 << Self.chunkShift)
        }
        chunks[chunks.count - 1].append(Entry(summary: summary, hash: Self.prefix(hash)))
        count += 1
    }
}

/// The block summaries of one store's log that its readers have parsed, shared by them: a committed block's
/// summary never changes, and each of eight pooled readers keeping its own copy cost about 600 bytes per block each
/// (a server whose requests commit 100 events a block held hundreds of megabytes of them).
///
/// Each summary is kept with its block's hash, and a reader takes summaries only when the last one it uses is that
/// of its own log's block: a log replaced under an open store (`touchlog migrate` renames a new log into place while
/// a read-only server serves the old one) empties the cache rather than lending the old log's summaries.
final class SummaryCache: Sendable {
    private let list = Mutex(BlockSummaries())

    init() {}

    /// The summaries known of the log whose committed blocks are `blocks`: those of its first blocks (none when the
    /// cache held another log's, which it then forgets).
    func summaries(of blocks: [BlockLocation]) -> BlockSummaries {
        list.withLock { list in
            let n = min(list.count, blocks.count)
            if n > 0 && !list.holds(blocks[n - 1].header.hash, at: n - 1) { list = BlockSummaries() }
            return list
        }
    }

    /// Adds `more`, the summaries of blocks `start...` of `blocks`, to those known (a reader that raced another adds
    /// only the ones after what the other added); returns every summary known, or nil when another log's reader
    /// changed the cache meanwhile (the caller asks again).
    func extend(from start: Int, with more: [BlockSummary], of blocks: [BlockLocation]) -> BlockSummaries? {
        list.withLock { list -> BlockSummaries? in
            guard start <= list.count else { return nil }
            let held = min(list.count, start + more.count)
            if held > 0 && !list.holds(blocks[held - 1].header.hash, at: held - 1) { return nil }
            for k in stride(from: list.count - start, to: more.count, by: 1) {
                list.append(more[k], hash: blocks[start + k].header.hash)
            }
            return list
        }
    }
}
