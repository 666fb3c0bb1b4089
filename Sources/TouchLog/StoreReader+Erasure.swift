import TouchLogStorage

/// An erasure the log records (format 3).
public struct ErasureInfo: Sendable, Equatable {
    /// When it was committed (its recorded time).
    public var recorded: Int64
    /// The internal ids of the profiles it erased, ascending.
    public var profiles: [Int]
    /// The reason given for it (may be empty).
    public var reason: String
    /// The chain head just before it: what `verify` printed before the erasure.
    public var headBefore: BlockHash
}

/// The profiles a format-3 log records as erased, read from its markers.
struct Erasures: Sendable {
    /// How many of the log's markers have been read.
    var markersRead = 0
    var profiles = Set<Int>()
    /// Each erasure, in log order.
    var records: [ErasureInfo] = []
}

extension StoreReader {
    /// Reads the erasure records of markers committed since the last call. When there are new ones, the profile
    /// strings this reader holds are dropped (read again, the erased ones are empty).
    func readErasures() throws(TouchLogError) {
        let markers = log.markers
        guard erasures.markersRead < markers.count else { return }
        var found = false
        for marker in markers[erasures.markersRead...] {
            let metadata = try storage { () throws(StorageError) in try log.metadata(of: marker) } ?? []
            let record: ErasureRecord?
            do { record = try ErasureRecord(metadata: metadata) } catch {
                throw TouchLogError(
                    code: .corrupt, message: "\(log.location(of: marker)): bad erasure record: \(error)")
            }
            guard let record else { continue }
            erasures.records.append(
                ErasureInfo(
                    recorded: marker.header.maxRecorded, profiles: record.profiles, reason: record.reason,
                    headBefore: marker.header.previousHash))
            erasures.profiles.formUnion(record.profiles)
            found = true
        }
        erasures.markersRead = markers.count
        if found && dictionary.profiles.count > 0 {
            dictionary.profiles = StringTable()
            dictionary.profileBlocks = 0
        }
    }

    /// The store's key file (format 3), opened at the first call.
    func profileKeys() throws(TouchLogError) -> ProfileKeyFile {
        if let keyFile { return keyFile }
        let keys = try ProfileKeyFile(path: StoreLayout(root: directory).profileKeys, writable: false)
        keyFile = keys
        return keys
    }

    /// Format 3: turns the raw new-profiles section of `location` (sealed) into the plain front-coded shape of
    /// format 2, erased profiles empty. Format 2: leaves it as it is.
    func openProfiles(_ raw: inout [UInt8], of location: BlockLocation, _ summary: BlockSummary) throws(TouchLogError) {
        guard location.header.version >= 3 else { return }
        try Self.openProfiles(
            &raw, of: location, summary, keys: try profileKeys(), erased: erasures.profiles, reader: log)
    }

    /// ``openProfiles(_:of:_:)`` with the key file and the erased profiles given, for any thread (`reader` names
    /// the block in an error).
    static func openProfiles(
        _ raw: inout [UInt8], of location: BlockLocation, _ summary: BlockSummary, keys: ProfileKeyFile,
        erased: Set<Int>, reader: some BlockBodyReading
    ) throws(TouchLogError) {
        guard location.header.version >= 3 else { return }
        do { _ = try keys.open(&raw, summary, erased: erased) } catch {
            throw TouchLogError(
                code: .corrupt, message: "\(reader.location(of: location)): bad sealed profiles: \(error)")
        }
    }
}
