import TouchLogStorage

/// What ``TouchLogStore/migrate(directory:progress:)`` did.
public struct MigrationReport: Sendable {
    /// The format the store had; nil when it was already of the newest format (nothing was done).
    public var fromVersion: UInt16?
    /// Events rewritten.
    public var events: UInt64 = 0
    /// Commits rewritten (each keeps its recorded time).
    public var commits = 0
    /// The chain head of the log that was replaced (kept in `STORE/log-format1/` or `log-format2/`), and of the new one.
    public var previousHead = BlockHash.zero
    /// The chain head of the new log.
    public var head = BlockHash.zero
    /// The directory under the store that keeps the replaced log (`log-format1` or `log-format2`); nil when nothing
    /// was done.
    public var archivedLog: String?
}

/// Rewrites a store's log into the newest format (`touchlog migrate`).
///
/// Every event keeps its offset, and every commit its boundaries and recorded time, so every answer (as of any T, by
/// what was known at any K) stays the same. The new log is a new hash chain: its first commit carries metadata naming
/// the old chain's head and length, and the old log is kept, untouched, in `STORE/log-formatN/`, so that `verify`
/// checks both and the link between them (an auditor's old chain head still verifies there). Snapshots, which name
/// blocks of the old chain, are removed; queries recreate what they need.
///
/// The new log is written to `STORE/migrating/log/` and compared, event by event, with the old one before anything
/// is renamed; the switch is two renames, and a store left between them (a crash) is completed the next time it is
/// opened. The store's lock is held throughout: no other writer can append meanwhile.
package enum StoreMigration {
    /// Where the log a migration replaced is kept, under the store: `log-format1` or `log-format2`.
    package static func archivedLog(from version: UInt16) -> String { "log-format\(version)" }
    /// The replaced log kept under the store in `directory`, if any (its directory name and format).
    package static func archivedLog(in directory: String) -> (name: String, version: UInt16)? {
        for version in UInt16(1)..<BlockHeader.formatVersion
        where SystemFile.isDirectory(directory + "/" + archivedLog(from: version)) {
            return (archivedLog(from: version), version)
        }
        return nil
    }
    static let workDirectory = "migrating"

    /// The commit metadata that links a migrated log to the one it replaced.
    struct Link: Equatable {
        var fromVersion: UInt16
        var head: BlockHash
        var events: UInt64

        var encoded: [UInt8] {
            Array("{\"migratedFrom\":{\"format\":\(fromVersion),\"head\":\"\(head)\",\"events\":\(events)}}".utf8)
        }

        init(fromVersion: UInt16, head: BlockHash, events: UInt64) {
            self.fromVersion = fromVersion
            self.head = head
            self.events = events
        }

        /// Parses what ``encoded`` writes (nothing else is metadata of a migration).
        init?(_ bytes: [UInt8]) {
            let text = String(decoding: bytes, as: UTF8.self)
            let prefix = "{\"migratedFrom\":{\"format\":"
            guard text.hasPrefix(prefix), text.hasSuffix("}}") else { return nil }
            let fields = text.dropFirst(prefix.count).dropLast(2).split(separator: ",")
            guard fields.count == 3, let version = UInt16(fields[0]), fields[1].hasPrefix("\"head\":\""),
                fields[1].hasSuffix("\""),
                fields[2].hasPrefix("\"events\":"), let events = UInt64(fields[2].dropFirst(9)),
                let head = BlockHash(hex: String(fields[1].dropFirst(8).dropLast()))
            else { return nil }
            self.init(fromVersion: version, head: head, events: events)
        }
    }

    /// Migrates the store in `directory` to the newest format (a no-op, reported as such, for a store already in it).
    /// Throws ``TouchLogError/Code-swift.struct/locked`` when another process writes to the store.
    package static func migrate(
        directory: String, progress: (_ eventsDone: UInt64, _ eventsTotal: UInt64) -> Void = { _, _ in }
    )
        throws(TouchLogError) -> MigrationReport
    {
        let layout = StoreLayout(root: directory)
        try layout.requireExisting()
        // Holding the store's lock (and recovering a torn tail, as any writer would) before looking at anything.
        let old = try storage { () throws(StorageError) in try LogWriter(directory: layout.log, lockPath: layout.lock) }
        defer { old.close() }
        var report = MigrationReport()
        guard old.formatVersion < BlockHeader.formatVersion else { return report }
        report.fromVersion = old.formatVersion
        report.archivedLog = archivedLog(from: old.formatVersion)
        let work = directory + "/" + workDirectory
        let archive = directory + "/" + archivedLog(from: old.formatVersion)
        if let kept = archivedLog(in: directory) {
            throw TouchLogError(
                code: .invalidArgument,
                message: "\(directory)/\(kept.name) already exists (an earlier migration's log): "
                    + "move it out of the store before migrating again")
        }
        removeTree(work)  // a migration that never finished
        let source = try StoreReader(directory: directory)
        report.previousHead = source.headHash
        report.events = source.endOffset
        let link = Link(fromVersion: old.formatVersion, head: source.headHash, events: source.endOffset)

        do {
            try StoreLayout(root: work).create()
            let writer = try storage { () throws(StorageError) in
                try LogWriter(
                    directory: work + "/log", lockPath: work + "/LOCK",
                    options: LogOptions(formatVersion: BlockHeader.formatVersion))
            }
            let keys = try ProfileKeyFile(path: StoreLayout(root: work).profileKeys, writable: true)
            writer.beforeCommit = { try keys.sync() }
            let encoder = BlockEncoder(formatVersion: BlockHeader.formatVersion, keys: keys)
            var open = false
            for location in source.log.blocks {
                if !open {
                    let metadata = report.commits == 0 ? link.encoded : nil
                    try storage { () throws(StorageError) in
                        try writer.beginTransaction(recorded: location.header.maxRecorded, metadata: metadata)
                    }
                    open = true
                }
                let block = try encoder.block(of: try source.decode(location).events)
                _ = try storage { () throws(StorageError) in try writer.add(block) }
                if location.header.isCommit {
                    _ = try storage { () throws(StorageError) in try writer.commit() }
                    encoder.finished(committed: true)
                    open = false
                    report.commits += 1
                    progress(location.header.endOffset, report.events)
                }
            }
            report.head = writer.headHash
            writer.close()
            try compare(source, StoreReader(directory: work))
        } catch {
            removeTree(work)
            throw error
        }

        // The switch: archive the old log, move the new one in, then what named the old chain goes.
        try move(layout.log, to: archive, "cannot move \(layout.log) to \(archive)")
        try finishSwitch(layout)
        for key in (try? SystemFile.list(layout.snapshots)) ?? [] { removeTree(layout.snapshots + "/" + key) }
        return report
    }

    /// Completes a migration that stopped between its renames (no `log/`, the archive and the new log present).
    static func finishInterruptedMigration(_ layout: StoreLayout) {
        let work = layout.root + "/" + workDirectory
        guard !SystemFile.isDirectory(layout.log), archivedLog(in: layout.root) != nil,
            SystemFile.isDirectory(work + "/log")
        else { return }
        try? finishSwitch(layout)
    }

    /// Moves the new key file, then the new log, into place (the old log was archived before).
    private static func finishSwitch(_ layout: StoreLayout) throws(TouchLogError) {
        let work = layout.root + "/" + workDirectory
        if SystemFile.isDirectory(work + "/keys") {
            removeTree(layout.root + "/keys")  // a plain-text store has none; anything there belongs to no log
            try move(work + "/keys", to: layout.root + "/keys", "cannot move the migrated key file into place")
        }
        try move(work + "/log", to: layout.log, "cannot move the migrated log into \(layout.log)")
        try? SystemFile.syncDirectory(layout.root)
        removeTree(work)
    }

    /// Removes a directory and everything under it (derived or abandoned files only), ignoring failures.
    private static func removeTree(_ path: String) {
        if SystemFile.isDirectory(path) {
            for name in (try? SystemFile.list(path)) ?? [] { removeTree(path + "/" + name) }
            try? SystemFile.removeDirectory(path)
        } else {
            try? SystemFile.remove(path)
        }
    }

    /// Checks that `migrated` holds exactly `source`'s events, offsets and recorded times.
    private static func compare(_ source: StoreReader, _ migrated: StoreReader) throws(TouchLogError) {
        guard migrated.log.blocks.count == source.log.blocks.count, migrated.endOffset == source.endOffset else {
            throw TouchLogError(
                code: .corrupt, message: "the migrated log does not hold the same blocks; the store is unchanged")
        }
        for (a, b) in zip(source.log.blocks, migrated.log.blocks) {
            let before = try source.decode(a)
            let after = try migrated.decode(b)
            guard a.header.firstOffset == b.header.firstOffset, a.header.maxRecorded == b.header.maxRecorded,
                a.header.isCommit == b.header.isCommit, before.events.count == after.events.count,
                (0..<before.events.count).allSatisfy({ before.events.event(at: $0) == after.events.event(at: $0) })
            else {
                throw TouchLogError(
                    code: .corrupt,
                    message:
                        "the migrated log differs from the original at offset \(a.header.firstOffset); the store is unchanged"
                )
            }
        }
    }

    private static func move(_ from: String, to: String, _ what: String) throws(TouchLogError) {
        do { try SystemFile.rename(from, to) } catch {
            throw TouchLogError(code: .io, message: "\(what): \(error.reason)")
        }
    }
}
