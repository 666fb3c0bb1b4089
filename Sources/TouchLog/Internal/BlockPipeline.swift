import Dispatch
import Synchronization
import TouchLogStorage

/// Encodes, compresses, hashes and writes an ingest's blocks on a second thread while the caller parses the next
/// batch, so that parsing and block building share the two halves of the work.
///
/// At most two batches are in flight; a full batch is handed over by ``submit(_:)``, which returns an emptied one
/// to parse into. The first storage error stops the pipeline and is thrown by the next ``submit(_:)`` or
/// ``finish()``. The writer is used only by the pipeline's thread until ``finish()`` returns.
final class BlockPipeline: @unchecked Sendable {
    // @unchecked: `writer` is touched only on `queue` between init and finish() (finish waits for the queue), and
    // the rest of the state is behind `state`.
    private let writer: LogWriter
    private let encoder: BlockEncoder
    private let queue = DispatchQueue(label: "touchlog.ingest.blocks")
    private let slots = DispatchSemaphore(value: 2)
    private let state = Mutex<State>(State())

    private struct State {
        var failure: TouchLogError?
        var spare: [EventBatch] = []
    }

    init(writer: LogWriter, encoder: BlockEncoder) {
        self.writer = writer
        self.encoder = encoder
    }

    /// Queues `batch` to become a block; returns an empty batch (with storage to reuse) for the next events.
    func submit(_ batch: EventBatch) throws(TouchLogError) -> EventBatch {
        if let failure = state.withLock({ $0.failure }) { throw failure }
        slots.wait()
        queue.async { [self] in
            defer { slots.signal() }
            guard state.withLock({ $0.failure == nil }) else { return }
            do throws(TouchLogError) {
                let block = try encoder.block(of: batch)
                _ = try storage { () throws(StorageError) in try writer.add(block) }
            } catch {
                state.withLock { $0.failure = $0.failure ?? error }
            }
            var emptied = batch
            emptied.removeAll()
            state.withLock { $0.spare.append(emptied) }
        }
        return state.withLock { $0.spare.popLast() } ?? EventBatch.forEncoding()
    }

    /// Waits for every queued block to be written; throws the first failure.
    func finish() throws(TouchLogError) {
        queue.sync {}
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }
}
