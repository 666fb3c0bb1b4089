import Dispatch
import Synchronization
import TouchLogStorage

/// What `touchlog verify` found.
public struct StoreVerifyReport: Sendable {
    /// What the check of the log found: files, blocks, events, bytes, the chain head and any damage.
    public var log: VerifyReport
    /// Problems outside the log (snapshots, segment definitions), each a sentence naming the file.
    public var otherProblems: [String] = []
    /// How many snapshot files were checked.
    public var snapshotsChecked = 0
    /// After `touchlog migrate`: the report on the replaced log kept in `STORE/log-format1/` or `log-format2/` (its chain is checked
    /// like the log's, and the log's first commit must name its head and length).
    public var archivedLog: VerifyReport?
    /// What could not be checked and why (not damage in itself), a sentence each.
    public var notes: [String] = []
    /// The format of the replaced log kept under the store (see ``archivedLog``).
    public var archivedFormat: UInt16?
    /// Format 3: the erasures the log records, each with the chain head just before it.
    public var erasures: [ErasureInfo] = []
    /// Where each anchor asked for (a chain head noted at an earlier audit) is; one not found is a problem.
    public var anchors: [AnchorCheck] = []

    /// True when nothing anywhere is damaged and every anchor asked for is still a committed block.
    public var isIntact: Bool {
        log.isIntact && otherProblems.isEmpty && (archivedLog?.isIntact ?? true) && anchors.allSatisfy(\.isFound)
    }
}

/// The whole-store check behind ``TouchLogStore/verify(anchors:)`` and `touchlog verify`.
package enum StoreVerifier {
    /// Checks every block of the store's log: header and payload checksums, the hash chain, offsets, file
    /// headers and names, recorded times, and each payload's events (count, times inside the block's range,
    /// identifiers, sorted dictionaries). Goes on past damage so that every damaged place is named. When the log
    /// is intact, also checks every snapshot (checksum, contents, anchor in the log) and segment definition file.
    /// `anchors`: chain heads noted earlier, each looked for among the committed blocks (``StoreVerifyReport/anchors``).
    package static func verify(
        directory: String, anchors: [BlockHash] = [], progress: (_ done: Int64, _ total: Int64) -> Void = { _, _ in }
    ) throws(TouchLogError) -> StoreVerifyReport {
        let layout = StoreLayout(root: directory)
        try layout.requireExisting()
        // Format 2: the summaries first, in log order (each block's new strings take the ids after the previous
        // block's), so that every block can then be checked on its own, on every core.
        let reader = try? StoreReader(directory: directory)
        let known =
            reader.map { $0.formatVersion >= 2 ? Introductions.Chain($0) : Introductions.Chain() }
            ?? Introductions.Chain()
        let chainProblem = known.problem
        let introductions = Introductions()
        let unchecked = Mutex(0)
        // Format 3: the key file's pads open the sealed profiles of every block (the erased ones stay empty).
        var keyProblems: [String] = []
        var sealing: KeyFileCheck?
        if let reader, reader.formatVersion >= 3 {
            do {
                sealing = KeyFileCheck(
                    keys: try reader.profileKeys(), erased: reader.erasures.profiles, profiles: known.profiles)
            } catch {
                keyProblems.append(error.message)
            }
        }
        let opener = sealing
        var log = try storage { () throws(StorageError) in
            try LogVerifier.verify(directory: layout.log, progress: progress) {
                payloadCheck(known: known, introductions: introductions, sealing: opener) {
                    unchecked.withLock { $0 += 1 }
                }
            }
        }
        // The damage that stopped the chain is named once: the log's own checks usually name that block already.
        if let chainProblem,
            !log.problems.contains(where: { chainProblem.hasPrefix("\($0.description.prefix { $0 != ":" }):") })
        {
            log.problems.append(StorageError(code: .corrupt, message: chainProblem))
        }
        if let reader { log.problems += introductions.repeated(reader, chain: known) }
        var report = StoreVerifyReport(log: log)
        // A log too damaged to read has no block to find: its anchors count as missing.
        report.anchors =
            (try? AnchorCheck.locate(anchors, in: directory)) ?? anchors.map { AnchorCheck(anchor: $0) }
        report.erasures = reader?.erasures.records ?? []
        let skipped = unchecked.withLock { $0 }
        if skipped > 0 {
            let one = skipped == 1
            report.notes.append(
                "\(skipped) block\(one ? "" : "s") after the damage checked on \(one ? "its" : "their") own: "
                    + "\(one ? "its" : "their") events name profiles or touchpoints by ids the damaged block introduced"
            )
        }
        if log.isIntact, let reader = try? StoreReader(directory: directory) {
            (report.otherProblems, report.snapshotsChecked) = reader.verifyDerivedFiles()
        }
        if let sealing, known.problem == nil {
            keyProblems += sealing.problems()
            report.notes += sealing.notes()
        }
        report.otherProblems += keyProblems
        if let kept = StoreMigration.archivedLog(in: directory) {
            let archive = directory + "/" + kept.name
            let archived = try storage { () throws(StorageError) in
                try LogVerifier.verify(directory: archive, makePayloadCheck: { payloadCheck() })
            }
            report.archivedLog = archived
            report.archivedFormat = kept.version
            let link = (try? LogReader(directory: layout.log)).flatMap { reader in
                reader.blocks.first(where: \.header.isCommit).flatMap { try? reader.metadata(of: $0) }.flatMap {
                    StoreMigration.Link($0)
                }
            }
            if link?.head != archived.head || link?.events != archived.records {
                report.otherProblems.append(
                    "\(kept.name): the log's first commit does not name this log (chain head \(archived.head), "
                        + "\(archived.records) events) as the one it replaced")
            }
        }
        return report
    }

    /// The check of each block's events: strict decoding, the count and time range its header states. Format 2: the
    /// strings each block introduces go to `introductions`; a block that uses ids past those the chain of summaries
    /// `known` reached (it stops at a damaged block) calls `unchecked`.
    private static func payloadCheck(
        known: Introductions.Chain = .init(), introductions: Introductions? = nil,
        sealing: KeyFileCheck? = nil, unchecked: @escaping () -> Void = {}
    ) -> LogVerifier.PayloadCheck {
        // One batch per thread, reused from block to block.
        var events = EventBatch()
        var scratch = GroupedBlockCodec.DecodeScratch()
        return { header, payload in
            do {
                if header.isMarker { return sealing?.markerProblem(header, payload) }
                if header.version >= 2 {
                    // Every event is read and checked; the count and times are those of the summary, checked against the header.
                    let summary = try GroupedBlockCodec.decodeStored(
                        header, payload, dictionary: nil, into: &events, scratch: &scratch
                    ) {
                        summary, raw throws(DecodeError) in
                        guard let sealing else {
                            throw DecodeError(byte: 0, reason: "sealed profiles, and no key file to open them")
                        }
                        try sealing.open(summary, &raw)
                    }
                    if !known.holds(summary) { unchecked() }
                    introductions?.add(profiles: scratch.newProfiles, touchpoints: scratch.newTouchpoints)
                    return nil
                }
                try EventBlockCodec.decode(payload, into: &events, strict: true)
            } catch { return "bad block payload: \(error)" }
            if events.count != Int(header.count) {
                return "block holds \(events.count) events, its header says \(header.count)"
            }
            if let t = events.times.first(where: { $0 < header.minTime || $0 > header.maxTime }) {
                return "event time \(Timestamp.format(t)) is outside the block's stated range"
            }
            return nil
        }
    }
}

/// The strings the blocks of a format-2 log introduce, gathered (as hashes) from every block as `verify` checks them
/// on every core, to find one introduced twice: each profile and touchpoint string must be introduced once in the
/// whole log. Sorting a hash per string finds equal ones faster than a hash index of every string would.
private final class Introductions: Sendable {
    /// Where each block's new strings start, read from the summaries in log order.
    struct Chain {
        /// The first new profile and touchpoint id of each block (as far as the summaries could be read).
        var firstProfiles: [Int] = []
        var firstTouchpoints: [Int] = []
        var profiles = 0
        var touchpoints = 0
        /// What stopped the chain before the last block, naming the block.
        var problem: String?

        init() {}

        /// Reads the blocks' summaries in log order, checking that each introduces its strings from the ids after its
        /// predecessor's; stops at the first that cannot be read or does not.
        init(_ reader: StoreReader) {
            for index in reader.log.blocks.indices {
                let summary: BlockSummary
                do { summary = try reader.summary(of: index) } catch {
                    problem = error.message
                    return
                }
                guard Int(summary.firstNewProfile) == profiles, Int(summary.firstNewTouchpoint) == touchpoints else {
                    problem =
                        "\(reader.log.location(of: reader.log.blocks[index])): bad block summary: introduces profiles from id "
                        + "\(summary.firstNewProfile) and touchpoints from id \(summary.firstNewTouchpoint), the blocks before it "
                        + "\(profiles) and \(touchpoints)"
                    return
                }
                firstProfiles.append(profiles)
                firstTouchpoints.append(touchpoints)
                profiles += summary.newProfiles
                touchpoints += summary.newTouchpoints
            }
        }

        /// Whether the block of `summary` uses only ids the chain reached.
        func holds(_ summary: BlockSummary) -> Bool {
            Int(summary.firstNewProfile) + summary.newProfiles <= profiles
                && Int(summary.firstNewTouchpoint) + summary.newTouchpoints <= touchpoints
        }
    }

    /// The hashes of the strings seen so far, in buckets by their top bits (so that each bucket is sorted on its own,
    /// in the cache).
    private struct Hashes {
        static let bucketBits = 10
        var buckets = [[UInt64]](repeating: [], count: 1 << bucketBits)
    }

    private let profiles = Mutex(Hashes())
    private let touchpoints = Mutex(Hashes())

    func add(profiles: StringTable, touchpoints: StringTable) {
        Self.add(profiles, to: self.profiles)
        Self.add(touchpoints, to: self.touchpoints)
    }

    private static func add(_ strings: StringTable, to sink: borrowing Mutex<Hashes>) {
        guard strings.count > 0 else { return }
        // An erased profile (format 3) is empty: it is no string any more, so it repeats none.
        let hashes = strings.hashes(skippingEmpty: true)
        sink.withLock {
            for hash in hashes {
                $0.buckets[Int(truncatingIfNeeded: hash >> UInt64(64 - Hashes.bucketBits))].append(hash)
            }
        }
    }

    /// A problem for each string introduced again, naming the block that did and the id it had.
    func repeated(_ reader: StoreReader, chain: Chain) -> [StorageError] {
        let repeatedProfiles = profiles.withLock { Self.repeatedHashes($0) }
        let repeatedTouchpoints = touchpoints.withLock { Self.repeatedHashes($0) }
        guard !repeatedProfiles.isEmpty || !repeatedTouchpoints.isEmpty else { return [] }
        // Equal hashes (rare): find the strings and compare them (loading them may fail past damage, which is then
        // reported already).
        guard (try? reader.loadDictionary()) != nil else { return [] }
        var problems: [StorageError] = []
        let kinds = [
            ("profile", repeatedProfiles, reader.dictionary.profiles, chain.firstProfiles),
            ("touchpoint", repeatedTouchpoints, reader.dictionary.touchpoints, chain.firstTouchpoints),
        ]
        for (what, repeated, table, firsts) in kinds where !repeated.isEmpty {
            var firstID: [[UInt8]: Int] = [:]
            for (id, hash) in table.hashes().enumerated() where repeated.contains(hash) && !table[id].isEmpty {
                let string = Array(table[id])
                guard let earlier = firstID[string] else {
                    firstID[string] = id
                    continue
                }
                // The block that introduced `id`: the last whose first new id is at or before it.
                let block = firsts.lastIndex { $0 <= id } ?? 0
                problems.append(
                    StorageError(
                        code: .corrupt,
                        message: "bad block dictionary: new \(what) \(id - firsts[block]) "
                            + "was introduced before, as id \(earlier)",
                        location: reader.log.location(of: reader.log.blocks[block])))
            }
        }
        return problems
    }

    /// The hashes that occur more than once, each bucket sorted on one of the cores.
    private static func repeatedHashes(_ all: Hashes) -> Set<UInt64> {
        let found = Mutex(Set<UInt64>())
        let buckets = all.buckets
        let workers = StoreReader.queryThreads
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: buckets.count, by: workers) {
                let sorted = buckets[index].sorted()
                for k in sorted.indices.dropFirst() where sorted[k] == sorted[k - 1] {
                    _ = found.withLock { $0.insert(sorted[k]) }
                }
            }
        }
        return found.withLock { $0 }
    }
}

/// `verify`'s checks of a format-3 store's key file: each block's sealed profiles open with the pads of its record
/// (the record bound to that block's section), every pad check holds, every profile the log introduced has a pad
/// (or an erasure), no pad is left of an erased profile, and every erasure record names profiles the log has.
private final class KeyFileCheck: Sendable {
    let keys: ProfileKeyFile
    let erased: Set<Int>
    /// The profiles the log introduced (as far as its summaries could be read).
    let profiles: Int
    /// Erased profiles whose pads are still there, and records whose pads do not match their check, found as blocks
    /// are opened (each record's pads are read there, once).
    private let unfinished = Mutex<[Int]>([])
    private let mismatched = Mutex<[ProfileKeyFile.Record]>([])

    init(keys: ProfileKeyFile, erased: Set<Int>, profiles: Int) {
        self.keys = keys
        self.erased = erased
        self.profiles = profiles
    }

    /// Opens a block's sealed profiles, noting each erased profile whose pad is still there, and a record whose pads
    /// do not match their check.
    func open(_ summary: BlockSummary, _ raw: inout [UInt8]) throws(DecodeError) {
        let (record, pads, ranges) = try keys.open(&raw, summary, erased: erased)
        if let record, XXH3.hash(pads[...]) != record.padCheck { mismatched.withLock { $0.append(record) } }
        let first = Int(summary.firstNewProfile)
        let left = ranges.indices.filter { erased.contains(first + $0) && pads[ranges[$0]].contains { $0 != 0 } }
        if !left.isEmpty { unfinished.withLock { $0 += left.map { first + $0 } } }
    }

    func markerProblem(_ header: BlockHeader, _ payload: [UInt8]) -> String? {
        guard let range = BlockHeader.metadataRange(inSummary: payload[...]) else {
            return "marker metadata runs past its block"
        }
        do {
            guard let record = try ErasureRecord(metadata: Array(payload[range])) else { return nil }
            if let last = record.profiles.last, last >= profiles {
                return "erasure of profile \(last), which the log never introduced"
            }
        } catch { return "bad erasure record: \(error)" }
        return nil
    }

    /// What is past the log in the key file: pads written for a commit in progress, or for one a crash cut short (not
    /// damage: the writer removes them when it opens the store).
    func notes() -> [String] {
        let covered = keys.records.last?.profiles.upperBound ?? 0
        var notes: [String] = []
        if covered > profiles {
            notes.append(
                "\(keys.path): keys for profiles \(profiles)..<\(covered), which no commit introduced yet (a commit in progress, "
                    + "or one that did not finish; the writer removes them when it opens the store)")
        }
        if keys.tornTail > 0 && keys.damagedAt == nil {
            notes.append("\(keys.path): \(keys.tornTail) bytes after its last whole record (the same)")
        }
        return notes
    }

    /// What is wrong with the key file as a whole (coverage, damage) and what opening the blocks found (pad checks,
    /// unfinished erasures).
    func problems() -> [String] {
        var problems: [String] = []
        let records = keys.records
        let covered = records.last?.profiles.upperBound ?? 0
        if covered < profiles {
            problems.append(
                "\(keys.path): no keys for profiles \(covered)..<\(profiles), which the log introduced: their identifiers cannot be read"
            )
        }
        if let damaged = keys.damagedAt {
            problems.append(
                "\(keys.path): a damaged record at byte \(damaged), with whole records after it: the keys from there on cannot be read"
            )
        }
        let unfinished = self.unfinished.withLock { $0.sorted() }
        if !unfinished.isEmpty {
            let one = unfinished.count == 1
            problems.append(
                "\(keys.path): the log records \(one ? "profile \(unfinished[0])" : "\(unfinished.count) profiles") as erased, and "
                    + "\(one ? "its key is" : "their keys are") still there (an erasure did not finish: opening the store for writing finishes it)"
            )
        }
        for record in mismatched.withLock({ $0.sorted { $0.firstProfile < $1.firstProfile } }) {
            let pending = record.profiles.contains { erased.contains($0) }
            problems.append(
                "\(keys.path): the pads of profiles \(record.profiles) do not match their check"
                    + (pending
                        ? " (an erasure among them may not have finished: opening the store for writing finishes it)"
                        : ""))
        }
        return problems
    }
}
