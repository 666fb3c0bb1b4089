import Synchronization
import TouchLogStorage

/// What `touchlog verify` found.
public struct StoreVerifyReport: Sendable {
    public var log: VerifyReport
    /// Problems outside the log (snapshots, segment definitions), each a sentence naming the file.
    public var otherProblems: [String] = []
    public var snapshotsChecked = 0
    /// After `touchlog migrate`: the report on the replaced log kept in `STORE/log-format1/` (its chain is checked
    /// like the log's, and the log's first commit must name its head and length).
    public var archivedLog: VerifyReport?
    /// What could not be checked and why (not damage in itself), a sentence each.
    public var notes: [String] = []

    public var isIntact: Bool { log.isIntact && otherProblems.isEmpty && (archivedLog?.isIntact ?? true) }
}

public enum StoreVerifier {
    /// Checks every block of the store's log: header and payload checksums, the hash chain, offsets, file
    /// headers and names, recorded times, and each payload's events (count, times inside the block's range,
    /// identifiers, sorted dictionaries). Goes on past damage so that every damaged place is named. When the log
    /// is intact, also checks every snapshot (checksum, contents, anchor in the log) and segment definition file.
    public static func verify(directory: String, progress: (_ done: Int64, _ total: Int64) -> Void = { _, _ in }) throws(TouchLogError) -> StoreVerifyReport {
        let layout = StoreLayout(root: directory)
        try layout.requireExisting()
        // Format 2: the store-wide dictionary first, checked strictly (each string valid and introduced once), so
        // that every block can then be decoded on its own, on every core.
        var dictionary = StoreDictionary()
        var dictionaryProblem: String?
        if let reader = try? StoreReader(directory: directory), reader.formatVersion >= 2 {
            do { try reader.loadDictionary(strict: true) } catch { dictionaryProblem = error.message }
            dictionary = reader.dictionary
        }
        let storeDictionary = dictionary
        let partial = dictionaryProblem != nil
        let unchecked = Mutex(0)
        var log = try storage { () throws(StorageError) in
            try LogVerifier.verify(directory: layout.log, progress: progress) {
                payloadCheck(storeDictionary, partial: partial) { unchecked.withLock { $0 += 1 } }
            }
        }
        // The damage that stopped the dictionary is named once: the log's own checks usually name that block already.
        if let dictionaryProblem, !log.problems.contains(where: { dictionaryProblem.hasPrefix("\($0.description.prefix { $0 != ":" }):") }) {
            log.problems.append(StorageError(code: .corrupt, message: dictionaryProblem))
        }
        var report = StoreVerifyReport(log: log)
        let skipped = unchecked.withLock { $0 }
        if skipped > 0 {
            report.notes.append("\(skipped) block\(skipped == 1 ? "" : "s") after the damage checked by checksum and chain only: "
                                + "their events name profiles or touchpoints by ids the damaged block introduced")
        }
        if log.isIntact, let reader = try? StoreReader(directory: directory) {
            (report.otherProblems, report.snapshotsChecked) = reader.verifyDerivedFiles()
        }
        let archive = directory + "/" + StoreMigration.archivedLog
        if SystemFile.isDirectory(archive) {
            let archived = try storage { () throws(StorageError) in
                try LogVerifier.verify(directory: archive, makePayloadCheck: { payloadCheck(StoreDictionary()) })
            }
            report.archivedLog = archived
            let link = (try? LogReader(directory: layout.log)).flatMap { reader in
                reader.blocks.first(where: \.header.isCommit).flatMap { try? reader.metadata(of: $0) }.flatMap { StoreMigration.Link($0) }
            }
            if link?.head != archived.head || link?.events != archived.records {
                report.otherProblems.append(
                    "\(StoreMigration.archivedLog): the log's first commit does not name this log (chain head \(archived.head), " +
                    "\(archived.records) events) as the one it replaced")
            }
        }
        return report
    }

    /// The check of each block's events: strict decoding, the count and time range its header states.
    /// `partial`: the dictionary stops at a damaged block; blocks that need ids past it call `unchecked` instead.
    private static func payloadCheck(_ dictionary: StoreDictionary, partial: Bool = false, unchecked: @escaping () -> Void = {}) -> LogVerifier.PayloadCheck {
        // One batch per thread, reused from block to block.
        var events = EventBatch()
        var scratch = GroupedBlockCodec.DecodeScratch()
        return { header, payload in
            do {
                if header.version >= 2 {
                    guard try GroupedBlockCodec.decodeStored(header, payload, dictionary: dictionary, into: &events, scratch: &scratch,
                                                             partialDictionary: partial, strings: false)
                    else {
                        unchecked()
                        return nil
                    }
                } else {
                    try EventBlockCodec.decode(payload, into: &events, strict: true)
                }
            } catch { return "bad block payload: \(error)" }
            if events.count != Int(header.count) { return "block holds \(events.count) events, its header says \(header.count)" }
            if let t = events.times.first(where: { $0 < header.minTime || $0 > header.maxTime }) {
                return "event time \(Timestamp.format(t)) is outside the block's stated range"
            }
            return nil
        }
    }
}
