import Dispatch
import Synchronization

/// Takes the steps of every watch of a store that waits for its next update, in rounds: after a commit, one task
/// with one reader advances every watch that is due, in turn, and resumes only those whose members changed. A hundred
/// watches woken by one commit then cost one dispatch hop and one reader refresh, not a hundred of each, and a watch
/// whose segment the commit did not touch costs a look at the new blocks' touchpoints.
///
/// A watch is due when its ``SegmentWatchOptions/minimumInterval`` has passed since its last evaluation and the store
/// changed since (for a read-only store: its log grew), or when its ``SegmentWatchOptions/recheckInterval`` has
/// passed. A watch's first evaluation, and one after its definition changed, reads the whole log: it runs on a thread
/// of its own, not holding up the round. The rounds' task runs only while a watch waits.
final class WatchHub: Sendable {
    typealias Answer = (result: Result<SegmentUpdate?, TouchLogError>, progress: WatchProgress)

    /// A watch inside `next()`, waiting for its next update.
    private struct Waiter: Sendable {
        var watch: SegmentWatch
        var live: LiveState
        var progress: WatchProgress
        var continuation: CheckedContinuation<Answer, Never>
    }

    private struct State {
        var waiting: [Int: Waiter] = [:]
        /// Waiters taken out for a step; those cancelled meanwhile are answered nil when it ends.
        var stepping: [Int: Bool] = [:]
        var nextID = 0
        /// Whether the rounds' task runs.
        var running = false
    }

    private let state = Mutex(State())
    /// Wakes the rounds' task when a watch starts waiting.
    private let arrivals = ChangeSignal()

    /// The next update of `watch` (nil: the store was closed or the task cancelled), with `progress` carried from one
    /// call to the next.
    func next(_ watch: SegmentWatch, live: LiveState, progress: inout WatchProgress) async throws(TouchLogError)
        -> SegmentUpdate?
    {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let current = progress
        let answer = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
                enqueue(Waiter(watch: watch, live: live, progress: current, continuation: continuation), id: id)
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                if state.stepping[id] != nil { state.stepping[id] = true }
                return state.waiting.removeValue(forKey: id)
            }
            waiter?.continuation.resume(returning: (.success(nil), current))
        }
        progress = answer.progress
        return try answer.result.get()
    }

    /// Adds a waiter, starting the rounds' task when it does not run. (A cancelled task's waiter is answered nil: the
    /// check is under the lock, so a cancellation handler that ran before it found nothing to answer.)
    private func enqueue(_ waiter: Waiter, id: Int) {
        let (start, cancelled) = state.withLock { state -> (Bool, Bool) in
            if Task.isCancelled { return (false, true) }
            return (Self.add(waiter, id: id, to: &state), false)
        }
        if cancelled {
            waiter.continuation.resume(returning: (.success(nil), waiter.progress))
            return
        }
        arrived(start: start, store: waiter.watch.store)
    }

    /// Answers a stepped waiter with `result`, or nil when its task was cancelled or the store closed meanwhile; with
    /// no update, puts it back to wait.
    private func finish(_ id: Int, _ waiter: Waiter, _ result: Result<SegmentUpdate?, TouchLogError>) {
        let closed = waiter.watch.store.changes.isClosed
        let (answer, start) = state.withLock { state -> (Answer?, Bool) in
            let cancelled = state.stepping.removeValue(forKey: id) ?? false
            if cancelled || closed { return ((.success(nil), waiter.progress), false) }
            if case .success(nil) = result { return (nil, Self.add(waiter, id: id, to: &state)) }
            return ((result, waiter.progress), false)
        }
        if let answer {
            waiter.continuation.resume(returning: answer)
        } else {
            arrived(start: start, store: waiter.watch.store)
        }
    }

    /// Adds `waiter`; true when the rounds' task must be started.
    private static func add(_ waiter: Waiter, id: Int, to state: inout State) -> Bool {
        state.waiting[id] = waiter
        defer { state.running = true }
        return !state.running
    }

    /// Wakes the rounds' task for a new waiter, or starts it.
    private func arrived(start: Bool, store: TouchLogStore) {
        arrivals.signal()
        if start { Task.detached { await self.rounds(store) } }
    }

    // MARK: - Rounds

    private func rounds(_ store: TouchLogStore) async {
        while true {
            let arrived = arrivals.generation
            let generation = store.changes.generation
            let closed = store.changes.isClosed
            let end = store.isReadOnly ? store.endOffset : 0
            let now = ContinuousClock.now
            var due: [(id: Int, waiter: Waiter)] = []
            var wake: ContinuousClock.Instant?
            let (stop, ended) = state.withLock { state -> (Bool, [Waiter]) in
                if closed {
                    defer { state.waiting = [:] }
                    state.running = false
                    return (true, Array(state.waiting.values))
                }
                if state.waiting.isEmpty {
                    state.running = false
                    return (true, [])
                }
                for (id, waiter) in state.waiting {
                    let options = waiter.watch.options
                    guard let last = waiter.progress.lastEvaluation else {
                        due.append((id, waiter))
                        continue
                    }
                    let changed =
                        store.isReadOnly ? end != waiter.progress.lastEnd : generation != waiter.progress.seenGeneration
                    let earliest = last + options.minimumInterval
                    let deadline = last + options.recheckInterval
                    if now >= deadline || (changed && now >= earliest) {
                        due.append((id, waiter))
                        continue
                    }
                    var next = changed ? earliest : deadline
                    if store.isReadOnly { next = min(next, max(earliest, now + options.pollInterval)) }
                    wake = min(wake ?? next, next)
                }
                for (id, _) in due {
                    state.waiting[id] = nil
                    state.stepping[id] = false
                }
                return (false, [])
            }
            for waiter in ended { waiter.continuation.resume(returning: (.success(nil), waiter.progress)) }
            if stop { return }
            if due.isEmpty {
                await wait(store, after: generation, arrived: arrived, until: wake)
                continue
            }
            await step(due, store: store, generation: generation, at: now)
        }
    }

    /// Returns at a commit, a new waiter, or `wake`, whichever comes first.
    private func wait(
        _ store: TouchLogStore, after generation: UInt64, arrived: UInt64, until wake: ContinuousClock.Instant?
    ) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await store.changes.wait(after: generation) }
            group.addTask { await self.arrivals.wait(after: arrived) }
            if let wake { group.addTask { try? await Task.sleep(until: wake) } }
            await group.next()
            group.cancelAll()
        }
    }

    /// Evaluates the waiters `due`: those holding an audience of their current definition in turn with one reader on
    /// the store's ``TouchLogStore/liveQueue``, the others (a first evaluation, a new definition) each on a thread of
    /// its own.
    private func step(
        _ due: [(id: Int, waiter: Waiter)], store: TouchLogStore, generation: UInt64, at now: ContinuousClock.Instant
    ) async {
        var round: [(id: Int, waiter: Waiter, version: Int, definition: SegmentDefinition)] = []
        for (id, waiter) in due {
            do {
                let (version, definition) = try store.currentSegment(waiter.watch.name)
                if waiter.live.holdsAudience(of: definition) {
                    round.append((id, waiter, version, definition))
                    continue
                }
                let (watch, live) = (waiter.watch, waiter.live)
                Task.detached {
                    var waiter = waiter
                    let result: Result<(update: SegmentUpdate?, end: UInt64), TouchLogError>
                    do throws(TouchLogError) {
                        result = .success(
                            try await store.read("watch \(watch.name)") { reader in
                                try Self.evaluate(watch, live, version, definition, reader, store.liveBlocks)
                            })
                    } catch { result = .failure(error) }
                    Self.record(&waiter.progress, result, generation: generation, at: now)
                    self.finish(id, waiter, result.map { $0.update })
                }
            } catch {
                finish(id, waiter, .failure(error))
            }
        }
        guard !round.isEmpty else { return }
        let stepped = round
        let results: [Result<(update: SegmentUpdate?, end: UInt64), TouchLogError>]
        do {
            results = try await store.read("watches", on: store.liveQueue) { reader in
                stepped.map { entry in
                    Result { () throws(TouchLogError) in
                        do {
                            return try Self.evaluate(
                                entry.waiter.watch, entry.waiter.live, entry.version, entry.definition, reader,
                                store.liveBlocks)
                        } catch {
                            throw TouchLogError(wrapping: error, "watch \(entry.waiter.watch.name) failed")
                        }
                    }
                }
            }
        } catch {
            results = round.map { _ in .failure(error) }
        }
        for (entry, result) in zip(round, results) {
            var waiter = entry.waiter
            Self.record(&waiter.progress, result, generation: generation, at: now)
            finish(entry.id, waiter, result.map { $0.update })
        }
    }

    private static func record(
        _ progress: inout WatchProgress, _ result: Result<(update: SegmentUpdate?, end: UInt64), TouchLogError>,
        generation: UInt64, at now: ContinuousClock.Instant
    ) {
        progress.lastEvaluation = now
        progress.seenGeneration = generation
        if case .success(let step) = result { progress.lastEnd = step.end }
    }

    /// One evaluation of `watch` as of its clock: its update (nil when nothing changed, or the initial members are
    /// not wanted) and the log's end offset it saw.
    private static func evaluate(
        _ watch: SegmentWatch, _ live: LiveState, _ version: Int, _ definition: SegmentDefinition,
        _ reader: StoreReader, _ blocks: DecodedBlockCache
    ) throws -> (update: SegmentUpdate?, end: UInt64) {
        let asOf = watch.options.clock()
        let step = try live.advance(reader, definition: definition, to: asOf, blocks: blocks)
        if step.isInitial ? !watch.options.includeInitialMembers : step.entered.isEmpty && step.exited.isEmpty {
            return (nil, step.endOffset)
        }
        let update = SegmentUpdate(
            segment: watch.name, version: version, asOf: asOf, endOffset: step.endOffset, entered: step.entered,
            exited: step.exited, isInitial: step.isInitial)
        return (update, step.endOffset)
    }
}

/// What a watch iterator carries from one update to the next.
struct WatchProgress: Sendable {
    /// When it was last evaluated (nil: never).
    var lastEvaluation: ContinuousClock.Instant?
    /// The store's ``ChangeSignal/generation`` read before that evaluation.
    var seenGeneration: UInt64 = 0
    /// The log's end offset that evaluation saw.
    var lastEnd: UInt64 = 0
}
