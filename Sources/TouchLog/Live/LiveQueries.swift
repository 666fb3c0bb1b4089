import Dispatch
import Synchronization
import TouchLogStorage

/// The live audiences of the definitions a store is asked about again and again "as of now" (a service polling a
/// segment's size, a dashboard): each keeps its members current by re-checking only the profiles a commit touched or
/// whose window edge passed (``LiveAudience``), so a repeated query costs what changed since the last one, not a scan
/// of the log.
///
/// A definition gets an audience the second time it is asked, by everything recorded (no known-at), at a time no
/// earlier than the last time it was asked, within ``window`` of that ask. The audience is built off the asking
/// query's path (it reads the whole log once); until it is ready, queries run as before. An audience answers a
/// query whose time is at or after its own (its clock only moves forward); an earlier time, a known-at or another
/// erasure count goes the usual way. At most ``capacity`` audiences are kept, the least lately asked dropped first;
/// one not asked for ``window`` is dropped.
final class LiveQueries: Sendable {
    /// An audience and the lock its steps take; `nil` until its build is done.
    final class Slot: Sendable {
        let audience = Mutex<LiveAudience?>(nil)
        /// Whether a query is reading the log for the audience, and the queries waiting for it to finish: one read
        /// at a time, and those that came in meanwhile take its result when it covers the commits they must see.
        private let reading = Mutex<(busy: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

        /// Makes the caller the one query reading the log for the audience (true), or waits until the query that
        /// is finishes (false).
        func lead() async -> Bool {
            if reading.withLock({ state in
                if state.busy { return false }
                state.busy = true
                return true
            }) {
                return true
            }
            await withCheckedContinuation { continuation in
                let queued = reading.withLock { state in
                    guard state.busy else { return false }
                    state.waiting.append(continuation)
                    return true
                }
                if !queued { continuation.resume() }
            }
            return false
        }

        /// Ends the read ``lead()`` gave the caller, and wakes the queries that waited for it.
        func finish() {
            let waiting = reading.withLock { state in
                state.busy = false
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume() }
        }
    }

    private struct Entry {
        var definition: SegmentDefinition
        /// The greatest as-of time asked.
        var lastAsOf: Int64
        /// When it was last asked (``Platform/monotonicNanoseconds()``).
        var lastAsked: UInt64
        var slot: Slot?
    }

    private struct State {
        var entries: [Entry] = []
        /// Builds running (each ends by installing its audience or dropping its slot).
        var building = 0
        var builds: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    /// How far before the wall clock a query's time may be and still count as "now" (milliseconds; tests widen it to
    /// ask about generated data).
    let nowTolerance = Atomic<Int64>(60_000)
    /// How many queries audiences have answered.
    let answered = Atomic<Int>(0)
    let capacity: Int
    /// Nanoseconds.
    let window: UInt64

    init(capacity: Int = 16, window: Duration = .seconds(600)) {
        self.capacity = capacity
        let (seconds, attoseconds) = window.components
        self.window = UInt64(seconds) * 1_000_000_000 + UInt64(attoseconds / 1_000_000_000)
    }

    /// What a query of `definition` as of `asOf` should do: use `slot` when it has an audience, and start a build of
    /// `slot` when `build` (the caller builds, then calls ``built(_:failed:)``).
    func ask(_ definition: SegmentDefinition, asOf: Int64) -> (slot: Slot?, build: Bool) {
        let now = Platform.monotonicNanoseconds()
        return state.withLock { state in
            // (Another ask may have come in since `now` was read.)
            state.entries.removeAll { now > $0.lastAsked && now - $0.lastAsked > window }
            guard let i = state.entries.firstIndex(where: { $0.definition == definition }) else {
                if state.entries.count >= capacity,
                    let oldest = state.entries.indices.min(by: {
                        state.entries[$0].lastAsked < state.entries[$1].lastAsked
                    })
                {
                    state.entries.remove(at: oldest)
                }
                state.entries.append(Entry(definition: definition, lastAsOf: asOf, lastAsked: now))
                return (nil, false)
            }
            let repeated = asOf >= state.entries[i].lastAsOf
            state.entries[i].lastAsOf = max(state.entries[i].lastAsOf, asOf)
            state.entries[i].lastAsked = max(state.entries[i].lastAsked, now)
            if let slot = state.entries[i].slot { return (slot, false) }
            guard repeated else { return (nil, false) }
            let slot = Slot()
            state.entries[i].slot = slot
            state.building += 1
            return (slot, true)
        }
    }

    /// A build started by ``ask(_:asOf:)`` has ended (its audience installed, or not when it failed).
    func built(_ slot: Slot, failed: Bool) {
        let waiting = state.withLock { state in
            if failed {
                for i in state.entries.indices where state.entries[i].slot === slot { state.entries[i].slot = nil }
            }
            state.building -= 1
            guard state.building == 0 else { return [CheckedContinuation<Void, Never>]() }
            defer { state.builds.removeAll() }
            return state.builds
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Drops `slot`'s audience (built for another erasure count): the next repeated ask builds a new one.
    func drop(_ slot: Slot) {
        state.withLock { state in
            for i in state.entries.indices where state.entries[i].slot === slot { state.entries[i].slot = nil }
        }
    }

    /// Returns when no build is running.
    func buildsFinished() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.building == 0 { return true }
                state.builds.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// How many audiences are built.
    var audiences: Int {
        state.withLock { $0.entries.filter { $0.slot?.audience.withLock { $0 != nil } ?? false }.count }
    }
}

/// A members query's answer: the as-of time answered, the members' count, and their names when asked.
package struct SegmentAnswer: Sendable {
    package var asOf: Int64
    package var count: Int
    package var members: [String]? = nil
}

extension LiveAudience {
    /// The time it answers a query as of `requested` at (nil: now, `now` or its own time when the clock went back),
    /// or nil when that is before its own time (its clock only moves forward).
    func answerTime(for requested: Int64?, now: Int64) -> Int64? {
        let at = requested ?? max(now, asOf)
        return at >= asOf ? at : nil
    }

    /// Whether it has read every commit counted by the store's change generation `generation`.
    func hasRead(_ generation: UInt64) -> Bool {
        self.generation != .max && self.generation >= generation
    }

    /// Its answer as of `at` (its clock), with the members' names when `listing`.
    func answer(at: Int64, listing: Bool) -> SegmentAnswer {
        SegmentAnswer(asOf: at, count: memberCount, members: listing ? members : nil)
    }
}

extension TouchLogStore {
    /// The answer of a live audience to `definition` as of `time` (nil `time`: now, the wall clock, or the audience's
    /// own time when the clock went back), or nil when no audience can give it (the query runs as usual). Registers
    /// the ask, and starts building an audience when this is the definition's repeated ask.
    func liveAnswer(_ definition: SegmentDefinition, at time: Int64?, listing: Bool) async throws(TouchLogError)
        -> SegmentAnswer?
    {
        let now = Timestamp.now()
        // Only "now" is asked again and again at a moving time; a past time is left to snapshots.
        let tolerance = liveQueries.nowTolerance.load(ordering: .relaxed)
        if let time {
            let (before, overflow) = now.subtractingReportingOverflow(time)
            if overflow || before > tolerance { return nil }
        }
        let asOf = time ?? now
        let (slot, build) = liveQueries.ask(definition, asOf: asOf)
        guard let slot else { return nil }
        if build {
            startBuilding(slot, definition, asOf: asOf)
            return nil
        }
        // Read before the reader looks at the log: a commit after it moves it.
        let generation = changes.generation
        while true {
            if !isReadOnly {
                // The audience has read every commit this query must see: only the clock moves, on this thread.
                let quick = slot.audience.withLockIfAvailable { audience -> SegmentAnswer? in
                    guard let audience, audience.hasRead(generation),
                        let at = audience.answerTime(for: time, now: asOf)
                    else { return nil }
                    _ = audience.advance(to: at)
                    return audience.answer(at: at, listing: listing)
                }
                if let quick = quick ?? nil {
                    liveQueries.answered.add(1, ordering: .relaxed)
                    return quick
                }
            }
            // One query reads the log for the audience at a time; those that come in meanwhile wait for it, and most
            // then find their commits read.
            if await slot.lead() { break }
        }
        defer { slot.finish() }
        let (readers, blocks, readOnly) = (self.readers, liveBlocks, isReadOnly)
        let (answered, stale) = try await offload(threads: queryThreads) {
            () throws(TouchLogError) -> (SegmentAnswer?, Bool) in
            try slot.audience.withLock { audience throws(TouchLogError) -> (SegmentAnswer?, Bool) in
                guard let audience else { return (nil, false) }
                guard let at = audience.answerTime(for: time, now: asOf) else { return (nil, false) }
                if !readOnly && audience.hasRead(generation) {
                    // (Read by a query that ran since this one last looked.)
                    _ = audience.advance(to: at)
                    return (audience.answer(at: at, listing: listing), false)
                }
                return try readers.withReader { reader throws(TouchLogError) -> (SegmentAnswer?, Bool) in
                    guard audience.erasures == reader.erasures.records.count else { return (nil, true) }
                    do { _ = try audience.advance(reader, to: at, blocks: blocks) } catch {
                        throw TouchLogError(wrapping: error, "query \(definition.name) failed")
                    }
                    audience.generation = generation
                    return (audience.answer(at: at, listing: listing), false)
                }
            }
        }
        // (A profile was erased since the audience was built: the next repeated ask builds it again.)
        if stale { liveQueries.drop(slot) }
        if answered != nil { liveQueries.answered.add(1, ordering: .relaxed) }
        return answered
    }

    /// Builds `slot`'s audience on a thread of its own, with a reader of its own, as of `asOf`.
    private func startBuilding(_ slot: LiveQueries.Slot, _ definition: SegmentDefinition, asOf: Int64) {
        let (readers, live) = (self.readers, liveQueries)
        DispatchQueue.global(qos: .utility).async {
            let built = try? readers.withReader { reader throws(TouchLogError) -> LiveAudience in
                let audience = LiveAudience(definition, erasures: reader.erasures.records.count)
                do { _ = try audience.advance(reader, to: asOf) } catch {
                    throw TouchLogError(wrapping: error, "live audience of \(definition.name) failed")
                }
                return audience
            }
            if let built { slot.audience.withLock { $0 = built } }
            live.built(slot, failed: built == nil)
        }
    }

    /// Returns when the live audiences being built are ready (for tests).
    package func liveBuildsFinished() async { await liveQueries.buildsFinished() }

    /// How many live audiences of repeated queries the store holds, and how many queries they answered.
    package var liveAudiences: (held: Int, answered: Int) {
        (liveQueries.audiences, liveQueries.answered.load(ordering: .relaxed))
    }
}
