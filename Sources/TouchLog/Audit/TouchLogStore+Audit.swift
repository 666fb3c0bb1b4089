import TouchLogStorage

/// Where the block an auditor noted (a chain head `verify` printed) is in the store, if it still holds it.
public struct AnchorCheck: Sendable, Equatable {
    /// The hash noted.
    public var anchor: BlockHash
    /// The log holding it: `log`, or the replaced log a migration kept (`log-format1`); nil when no committed block of
    /// the store has that hash.
    public var log: String?
    /// Its file and block index there (`log/00000000000000000000.tlog block 3`); nil when not found.
    public var block: String?
    /// The offset after the events committed up to and including it.
    public var endOffset: UInt64?
    /// Its recorded time.
    public var recorded: Int64?
    /// Blocks committed after it (0: it is still the chain head).
    public var blocksAfter: Int?

    /// True when the store still holds the block as a committed block.
    public var isFound: Bool { log != nil }

    /// One sentence: where it is, or that it is missing.
    public var summary: String {
        guard let log, let block, let endOffset, let recorded, let blocksAfter else {
            return "anchor \(anchor) is not a committed block of this store: its log was rebuilt or its end was cut off"
                + " after the anchor was noted"
        }
        let archived =
            log == "log" ? "" : " (the log `migrate` replaced and kept; the new chain's first commit names it)"
        return "anchor \(anchor): \(block)\(archived), committed \(Timestamp.format(recorded)), ending at offset "
            + "\(endOffset); "
            + (blocksAfter == 0
                ? "it is the chain head"
                : "\(blocksAfter) block\(blocksAfter == 1 ? " was" : "s were") committed after it")
    }

    /// Looks for each of `anchors` among the committed blocks of the store in `directory` (its log, then a replaced
    /// log that a migration kept), reading each log once. Reading a log checks every block header and the hash chain
    /// from its first block to its last.
    static func locate(_ anchors: [BlockHash], in directory: String) throws(TouchLogError) -> [AnchorCheck] {
        var checks = anchors.map { AnchorCheck(anchor: $0) }
        var logs = ["log"]
        if let kept = StoreMigration.archivedLog(in: directory) { logs.append(kept.name) }
        for name in logs where checks.contains(where: { !$0.isFound }) {
            let reader = try storage { () throws(StorageError) in try LogReader(directory: directory + "/" + name) }
            let all = (reader.blocks + reader.markers).sorted {
                ($0.fileIndex, $0.blockIndex) < ($1.fileIndex, $1.blockIndex)
            }
            var positions: [BlockHash: Int] = [:]
            for (index, block) in all.enumerated() { positions[block.header.hash] = index }
            for k in checks.indices where !checks[k].isFound {
                guard let index = positions[checks[k].anchor] else { continue }
                let found = all[index]
                checks[k].log = name
                checks[k].block = "\(name)/\(reader.files[found.fileIndex].name) block \(found.blockIndex)"
                checks[k].endOffset = found.header.endOffset
                checks[k].recorded = found.header.maxRecorded
                checks[k].blocksAfter = all.count - index - 1
            }
        }
        return checks
    }
}

/// What ``TouchLogStore/check(_:publicKey:)-(String,_)`` found: each part of the record that does not hold.
public struct AuditCheck: Sendable {
    /// The parts of a record a check compares.
    public enum Part: String, Sendable, Equatable {
        /// The record's bytes are not canonical: it was edited.
        case record
        /// The signature does not verify, or is not by the key given, or is missing when a key was given.
        case signature
        /// The store no longer holds the block the record is anchored to, at the offset the record says.
        case anchor
        /// The segment's version (or a referenced segment's) is missing or holds another definition.
        case version
        /// The recomputed member count differs.
        case members
        /// The recomputed member digest differs.
        case memberDigest
    }

    /// One part that does not hold, with a sentence saying how.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// Which part.
        public var part: Part
        /// How it differs.
        public var message: String
        /// `part: message`.
        public var description: String { "\(part.rawValue): \(message)" }
    }

    /// The parts that do not hold (empty: the record checks out).
    public var problems: [Problem] = []
    /// What was checked, a sentence each.
    public var notes: [String] = []
    /// Where the anchor is.
    public var anchor: AnchorCheck?

    /// True when every part holds.
    public var isValid: Bool { problems.isEmpty }

    mutating func fail(_ part: Part, _ message: String) { problems.append(Problem(part: part, message: message)) }
}

extension TouchLogStore {
    /// An audit record of the segment `name` (its current version) at `time`: its members' count and digest, pinned to
    /// the log's current end and chain head. `time.knownAt` nil means the latest recorded time, so the record stays
    /// reproducible after later appends. With `signingKey`, the record is signed. The members are folded from the log
    /// alone (no snapshot is read). Throws ``TouchLogError/Code-swift.struct/notFound`` when there is no such segment.
    public func audit(_ name: String, at time: QueryTime, signingKey: AuditSigningKey? = nil)
        async throws(TouchLogError) -> AuditRecord
    {
        let directory = self.directory
        return try await offload { () throws(TouchLogError) in
            try Self.audit(directory: directory, name: name, at: time, signingKey: signingKey)
        }
    }

    /// Recomputes the answer `record` states from this store, and checks its anchor, versions and signature (see
    /// ``check(_:publicKey:)-(String,_)``, which also checks that the text is byte for byte what touchlog wrote).
    public func check(_ record: AuditRecord, publicKey: AuditPublicKey? = nil) async throws(TouchLogError)
        -> AuditCheck
    {
        let directory = self.directory
        return try await offload { () throws(TouchLogError) in
            try Self.check(record, directory: directory, publicKey: publicKey)
        }
    }

    /// Checks the audit record `text` against this store: its bytes are canonical (any edited byte is found), its
    /// signature verifies (and, given `publicKey`, is by that key), the store still holds the block it is anchored to
    /// at the offset it names, the segment's version holds the same definition, and the members recomputed from the
    /// log (as of T, recorded by K, up to the record's offset) have the same count and digest. Throws
    /// ``TouchLogError/Code-swift.struct/invalidInput`` when `text` is not an audit record.
    public func check(_ text: String, publicKey: AuditPublicKey? = nil) async throws(TouchLogError) -> AuditCheck {
        let record = try AuditRecord(json: text)
        var check = try await check(record, publicKey: publicKey)
        let body = text.hasSuffix("\n") ? String(text.dropLast()) : text
        if body != record.json {
            check.problems.insert(
                AuditCheck.Problem(
                    part: .record,
                    message: "its bytes differ from the canonical form touchlog writes for the same fields "
                        + "(it was edited: reformatted, reordered or re-escaped)"),
                at: 0)
        }
        return check
    }

    static func audit(directory: String, name: String, at time: QueryTime, signingKey: AuditSigningKey?)
        throws(TouchLogError) -> AuditRecord
    {
        let catalog = SegmentCatalog(layout: StoreLayout(root: directory))
        let (version, resolved) = try catalog.current(name)
        var references: [AuditRecord.Reference] = []
        for referenced in resolved.referenced.keys.sorted() {
            references.append(.init(segment: referenced, version: try catalog.current(referenced).version))
        }
        let reader = try auditReader(directory)
        let knownAt = time.knownAt ?? reader.log.lastBlock?.header.maxRecorded ?? 0
        let members = try members(reader, resolved, asOf: time.asOf, knownAt: knownAt)
        var record = AuditRecord(
            segment: name, version: version, definition: try catalog.version(name, version), references: references,
            asOf: time.asOf, knownAt: knownAt, offset: reader.endOffset, chainHead: reader.headHash,
            members: members.count, memberDigest: AuditRecord.digest(of: members))
        if let signingKey { try record.sign(with: signingKey) }
        return record
    }

    /// A reader that folds the log alone: no snapshot is read or written.
    private static func auditReader(_ directory: String) throws(TouchLogError) -> StoreReader {
        let reader = try StoreReader(directory: directory)
        reader.snapshotInterval = nil
        reader.usesSnapshots = false
        return reader
    }

    private static func members(_ reader: StoreReader, _ definition: SegmentDefinition, asOf: Int64, knownAt: Int64)
        throws(TouchLogError) -> [String]
    {
        do { return try reader.members(of: definition, at: QueryTime(asOf: asOf, knownAt: knownAt)) } catch {
            throw TouchLogError(wrapping: error, "audit of \(definition.name) failed")
        }
    }

    static func check(_ record: AuditRecord, directory: String, publicKey: AuditPublicKey?) throws(TouchLogError)
        -> AuditCheck
    {
        var check = AuditCheck()
        // The signature.
        if let signature = record.signature, let signer = record.publicKey {
            if !signer.verifies(signature, of: record.signedBytes) {
                check.fail(
                    .signature,
                    "the signature does not verify with the record's public key \(signer.hex): "
                        + "the record was changed after it was signed")
            } else if let publicKey, publicKey != signer {
                check.fail(.signature, "signed by the key \(signer.hex), not by the given key \(publicKey.hex)")
            } else {
                check.notes.append(
                    "signature: verifies, key \(signer.hex)"
                        + (publicKey == nil ? " (no --public-key given to pin it)" : ""))
            }
        } else if publicKey != nil {
            check.fail(.signature, "the record is not signed, and a public key was given to check its signature")
        }
        // The anchor. (The reader, opened now, is the one the answer is recomputed with.)
        let reader = try auditReader(directory)
        let anchor = try AnchorCheck.locate([record.chainHead], in: directory)[0]
        check.anchor = anchor
        if !anchor.isFound {
            check.fail(
                .anchor,
                "the store no longer holds the block \(record.chainHead) the record is anchored to: its log was rebuilt "
                    + "or its end was cut off (the chain now ends at \(reader.headHash), offset \(reader.endOffset))")
        } else if anchor.endOffset != record.offset {
            check.fail(
                .anchor, "the anchored block ends at offset \(anchor.endOffset!), the record says \(record.offset)")
        } else {
            check.notes.append(anchor.summary)
        }
        // The versions: the segment's, and those of the segments it refers to.
        let catalog = SegmentCatalog(layout: StoreLayout(root: directory))
        var definition: SegmentDefinition?
        do throws(TouchLogError) {
            let stored = try catalog.version(record.segment, record.version)
            if stored != record.definition {
                check.fail(
                    .version,
                    "version \(record.version) of \"\(record.segment)\" in the store is not the definition the record holds"
                )
            } else {
                var pinned: [String: SegmentDefinition] = [:]
                for reference in record.references {
                    pinned[reference.segment] = try catalog.version(reference.segment, reference.version)
                }
                var resolving = stored
                resolving.referenced = pinned
                definition = try catalog.resolve(resolving)
                if Set(definition!.referenced.keys) != Set(pinned.keys) {
                    check.fail(.version, "the record's references are not the segments its definition refers to")
                    definition = nil
                }
            }
        } catch  where error.code == .notFound || error.code == .invalidInput {
            check.fail(.version, error.message)
        }
        // The answer, recomputed from the log as it was at the anchor (or, when the anchor is gone, from this log's
        // first `offset` events: whether the answer changed too).
        guard let definition else {
            check.notes.append("the members were not recomputed: the record's definition is not the store's")
            return check
        }
        guard reader.log.showPrefix(endingAt: record.offset) else {
            // (A found anchor ending elsewhere has failed above already.)
            if anchor.isFound && anchor.endOffset == record.offset {
                check.fail(.anchor, "no block of the log ends at offset \(record.offset)")
            }
            check.notes.append("the members were not recomputed: no block of this log ends at offset \(record.offset)")
            return check
        }
        if !anchor.isFound {
            check.notes.append(
                "the members were recomputed from this log's first \(record.offset) events, which are not the ones "
                    + "the record is anchored to")
        }
        let members = try members(reader, definition, asOf: record.asOf, knownAt: record.knownAt)
        let digest = AuditRecord.digest(of: members)
        let erased = reader.erasures.records.filter { $0.recorded > (anchor.recorded ?? .max) }.reduce(0) {
            $0 + $1.profiles.count
        }
        let why =
            erased == 0
            ? ""
            : " (\(erased) profile\(erased == 1 ? " was" : "s were") erased after the record was made, and an erased "
                + "profile is never listed again)"
        if members.count != record.members {
            check.fail(.members, "the record says \(record.members) members, the store gives \(members.count)\(why)")
        }
        if digest != record.memberDigest {
            check.fail(.memberDigest, "the record says \(record.memberDigest), the store gives \(digest)\(why)")
        } else {
            check.notes.append(
                "members: \(members.count), digest \(digest), recomputed from the log's first \(record.offset) events")
        }
        return check
    }
}
