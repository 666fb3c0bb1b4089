import TouchLogStorage

/// What ``TouchLogStore/erase(profiles:reason:skipUnknown:)`` did.
public struct ErasureReport: Sendable, Equatable {
    /// The identifiers erased, in the order given (each once).
    public var erased: [String] = []
    /// The identifiers the store did not hold (only with `skipUnknown`; otherwise the erasure fails instead).
    public var unknown: [String] = []
    /// The chain head after the erasure's record (unchanged when nothing was erased).
    public var head: BlockHash = .zero

    package init(erased: [String] = [], unknown: [String] = []) {
        self.erased = erased
        self.unknown = unknown
    }
}

extension TouchLogStore {
    /// Forgets profiles (the right to erasure): after it returns, durably, no file under the store holds any of the
    /// identifiers in a form that can be turned back into it; segments never list them again, at any time, and the
    /// same identifier appended later is a new profile. Their events stay as anonymous facts. The erasure is
    /// recorded in the log (when, `reason`, the profiles' internal ids; no identifier), and the blocks already in
    /// the log are not changed, so every hash of the chain stays as it was.
    ///
    /// Needs a store of format 3, whose identifiers are sealed with a key of their own (<doc:Erasing>). Throws
    /// ``TouchLogError/Code-swift.struct/invalidInput`` for an empty or over-long identifier or reason, and
    /// ``TouchLogError/Code-swift.struct/notFound`` naming every identifier the store does not hold (erasing none)
    /// unless `skipUnknown`. Erasing many identifiers at once is one durable step.
    @discardableResult
    public func erase(profiles: [String], reason: String = "", skipUnknown: Bool = false) async throws(TouchLogError)
        -> ErasureReport
    {
        try await offload { () throws(TouchLogError) in
            try self.eraseNow(profiles: profiles, reason: reason, skipUnknown: skipUnknown)
        }
    }

    /// ``erase(profiles:reason:skipUnknown:)`` on the calling thread, which it blocks until the erasure is durable.
    /// `recorded`: the erasure's recorded time, when it comes from elsewhere (a cluster node applying a stream message).
    func eraseNow(profiles: [String], reason: String, skipUnknown: Bool, recorded: Int64? = nil) throws(TouchLogError)
        -> ErasureReport
    {
        var seen = Set<String>()
        let wanted = profiles.filter { seen.insert($0).inserted }
        for profile in wanted {
            let length = profile.utf8.count
            guard length > 0, length <= EventLimits.maxIdentifierBytes else {
                throw TouchLogError(
                    code: .invalidInput,
                    message: length == 0
                        ? "an empty profile identifier; nothing erased"
                        : "profile identifier of \(length) bytes, over the 256-byte limit; nothing erased")
            }
        }
        guard reason.utf8.count <= ErasureRecord.maxReasonBytes else {
            throw TouchLogError(
                code: .invalidInput,
                message:
                    "the reason is \(reason.utf8.count) bytes, over the \(ErasureRecord.maxReasonBytes)-byte limit; nothing erased"
            )
        }
        let encoder = try requireWriter().encoder
        guard encoder.keys != nil else {
            throw TouchLogError(
                code: .unsupported,
                message: "this store keeps profile identifiers in plain text (log format \(encoder.formatVersion)); "
                    + "erasure needs format 3, where each is sealed with a key of its own: `touchlog migrate` rewrites the store into it"
            )
        }
        if let kept = StoreMigration.archivedLog(in: directory) {
            throw TouchLogError(
                code: .unsupported,
                message: "the store keeps the log it was migrated from (\(kept.name)/), which holds profile "
                    + "identifiers in plain text: move it out of the store (with your audit records) before erasing")
        }
        let report = try withLogWriter { log throws(TouchLogError) -> ErasureReport in
            let ids = try encoder.profileIDs(of: wanted)
            var report = ErasureReport()
            var erasing: [Int] = []
            for (profile, id) in zip(wanted, ids) {
                if let id {
                    report.erased.append(profile)
                    erasing.append(id)
                } else {
                    report.unknown.append(profile)
                }
            }
            if !report.unknown.isEmpty && !skipUnknown {
                let shown = report.unknown.prefix(10).map { "\"\($0)\"" }.joined(separator: ", ")
                let more = report.unknown.count > 10 ? " and \(report.unknown.count - 10) more" : ""
                throw TouchLogError(
                    code: .notFound, message: "the store holds no profile \(shown)\(more); nothing erased")
            }
            guard !erasing.isEmpty else {
                report.head = log.headHash
                return report
            }
            // The commit point: once the record is in the log the profiles are erased; the pads are zeroed after it
            // (and by the next writer to open the store, if this one stops in between).
            try storage { () throws(StorageError) in
                try log.beginTransaction(
                    recorded: recorded.map { max($0, log.lastRecorded) },
                    metadata: ErasureRecord(profiles: erasing.sorted(), reason: reason).encoded())
                try log.commit()
            }
            report.head = log.headHash
            encoder.forget(profiles: erasing)
            let reader = try readers.makeReader()
            try Self.finishErasures(
                reader, of: Set(erasing), summaries: try reader.summaries(through: reader.log.blocks.count),
                keys: encoder.keys!)
            return report
        }
        return report
    }

    /// What a writer does to a format-3 store's key file when it opens the store: removes the pads of profiles no
    /// commit introduced (written for a commit a crash cut short), and finishes erasures a crash cut short.
    static func recoverKeys(_ reader: StoreReader, keys: ProfileKeyFile) throws(TouchLogError) {
        let summaries = try reader.summaries(through: reader.log.blocks.count)
        try keys.truncate(profiles: summaries.last.map { Int($0.firstNewProfile) + $0.newProfiles } ?? 0)
        try finishErasures(reader, summaries: summaries, keys: keys)
    }

    /// Zeroes the pads of the profiles `of` (default: every profile the log records as erased) whose pads are not
    /// zero yet, or whose record's check is stale, and syncs the key file: the second half of an erasure, also run
    /// when a writer opens a format-3 store (a crash may have come between the erasure's commit and the end of its
    /// zeroing).
    private static func finishErasures(
        _ reader: StoreReader, of profiles: Set<Int>? = nil, summaries: BlockSummaries,
        keys: ProfileKeyFile
    ) throws(TouchLogError) {
        let erased = (profiles ?? reader.erasures.profiles).sorted()
        guard !erased.isEmpty else { return }
        var changed = false
        var k = 0
        var raw: [UInt8] = []
        for (index, summary) in summaries.enumerated() where k < erased.count {
            let first = Int(summary.firstNewProfile)
            let end = first + summary.newProfiles
            var mine: [Int] = []
            while k < erased.count && erased[k] < end {
                if erased[k] >= first { mine.append(erased[k]) }
                k += 1
            }
            guard !mine.isEmpty else { continue }
            guard let (record, pads) = try keys.pads(from: first) else {
                throw TouchLogError(
                    code: .corrupt, message: "\(keys.path): no key record for profiles \(first)..<\(end)")
            }
            let location = reader.log.blocks[index]
            try StoreReader.readSection(
                .newProfiles, of: location, summary, reader: reader.log, stored: &reader.sectionBytes, into: &raw)
            let ranges: [Range<Int>]
            do {
                ranges = try raw.withDecodedBytes { section throws(DecodeError) in
                    try ProfileSealing.padRanges(section, count: summary.newProfiles)
                }
            } catch {
                throw TouchLogError(
                    code: .corrupt, message: "\(reader.log.location(of: location)): bad sealed profiles: \(error)")
            }
            // Zeroed already and checked as such: done. Otherwise (not begun, or cut short) the zeroing is done again.
            let erasedRanges = mine.map { ranges[$0 - first] }
            var zeroed = pads
            for range in erasedRanges { zeroed.replaceSubrange(range, with: repeatElement(0, count: range.count)) }
            guard zeroed != pads || record.padCheck != XXH3.hash(zeroed[...]) else { continue }
            try keys.zero(erasedRanges, inRecordFrom: first)
            changed = true
        }
        if changed { try keys.sync() }
    }
}
