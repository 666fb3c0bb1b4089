import TouchLogStorage

/// A saved projection, as `snapshot list` shows it.
public struct SnapshotInfo: Sendable, Equatable {
    /// Relative to the store directory: `snapshots/KEY/OFFSET-WATERMARK-RECORDED.snap`.
    public var path: String
    /// The definition's key: the first 16 hex digits of the SHA-256 of its JSON.
    public var key: String
    /// The offset after the last event the projection has folded.
    public var endOffset: UInt64
    /// The projection holds every event with an event time at or before this (epoch milliseconds).
    public var watermark: Int64
    /// …recorded at or before this.
    public var recorded: Int64
    /// The file's size.
    public var bytes: Int64
    /// The current segment whose definition has this key; nil for an earlier version's or a removed segment's snapshot
    /// (those ``TouchLogStore/pruneSnapshots(keep:)`` deletes).
    public var segment: String?
}

/// What ``TouchLogStore/createSnapshots(of:)`` did for one segment.
public struct SnapshotCreation: Sendable, Equatable {
    /// The segment's name.
    public var segment: String
    /// The snapshot saved at the end of the log; nil when one was already there, or when snapshots do not help the
    /// segment (``helps``).
    public var snapshot: SnapshotInfo?
    /// False when the segment has nothing to snapshot: its rules all look back from T and are read from the log,
    /// either because a snapshot cannot keep them (`before` windows, `value` conditions, sequences over moving
    /// windows) or because reading them costs less than a snapshot of their latest times would.
    public var helps: Bool
}

/// The snapshot files of a store: `snapshots/KEY/…snap`, one directory per segment definition (a changed
/// definition has a new key, so its projection is rebuilt from the log).
///
/// Snapshots are derived and disposable: a missing, damaged or foreign one (its anchor hash is not the log's
/// block at its offset) is ignored and the answer comes from the log.
struct SnapshotStore {
    let root: String
    let directory: String

    init(layout: StoreLayout) {
        root = layout.root
        directory = layout.snapshots
    }

    /// Which of one definition's snapshots to delete so that `keep` remain, spread over the log: the oldest and
    /// the newest always stay, and each deletion takes the snapshot whose neighbours are closest together (so
    /// queries at any time find one nearby, not only near the end).
    static func thinned(_ infos: [SnapshotInfo], keep: Int) -> [SnapshotInfo] {
        var kept = infos.sorted { $0.endOffset < $1.endOffset }
        var doomed: [SnapshotInfo] = []
        while kept.count > max(keep, 2) {
            let i = (1..<(kept.count - 1)).min {
                kept[$0 + 1].endOffset - kept[$0 - 1].endOffset < kept[$1 + 1].endOffset - kept[$1 - 1].endOffset
            }!
            doomed.append(kept.remove(at: i))
        }
        return doomed
    }

    /// The definition a snapshot body was made for.
    static func definition(in body: [UInt8]) throws -> SegmentDefinition {
        try body.withUnsafeBytes { raw in
            var input = PayloadCursor(raw)
            guard try input.byte() == layoutVersion else {
                throw DecodeError(byte: 0, reason: "unknown snapshot layout")
            }
            let length = try input.count(max: input.size, "definition length")
            return try SegmentDefinition(
                json: String(decoding: UnsafeBufferPointer(start: try input.take(length), count: length), as: UTF8.self)
            )
        }
    }

    static func key(_ definition: SegmentDefinition) -> String {
        String(BlockHash.sha256(of: Array(definition.expanded.json.utf8)).description.prefix(16))
    }

    static func fileName(endOffset: UInt64, watermark: Int64, recorded: Int64) -> String {
        func hex(_ v: Int64) -> String {
            let digits = String(UInt64(bitPattern: v), radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        let offset = String(endOffset)
        return String(repeating: "0", count: max(0, 20 - offset.count)) + offset + "-" + hex(watermark) + "-"
            + hex(recorded) + ".snap"
    }

    /// Every snapshot file, by key and then offset.
    func all() -> [SnapshotInfo] {
        var result: [SnapshotInfo] = []
        for key in ((try? SystemFile.list(directory)) ?? []).sorted() {
            for name in ((try? SystemFile.list(directory + "/" + key)) ?? []).sorted() {
                let parts = name.dropLast(5).split(separator: "-")
                guard name.hasSuffix(".snap"), parts.count == 3, let offset = UInt64(parts[0]),
                    let w = UInt64(parts[1], radix: 16), let r = UInt64(parts[2], radix: 16)
                else { continue }
                let path = "snapshots/\(key)/\(name)"
                result.append(
                    SnapshotInfo(
                        path: path, key: key, endOffset: offset, watermark: Int64(bitPattern: w),
                        recorded: Int64(bitPattern: r), bytes: fileSize(root + "/" + path)))
            }
        }
        return result
    }

    /// Writes a snapshot of `projection`. Failures are returned, not thrown: a snapshot is only an optimisation.
    @discardableResult
    func save(_ projection: SegmentProjection, definition: SegmentDefinition) -> TouchLogError? {
        save(
            encode(projection, definition: definition), definition: definition,
            name: Self.fileName(
                endOffset: projection.endOffset, watermark: projection.watermark, recorded: projection.recorded))
    }

    /// Writes a snapshot body of `definition` as `name`; failures are returned, not thrown.
    func save(_ body: [UInt8], definition: SegmentDefinition, name: String) -> TouchLogError? {
        let folder = directory + "/" + Self.key(definition)
        // The snapshots directory itself is disposable too: recreate it when someone deleted it.
        if (try? SystemFile.makeDirectory(directory)) == true { try? DurableFile.syncDirectory(root) }
        if (try? SystemFile.makeDirectory(folder)) == true { try? DurableFile.syncDirectory(directory) }
        do {
            try DurableFile.write(body, kind: "snapshot", to: folder + "/" + name, checksum: .xxh3)
            return nil
        } catch {
            return error
        }
    }

    /// Deletes the snapshots of `definition` beyond `keep`, keeping them spread along the log (``thinned(_:keep:)``).
    func thin(_ definition: SegmentDefinition, keep: Int) {
        let key = Self.key(definition)
        for info in Self.thinned(all().filter { $0.key == key }, keep: keep) {
            try? SystemFile.remove(root + "/" + info.path)
        }
    }

    /// The snapshots of `definition` that may serve a query at `time` (watermark ≤ T, recorded ≤ K) and end after
    /// offset `after` and at or before `through`, the newest first. (Whether they belong to the log is the reader's
    /// to check: ``StoreReader/anchoredBlock(endingAt:hash:)``.)
    func candidates(of definition: SegmentDefinition, at time: QueryTime, after: UInt64, through: UInt64)
        -> [SnapshotInfo]
    {
        let key = Self.key(definition)
        return all().filter { info in
            info.key == key && info.endOffset > after && info.endOffset <= through && info.watermark <= time.asOf
                && info.recorded <= (time.knownAt ?? .max)
        }.sorted { $0.endOffset > $1.endOffset }
    }

    /// Decodes a format-2 snapshot's checked body (``GroupedSnapshot``); `definition` nil: the one recorded in it.
    /// Throws `corrupt` when its contents are bad or disagree with its file name.
    func loadGrouped(_ info: SnapshotInfo, body: [UInt8], definition: SegmentDefinition?) throws(TouchLogError)
        -> GroupedSnapshot
    {
        do {
            let snapshot = try GroupedSnapshot.decode(body, definition: definition)
            guard snapshot.endOffset == info.endOffset, snapshot.watermark == info.watermark,
                snapshot.recorded == info.recorded
            else {
                throw DecodeError(byte: 0, reason: "contents disagree with the file name")
            }
            return snapshot
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(info.path): bad snapshot: \(error)")
        }
    }

    /// Loads a snapshot; throws `corrupt` when its checksum, contents or definition are wrong.
    func load(_ info: SnapshotInfo, definition: SegmentDefinition) throws(TouchLogError) -> SegmentProjection {
        try load(info, body: try DurableFile.read(root + "/" + info.path, kind: "snapshot"), definition: definition)
    }

    /// Decodes a snapshot's checked body; `definition` nil: the one recorded in it.
    func load(_ info: SnapshotInfo, body: [UInt8], definition: SegmentDefinition?) throws(TouchLogError)
        -> SegmentProjection
    {
        do {
            let definition = try definition ?? SnapshotStore.definition(in: body)
            let projection = try decode(body, definition: definition)
            guard projection.endOffset == info.endOffset, projection.watermark == info.watermark,
                projection.recorded == info.recorded
            else {
                throw DecodeError(byte: 0, reason: "contents disagree with the file name")
            }
            return projection
        } catch let error as DecodeError {
            throw TouchLogError(code: .corrupt, message: "\(info.path): bad snapshot: \(error)")
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(info.path): bad snapshot: \(error)")
        }
    }

    /// Snapshot body, layout 2 (after the ``DurableFile`` header). Integers in the header part are varints; each
    /// column is (element count, varint; stored length, varint; LZ4 block of the little-endian elements):
    /// 1. layout byte (2), definition JSON (length, bytes)
    /// 2. end offset, anchor (32 bytes), watermark and recorded time (zigzag)
    /// 3. profile count n, summary rule count S, how many of them keep first times F, recent rule count R
    /// 4. columns: profile lengths − 1 (UInt8 × n), profile bytes (UInt8, ascending byte order), latest conversion
    ///    (Int64 × n), summary counts (UInt32 × n·S, profile-major), first times of the summary rules with a
    ///    conversion clause (Int64 × n·F, profile-major)
    /// 5. per recent rule: its events' profiles (UInt32) and times (Int64), two columns of equal length
    static let layoutVersion: UInt8 = 2

    func encode(_ projection: SegmentProjection, definition: SegmentDefinition) -> [UInt8] {
        let p = projection.sortedByProfile()
        var out = ByteWriter()
        out.byte(Self.layoutVersion)
        let json = Array(definition.json.utf8)
        out.varint(json.count)
        out.raw(json)
        out.varint(p.endOffset)
        out.raw(p.anchor.bytes)
        out.zigzag(p.watermark)
        out.zigzag(p.recorded)
        let n = p.profiles.count
        out.varint(n)
        out.varint(p.summaryRules.count)
        out.varint(p.firstRules.count)
        out.varint(p.recentRules.count)
        out.column((0..<n).map { UInt8(p.profiles.range($0).count - 1) })
        out.column(p.profiles.bytes)
        out.column(p.lastConversion)
        out.column(p.summaryCounts)
        out.column(p.summaryFirsts)
        for r in p.recent {
            out.column(r.profiles)
            out.column(r.times)
        }
        return out.bytes
    }

    func decode(_ body: [UInt8], definition: SegmentDefinition) throws -> SegmentProjection {
        try body.withUnsafeBytes { raw in
            var input = PayloadCursor(raw)
            guard try input.byte() == Self.layoutVersion else { throw input.fail("unknown snapshot layout") }
            let jsonLength = try input.count(max: input.size, "definition length")
            let json = Array(definition.json.utf8)
            guard jsonLength == json.count, Memory.equal(try input.take(jsonLength), json, count: jsonLength) else {
                throw input.fail("snapshot of another definition")
            }
            var p = SegmentProjection(definition: definition)
            p.endOffset = try input.varint()
            p.anchor = BlockHash(bytes: Array(UnsafeBufferPointer(start: try input.take(32), count: 32)))
            p.watermark = try input.zigzag()
            p.recorded = try input.zigzag()
            let n = try input.count(max: Int(UInt32.max), "profile count")
            guard try input.varint() == UInt64(p.summaryRules.count), try input.varint() == UInt64(p.firstRules.count),
                try input.varint() == UInt64(p.recentRules.count)
            else {
                throw input.fail("rule counts differ from the definition")
            }
            let lengths: [UInt8] = try input.column(count: n, "profile lengths")
            var total = 0
            let spare = n / 16
            p.profiles.ends = largeArray(count: n, spare: spare) { ends in
                for (i, length) in lengths.enumerated() {
                    total += Int(length) + 1
                    ends[i] = UInt32(truncatingIfNeeded: total)
                }
            }
            guard total <= Int(UInt32.max) else { throw input.fail("profiles hold too many bytes") }
            p.profiles.bytes = try input.column(count: total, spare: total / 16, "profile bytes")
            p.profiles.markSorted()
            p.lastConversion = try input.column(count: n, spare: spare, "latest conversions")
            let summaryWidth = p.summaryRules.count
            p.summaryCounts = try input.column(count: n * summaryWidth, spare: spare * summaryWidth, "summary counts")
            p.summaryFirsts = try input.column(
                count: n * p.firstRules.count, spare: spare * p.firstRules.count, "summary first times")
            for r in p.recent.indices {
                p.recent[r].profiles = try input.column(count: nil, "recent profiles")
                p.recent[r].times = try input.column(count: p.recent[r].profiles.count, "recent times")
                guard !p.recent[r].profiles.contains(where: { Int($0) >= n }) else {
                    throw input.fail("recent event names a profile out of range")
                }
            }
            guard input.isAtEnd else { throw input.fail("bytes after the last column") }
            return p
        }
    }
}

extension ByteWriter {
    /// Appends a column: element count, stored length, the LZ4-compressed little-endian elements.
    mutating func column<T: BitwiseCopyable>(_ values: [T]) {
        let stored = values.isEmpty ? [] : LZ4.compress(values.withUnsafeBytes { Array($0) })
        varint(values.count)
        varint(stored.count)
        self.raw(stored)
    }
}

extension PayloadCursor {
    /// Reads a column written by ``ByteWriter/column(_:)`` that must hold `expected` elements (nil: any number
    /// LZ4 can expand the stored bytes to).
    ///
    /// The array gets room for `spare` more elements (a projection's per-profile columns grow when a query folds
    /// in new profiles; without room, the first one would copy the whole column).
    mutating func column<T: BitwiseCopyable>(count expected: Int?, spare: Int = 0, _ what: @autoclosure () -> String)
        throws(DecodeError) -> [T]
    {
        let stated = try varint()
        if let expected {
            guard stated == UInt64(expected) else { throw fail("\(what()): \(stated) elements, expected \(expected)") }
        } else {
            guard stated <= UInt64(remaining) * 256 / UInt64(MemoryLayout<T>.stride) else {
                throw fail("\(what()): \(stated) elements is too many")
            }
        }
        let count = Int(stated)
        let storedLength = try self.count(max: remaining, "\(what()) stored length")
        let stored = UnsafeRawBufferPointer(start: try take(storedLength), count: storedLength)
        var ok = false
        let values: [T] = largeArray(count: count, spare: spare) { buffer in
            let filled = UnsafeMutableRawBufferPointer(buffer)
            ok = LZ4.decompress(stored, into: filled)
            // Elements are plain bits; on failure the zero-filled prefix is discarded below.
            if !ok { filled.initializeMemory(as: UInt8.self, repeating: 0) }
        }
        guard ok else { throw fail("\(what()) do not decompress") }
        return values
    }
}

/// What the last query did, for the tests and the package's tools (not part of the library's API).
package struct QueryReport: Sendable, Equatable {
    /// Offset of the snapshot the query started from (0 when it replayed from the start).
    package var snapshotOffset: UInt64 = 0
    /// Events in the blocks the query decoded.
    package var eventsRead: UInt64 = 0
    package var snapshotsWritten = 0
    /// Snapshots not saved because they would have kept nothing: every rule they could keep was cheaper to read from
    /// the log (``StoreReader/recentEntries(_:_:blocks:watermark:summaries:profiles:)``).
    package var snapshotsNotWorthKeeping = 0
    /// Snapshots found damaged or foreign and ignored.
    package var snapshotsIgnored = 0
    /// The query started from the projection kept in memory by an earlier query of the same store.
    package var fromMemory = false
    /// Membership read only the profiles the scan marked (a format-2 query with few of them), not every profile.
    package var membersFromMarks = false
}

extension StoreReader {
    /// The newest snapshot of `definition` usable at `time` (watermark ≤ T, recorded ≤ K, anchored in this log) that
    /// is past offset `after`.
    func newestUsableSnapshot(
        _ definition: SegmentDefinition, at time: QueryTime, after: UInt64 = 0, report: inout QueryReport
    ) -> SegmentProjection? {
        guard usesSnapshots else { return nil }
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        for info in store.candidates(of: definition, at: time, after: after, through: endOffset) {
            guard let projection = try? store.load(info, definition: definition),
                anchoredBlock(endingAt: projection.endOffset, hash: projection.anchor) != nil
            else {
                report.snapshotsIgnored += 1
                continue
            }
            return projection
        }
        return nil
    }

    /// Folds the whole log into `definition`'s projection and saves it as a snapshot; returns its info.
    package func createSnapshot(of definition: SegmentDefinition) throws -> SnapshotInfo? {
        let definition = try prepared(definition)
        if formatVersion >= 2 { return try createGroupedSnapshot(of: definition) }
        // The format-1 projection keeps only the first grammar's rules; the rest is read from the log.
        guard !CompiledSegment(definition, at: QueryTime(asOf: .max)).usesSecondGrammar else { return nil }
        var report = QueryReport()
        var projection =
            newestUsableSnapshot(definition, at: QueryTime(asOf: .max), report: &report)
            ?? SegmentProjection(definition: definition)
        guard projection.endOffset < endOffset else { return nil }
        let start = projection.endOffset == 0 ? 0 : log.blockIndex(containing: projection.endOffset) ?? log.blocks.count
        for location in log.blocks[start...] { projection.fold(try decode(location), header: location.header) }
        projection.prune()
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        if let error = store.save(projection, definition: definition) { throw error }
        return store.all().first { $0.key == SnapshotStore.key(definition) && $0.endOffset == projection.endOffset }
    }

    /// Every snapshot in the store.
    package func snapshots() -> [SnapshotInfo] { SnapshotStore(layout: StoreLayout(root: directory)).all() }
}

extension StoreReader {
    /// The directory name under `snapshots/` of a definition's projection.
    package static func snapshotKey(_ definition: SegmentDefinition) -> String { SnapshotStore.key(definition) }

    /// Deletes all but the newest `keep` snapshots of each key in `currentKeys`, and every snapshot of other keys.
    /// Returns what was deleted.
    package func pruneSnapshots(keep: Int, currentKeys: Set<String>) throws -> [SnapshotInfo] {
        var deleted: [SnapshotInfo] = []
        let byKey = Dictionary(grouping: snapshots(), by: \.key)
        for (key, infos) in byKey {
            let sorted = infos.sorted { $0.endOffset > $1.endOffset }
            let doomed = currentKeys.contains(key) ? Array(sorted.dropFirst(keep)) : sorted
            for info in doomed {
                do { try SystemFile.remove(directory + "/" + info.path) } catch {
                    throw TouchLogError(
                        code: .io, message: "cannot delete \(info.path): \(error.reason)")
                }
                deleted.append(info)
            }
            if doomed.count == sorted.count { try? SystemFile.removeDirectory(directory + "/snapshots/" + key) }
        }
        try DurableFile.syncDirectory(directory + "/snapshots")
        return deleted
    }

    /// The index of the block of this log that ends at `offset` and has hash `anchor` (where a snapshot or a
    /// projection made from this log ends); nil when there is none.
    func anchoredBlock(endingAt offset: UInt64, hash anchor: BlockHash) -> Int? {
        guard offset > 0, let index = log.blockIndex(containing: offset - 1),
            log.blocks[index].header.endOffset == offset,
            log.blocks[index].header.hash == anchor
        else { return nil }
        return index
    }

    /// Where a snapshot of either layout (a format-1 projection, a format-2 ``GroupedSnapshot``) says it ends, and the
    /// hash of the block there; throws `corrupt` when its contents are bad or disagree with its file name.
    private func snapshotAnchor(_ info: SnapshotInfo, body: [UInt8], store: SnapshotStore) throws(TouchLogError) -> (
        UInt64, BlockHash
    ) {
        if let layout = body.first, GroupedSnapshot.layouts.contains(layout) {
            let snapshot = try store.loadGrouped(info, body: body, definition: nil)
            return (snapshot.endOffset, snapshot.anchor)
        }
        let projection = try store.load(info, body: body, definition: nil)
        return (projection.endOffset, projection.anchor)
    }

    /// Checks every snapshot (checksum, contents, anchor in this log) and every stored definition version;
    /// returns a sentence per problem and how many snapshots were checked.
    func verifyDerivedFiles() -> (problems: [String], snapshotsChecked: Int) {
        var problems: [String] = []
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        let snapshotFiles = store.all()
        for info in snapshotFiles {
            do {
                let body = try DurableFile.read(directory + "/" + info.path, kind: "snapshot")
                let (end, anchor) = try snapshotAnchor(info, body: body, store: store)
                if end > endOffset {
                    problems.append(
                        "\(info.path): snapshot is at offset \(end), past the end of the log (\(endOffset))")
                } else if anchoredBlock(endingAt: end, hash: anchor) == nil {
                    problems.append(
                        "\(info.path): snapshot does not belong to this log (its anchor hash is not the log's block at offset \(end))"
                    )
                }
            } catch {
                problems.append(
                    "\(error)".hasPrefix(info.path) || "\(error)".contains(info.path)
                        ? "\(error)" : "\(info.path): \(error)")
            }
        }
        let catalog = segments
        for name in ((try? SystemFile.list(directory + "/segments")) ?? []).sorted()
        where SegmentDefinition.isValidName(name) {
            do { _ = try catalog.history(name) } catch { problems.append("\(error)") }
        }
        return (problems, snapshotFiles.count)
    }
}
