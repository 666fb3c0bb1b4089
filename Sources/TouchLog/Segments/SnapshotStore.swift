import Glibc
import TouchLogStorage

/// A saved projection, as `snapshot list` shows it.
public struct SnapshotInfo: Sendable, Equatable {
    /// Relative to the store directory: `snapshots/KEY/OFFSET-WATERMARK-RECORDED.snap`.
    public var path: String
    /// The definition's key: the first 16 hex digits of the SHA-256 of its JSON.
    public var key: String
    public var endOffset: UInt64
    public var watermark: Int64
    public var recorded: Int64
    public var bytes: Int64
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

    static func key(_ definition: SegmentDefinition) -> String {
        String(BlockHash.sha256(of: Array(definition.json.utf8)).description.prefix(16))
    }

    static func fileName(endOffset: UInt64, watermark: Int64, recorded: Int64) -> String {
        func hex(_ v: Int64) -> String {
            let digits = String(UInt64(bitPattern: v), radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        let offset = String(endOffset)
        return String(repeating: "0", count: max(0, 20 - offset.count)) + offset + "-" + hex(watermark) + "-" + hex(recorded) + ".snap"
    }

    /// Every snapshot file, by key and then offset.
    func all() -> [SnapshotInfo] {
        var result: [SnapshotInfo] = []
        for key in ((try? listDirectory(directory)) ?? []).sorted() {
            for name in ((try? listDirectory(directory + "/" + key)) ?? []).sorted() {
                let parts = name.dropLast(5).split(separator: "-")
                guard name.hasSuffix(".snap"), parts.count == 3, let offset = UInt64(parts[0]),
                    let w = UInt64(parts[1], radix: 16), let r = UInt64(parts[2], radix: 16)
                else { continue }
                let path = "snapshots/\(key)/\(name)"
                result.append(SnapshotInfo(path: path, key: key, endOffset: offset, watermark: Int64(bitPattern: w),
                                           recorded: Int64(bitPattern: r), bytes: fileSize(root + "/" + path)))
            }
        }
        return result
    }

    /// Writes a snapshot of `projection`. Failures are returned, not thrown: a snapshot is only an optimisation.
    @discardableResult
    func save(_ projection: SegmentProjection, definition: SegmentDefinition) -> TouchLogError? {
        let folder = directory + "/" + Self.key(definition)
        if mkdir(folder, 0o755) == 0 { try? DurableFile.syncDirectory(directory) }
        let name = Self.fileName(endOffset: projection.endOffset, watermark: projection.watermark, recorded: projection.recorded)
        do {
            try DurableFile.write(encode(projection, definition: definition), kind: "snapshot", to: folder + "/" + name)
            return nil
        } catch {
            return error
        }
    }

    /// Loads a snapshot; throws `corrupt` when its checksum, contents or definition are wrong.
    func load(_ info: SnapshotInfo, definition: SegmentDefinition) throws(TouchLogError) -> SegmentProjection {
        let body = try DurableFile.read(root + "/" + info.path, kind: "snapshot")
        do {
            let projection = try decode(body, definition: definition)
            guard projection.endOffset == info.endOffset, projection.watermark == info.watermark, projection.recorded == info.recorded else {
                throw DecodeError(byte: 0, reason: "contents disagree with the file name")
            }
            return projection
        } catch let error as DecodeError {
            throw TouchLogError(code: .corrupt, message: "\(info.path): bad snapshot: \(error)")
        } catch {
            throw TouchLogError(code: .corrupt, message: "\(info.path): bad snapshot: \(error)")
        }
    }

    func encode(_ p: SegmentProjection, definition: SegmentDefinition) -> [UInt8] {
        var out = ByteWriter()
        out.byte(1)
        let json = Array(definition.json.utf8)
        out.varint(json.count)
        out.raw(json)
        out.varint(p.endOffset)
        out.raw(p.anchor.bytes)
        out.zigzag(p.watermark)
        out.zigzag(p.recorded)
        out.varint(p.profiles.count)
        for id in 0..<p.profiles.count {
            out.varint(p.profiles[id].count)
            out.raw(p.profiles[id])
        }
        for t in p.lastConversion { out.zigzag(t) }
        out.varint(p.leaves.count)
        for leaf in p.leaves {
            out.byte(leaf.isRecent ? 1 : 0)
            if leaf.isRecent {
                out.varint(leaf.recentTimes.count)
                for (g, t) in zip(leaf.recentProfiles, leaf.recentTimes) {
                    out.varint(UInt64(g))
                    out.zigzag(t)
                }
            } else {
                for c in leaf.counts { out.varint(UInt64(c)) }
                for f in leaf.firsts { out.zigzag(f) }
            }
        }
        return out.bytes
    }

    func decode(_ body: [UInt8], definition: SegmentDefinition) throws -> SegmentProjection {
        var input = ByteReader(body)
        guard try input.byte() == 1 else { throw input.fail("unknown snapshot version") }
        let jsonLength = try input.count(max: body.count, "definition length")
        guard Array(try input.take(jsonLength)) == Array(definition.json.utf8) else { throw input.fail("snapshot of another definition") }
        var p = SegmentProjection(definition: definition)
        p.endOffset = try input.varint()
        p.anchor = BlockHash(bytes: Array(try input.take(32)))
        p.watermark = try input.zigzag()
        p.recorded = try input.zigzag()
        let n = try input.count(max: body.count, "profile count")
        // Profiles were interned when the projection was built, so they are distinct: append them as they are;
        // the table builds its hash index in one pass on the first lookup.
        for _ in 0..<n {
            let length = try input.count(max: EventLimits.maxIdentifierBytes, "profile length")
            p.profiles.append(try input.take(length))
        }
        p.lastConversion = try (0..<n).map { _ in try input.zigzag() }
        guard try input.count(max: 1 << 16, "rule count") == p.leaves.count else { throw input.fail("rule count differs from the definition") }
        for l in p.leaves.indices {
            let recent = try input.byte() == 1
            guard recent == p.leaves[l].isRecent else { throw input.fail("rule \(l) has the wrong kind") }
            if recent {
                let m = try input.count(max: body.count, "recent events")
                for _ in 0..<m {
                    let g = try input.count(max: n - 1, "profile id")
                    p.leaves[l].recentProfiles.append(UInt32(g))
                    p.leaves[l].recentTimes.append(try input.zigzag())
                }
            } else {
                p.leaves[l].counts = try (0..<n).map { _ in UInt32(try input.count(max: Int(UInt32.max), "count")) }
                p.leaves[l].firsts = try (0..<n).map { _ in try input.zigzag() }
            }
        }
        guard input.isAtEnd else { throw input.fail("bytes after the last rule") }
        return p
    }
}

/// What the last query did, for tests, benchmarks and `--verbose` output.
public struct QueryReport: Sendable, Equatable {
    /// Offset of the snapshot the query started from (0 when it replayed from the start).
    public var snapshotOffset: UInt64 = 0
    /// Events in the blocks the query decoded.
    public var eventsRead: UInt64 = 0
    public var snapshotsWritten = 0
    /// Snapshots found damaged or foreign and ignored.
    public var snapshotsIgnored = 0
}

extension StoreReader {
    /// The newest snapshot of `definition` usable at `time`: watermark ≤ T, recorded ≤ K, anchored in this log.
    func newestUsableSnapshot(_ definition: SegmentDefinition, at time: QueryTime, report: inout QueryReport) -> SegmentProjection? {
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        let key = SnapshotStore.key(definition)
        let candidates = store.all().filter { info in
            info.key == key && info.endOffset > 0 && info.endOffset <= endOffset && info.watermark <= time.asOf
                && info.recorded <= (time.knownAt ?? .max)
        }
        for info in candidates.sorted(by: { $0.endOffset > $1.endOffset }) {
            guard let index = log.blockIndex(containing: info.endOffset - 1), log.blocks[index].header.endOffset == info.endOffset,
                let projection = try? store.load(info, definition: definition), projection.anchor == log.blocks[index].header.hash
            else {
                report.snapshotsIgnored += 1
                continue
            }
            return projection
        }
        return nil
    }

    /// Folds the whole log into `definition`'s projection and saves it as a snapshot; returns its info.
    public func createSnapshot(of definition: SegmentDefinition) throws -> SnapshotInfo? {
        var report = QueryReport()
        var projection = newestUsableSnapshot(definition, at: QueryTime(asOf: .max), report: &report) ?? SegmentProjection(definition: definition)
        guard projection.endOffset < endOffset else { return nil }
        let start = projection.endOffset == 0 ? 0 : log.blockIndex(containing: projection.endOffset) ?? log.blocks.count
        for location in log.blocks[start...] { projection.fold(try decode(location), header: location.header) }
        projection.prune()
        let store = SnapshotStore(layout: StoreLayout(root: directory))
        if let error = store.save(projection, definition: definition) { throw error }
        return store.all().first { $0.key == SnapshotStore.key(definition) && $0.endOffset == projection.endOffset }
    }

    /// Every snapshot in the store.
    public func snapshots() -> [SnapshotInfo] { SnapshotStore(layout: StoreLayout(root: directory)).all() }
}

extension StoreReader {
    /// The directory name under `snapshots/` of a definition's projection.
    public static func snapshotKey(_ definition: SegmentDefinition) -> String { SnapshotStore.key(definition) }

    /// Deletes all but the newest `keep` snapshots of each key in `currentKeys`, and every snapshot of other keys.
    /// Returns what was deleted.
    public func pruneSnapshots(keep: Int, currentKeys: Set<String>) throws -> [SnapshotInfo] {
        var deleted: [SnapshotInfo] = []
        let byKey = Dictionary(grouping: snapshots(), by: \.key)
        for (key, infos) in byKey {
            let sorted = infos.sorted { $0.endOffset > $1.endOffset }
            let doomed = currentKeys.contains(key) ? Array(sorted.dropFirst(keep)) : sorted
            for info in doomed {
                guard unlink(directory + "/" + info.path) == 0 else {
                    throw TouchLogError(code: .io, message: "cannot delete \(info.path): \(String(cString: strerror(errno)))")
                }
                deleted.append(info)
            }
            if doomed.count == sorted.count { rmdir(directory + "/snapshots/" + key) }
        }
        try DurableFile.syncDirectory(directory + "/snapshots")
        return deleted
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
                var input = ByteReader(body)
                guard try input.byte() == 1 else { throw DecodeError(byte: 0, reason: "unknown snapshot version") }
                let length = try input.count(max: body.count, "definition length")
                let definition = try SegmentDefinition(json: String(decoding: try input.take(length), as: UTF8.self))
                let projection = try store.load(info, definition: definition)
                if projection.endOffset > endOffset {
                    problems.append("\(info.path): snapshot is at offset \(projection.endOffset), past the end of the log (\(endOffset))")
                } else if let index = log.blockIndex(containing: projection.endOffset - 1),
                    log.blocks[index].header.endOffset != projection.endOffset || log.blocks[index].header.hash != projection.anchor
                {
                    problems.append("\(info.path): snapshot does not belong to this log (its anchor hash is not the log's block at offset \(projection.endOffset))")
                }
            } catch {
                problems.append("\(error)".hasPrefix(info.path) || "\(error)".contains(info.path) ? "\(error)" : "\(info.path): \(error)")
            }
        }
        let catalog = segments
        for name in ((try? listDirectory(directory + "/segments")) ?? []).sorted() where SegmentDefinition.isValidName(name) {
            do { _ = try catalog.history(name) } catch { problems.append("\(error)") }
        }
        return (problems, snapshotFiles.count)
    }
}
