import Synchronization

/// The parsed summaries of a log's first `count` blocks, in chunks of 1,024: a copy shares every chunk, and
/// appending to one copy rewrites at most its last chunk, so the readers of a store can hand the same list around
/// while it grows.
struct BlockSummaries: RandomAccessCollection, Sendable {
    private static let chunkShift = 10
    private static let chunkMask = (1 << chunkShift) - 1
    private var chunks: [[BlockSummary]] = []
    /// Summaries held; a view made by ``truncated(to:)`` shows fewer than its chunks hold.
    private(set) var count = 0

    init() {}

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(index: Int) -> BlockSummary {
        precondition(index >= 0 && index < count, "block summary \(index) of \(count)")
        return chunks[index >> Self.chunkShift][index & Self.chunkMask]
    }

    /// The first `end` summaries, sharing this list's chunks.
    func truncated(to end: Int) -> BlockSummaries {
        precondition(end >= 0 && end <= count, "\(end) block summaries of \(count)")
        var view = self
        view.count = end
        return view
    }

    /// Adds the summary of block ``count``; only on a list that shows every summary its chunks hold.
    mutating func append(_ summary: BlockSummary) {
        precondition(
            count == chunks.count << Self.chunkShift
                || count == (chunks.count - 1) << Self.chunkShift + chunks[chunks.count - 1].count,
            "appending to a truncated list of block summaries")
        if count & Self.chunkMask == 0 {
            chunks.append([])
            chunks[chunks.count - 1].reserveCapacity(1 << Self.chunkShift)
        }
        chunks[chunks.count - 1].append(summary)
        count += 1
    }
}

/// The block summaries of one store's log that its readers have parsed, shared by them: a committed block's
/// summary never changes, and each of eight pooled readers keeping its own copy cost about 600 bytes per block each
/// (a server whose requests commit 100 events a block held hundreds of megabytes of them).
final class SummaryCache: Sendable {
    private let list = Mutex(BlockSummaries())

    init() {}

    /// The summaries parsed so far: those of the log's first `count` blocks.
    var summaries: BlockSummaries { list.withLock { $0 } }

    /// Adds `more`, the summaries of blocks `start...`, to those known (a reader that raced another adds only
    /// the ones after what the other added); returns every summary known.
    @discardableResult
    func extend(from start: Int, with more: [BlockSummary]) -> BlockSummaries {
        list.withLock { list in
            precondition(start <= list.count, "block summaries are added in log order")
            for k in stride(from: list.count - start, to: more.count, by: 1) { list.append(more[k]) }
            return list
        }
    }
}
