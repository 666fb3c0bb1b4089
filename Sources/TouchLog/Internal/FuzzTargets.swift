#if TOUCHLOG_FUZZ_TARGETS
    import TouchLogStorage

    /// What the fuzzer (`Tools/fuzz`, through `touchlog-fuzz`) feeds arbitrary bytes to, and what the tests replay the
    /// saved inputs of `Fixtures/fuzz/` through. Compiled only in debug builds and in the build `Tools/fuzz` makes
    /// (`TOUCHLOG_FUZZ_TARGETS`): a release build of TouchLog carries none of it.
    ///
    /// Each target must never crash, hang or leak on any input, and checks a property of every input it accepts;
    /// ``run(_:)`` returns a description of a broken property (the fuzzer then aborts and saves the input).
    package enum FuzzTarget: String, CaseIterable, Sendable {
        /// A block payload as the event decoder sees it after decompression, strict (verify) and lenient (reads).
        /// Property: a payload the strict decoder accepts re-encodes to the same events.
        case blockPayload = "block-payload"
        /// A stored payload: the first 3 bytes give the decompressed size (at most 16 MiB), the rest is LZ4 data.
        case storedBlock = "stored-block"
        /// A whole log file, opened by a reader, by `verify` and by a writer (which recovers it); then again with its
        /// checksums and hash chain recomputed, so that mutations reach the payloads and the recovery logic.
        /// Property: a file verify passes can be read and opened by a writer; what a reader serves, a writer opening the
        /// file keeps.
        case logFile = "log-file"
        /// JSONL input through `ingest` (scanner, parser, blocks, commit). Property: all or nothing, and every appended
        /// event comes back from `replay` as a JSON line that parses to the same event.
        case jsonl
        /// CSV input, the same way.
        case csv
        /// A segment definition file. Property: an accepted definition's canonical JSON parses to the same definition.
        case segmentDefinition = "segment-definition"
        /// A format-2 event block: its event count (4 bytes, little-endian), min and max time (8 bytes each), summary
        /// length (4 bytes), then its stored bytes (summary, body), decoded leniently and strictly with a dictionary of
        /// just the strings it introduces. Property: a block the strict decoder accepts re-encodes (with a fresh
        /// dictionary) to one that decodes strictly to the same events.
        case groupedBlock = "grouped-block"

        /// Runs the target on `data`; nil when every property held.
        package func run(_ data: UnsafeRawBufferPointer) -> String? {
            switch self {
            case .blockPayload: return Self.blockPayload(Array(data))
            case .storedBlock: return Self.storedBlock(data)
            case .logFile:
                let bytes = Array(data)
                let repaired = Self.withChecksumsRecomputed(bytes)
                return Self.logFile(bytes)
                    ?? (repaired == bytes ? nil : Self.logFile(repaired).map { "after recomputing checksums: \($0)" })
            case .jsonl: return Self.ingest(data, format: .jsonl)
            case .csv: return Self.ingest(data, format: .csv)
            case .segmentDefinition: return Self.segmentDefinition(data)
            case .groupedBlock: return Self.groupedBlock(Array(data))
            }
        }

        private static func groupedBlock(_ data: [UInt8]) -> String? {
            guard data.count >= 24 else { return nil }
            func integer(_ at: Int, _ bytes: Int) -> UInt64 {
                (0..<bytes).reduce(0) { $0 | UInt64(data[at + $1]) << (8 * UInt64($1)) }
            }
            let count = UInt32(integer(0, 4))
            let minTime = Int64(bitPattern: integer(4, 8))
            let maxTime = Int64(bitPattern: integer(12, 8))
            let summaryLength = Int(integer(20, 4))
            let stored = Array(data[24...])
            guard count > 0, minTime <= maxTime, summaryLength <= stored.count else { return nil }
            let header = BlockHeader.formatTwo(
                count: count, storedLength: stored.count, summaryLength: summaryLength, minTime: minTime,
                maxTime: maxTime)
            guard let decoded = decodeGrouped(header, stored) else { return nil }
            var fresh = StoreDictionary()
            var scratch = EventBlockCodec.EncodeScratch()
            let block = GroupedBlockCodec.encode(
                GroupedBlockCodec.prepare(decoded, range: 0..<decoded.count, scratch: &scratch), dictionary: &fresh)
            let again = block.summary! + block.payload
            let header2 = BlockHeader.formatTwo(
                count: UInt32(block.count), storedLength: again.count, summaryLength: block.summary!.count,
                minTime: block.minTime, maxTime: block.maxTime)
            guard let redecoded = decodeGrouped(header2, again) else {
                return "a block the strict decoder accepted re-encodes to one it refuses"
            }
            return sameEvents(decoded, redecoded)
        }

        /// The events of a format-2 block that introduces every string it uses (leniently first, which must not crash;
        /// then strictly), or nil when refused.
        static func decodeGrouped(_ header: BlockHeader, _ stored: [UInt8]) -> EventBatch? {
            let summaryLength = Int(header.summaryLength)
            guard let summary = try? BlockSummary(Array(stored[..<summaryLength]), header: header) else { return nil }
            var dictionary = StoreDictionary()
            var events = EventBatch()
            var scratch = GroupedBlockCodec.DecodeScratch()
            do {
                try stored.withDecodedBytes { bytes throws(DecodeError) in
                    let body = UnsafeRawBufferPointer(rebasing: bytes[summaryLength...])
                    var raw: [UInt8] = []
                    try GroupedBlockCodec.section(.newProfiles, of: summary, body: body, into: &raw)
                    try raw.withDecodedBytes { section throws(DecodeError) in
                        try dictionary.addProfiles(summary, section: section, strict: true)
                    }
                    try GroupedBlockCodec.section(.newTouchpoints, of: summary, body: body, into: &raw)
                    try raw.withDecodedBytes { section throws(DecodeError) in
                        try dictionary.addTouchpoints(summary, section: section, strict: true)
                    }
                    _ = try? GroupedBlockCodec.decode(
                        summary, body: body, dictionary: dictionary, into: &events, scratch: &scratch, strict: false)
                }
                try GroupedBlockCodec.decodeStored(
                    header, stored, dictionary: dictionary, into: &events, scratch: &scratch, strict: true)
            } catch {
                return nil
            }
            return events
        }

        private static func blockPayload(_ payload: [UInt8]) -> String? {
            _ = try? EventBlockCodec.decode(payload, strict: false)
            guard let batch = try? EventBlockCodec.decode(payload, strict: true), !batch.isEmpty else { return nil }
            let again: EventBatch
            do {
                again = try EventBlockCodec.decode(
                    EventBlockCodec.encode(batch, range: 0..<batch.count).payload, strict: true)
            } catch {
                return "a payload the strict decoder accepted re-encodes to one it refuses: \(error)"
            }
            return sameEvents(batch, again)
        }

        private static func storedBlock(_ data: UnsafeRawBufferPointer) -> String? {
            guard data.count >= 3 else { return nil }
            let size = Int(data[0]) | Int(data[1]) << 8 | Int(data[2]) << 16
            var payload = [UInt8](repeating: 0, count: size)
            let ok = payload.withUnsafeMutableBytes {
                LZ4.decompress(UnsafeRawBufferPointer(rebasing: data[3...]), into: $0)
            }
            return ok ? blockPayload(payload) : nil
        }

        /// `file` with the file header check, and each block's previous hash, block hash and header check, set to what
        /// they should be (blocks are found by walking the stored lengths; the walk stops at the first that does not fit).
        static func withChecksumsRecomputed(_ file: [UInt8]) -> [UInt8] {
            var bytes = file
            guard bytes.count >= LogFileHeader.size else { return bytes }
            bytes.replaceSubrange(24..<32, with: BlockHash.sha256(of: Array(bytes[0..<24])).bytes[0..<8])
            var position = LogFileHeader.size
            var previous = BlockHash.zero
            while position + BlockHeader.size <= bytes.count {
                let stored =
                    Int(bytes[position + 20]) | Int(bytes[position + 21]) << 8 | Int(bytes[position + 22]) << 16 | Int(
                        bytes[position + 23]) << 24
                guard stored <= bytes.count - position - BlockHeader.size else { break }
                bytes.replaceSubrange(position + 64..<position + 96, with: previous.bytes)
                let hash = BlockHash.sha256(
                    of: Array(
                        bytes[position..<position + 96]
                            + bytes[position + BlockHeader.size..<position + BlockHeader.size + stored]))
                bytes.replaceSubrange(position + 96..<position + 128, with: hash.bytes)
                bytes.replaceSubrange(
                    position + 128..<position + 136,
                    with: BlockHash.sha256(of: Array(bytes[position..<position + 128])).bytes[0..<8])
                previous = hash
                position += BlockHeader.size + stored
            }
            return bytes
        }

        private static func logFile(_ bytes: [UInt8]) -> String? {
            let store = FuzzScratch.shared.directory + "/log-file"
            let log = store + "/log"
            _ = try? SystemFile.makeDirectory(store)
            _ = try? SystemFile.makeDirectory(log)
            FuzzScratch.removeFiles(in: log)
            guard bytes.withUnsafeBytes({ FuzzScratch.write($0, to: log + "/00000000000000000000.tlog") }) else {
                return "cannot write the scratch log file"
            }

            var served: [StoredEvent]?
            if let reader = try? StoreReader(directory: store) { served = try? reader.events() }
            let intact = (try? StoreVerifier.verify(directory: store))?.isIntact ?? false
            if intact && served == nil { return "verify passes a log file that a reader cannot read" }
            guard let served else { return nil }
            // What a reader serves is committed: a writer opening the file (and cutting any unfinished tail) keeps all of it.
            // A writer may refuse only what verify calls damage (for instance a valid commit block after a bad one).
            do { try TouchLogStore(directory: store, create: false).close() } catch {
                return intact
                    ? "a reader served \(served.count) events from a log file verify passes but a writer refuses: \(error)"
                    : nil
            }
            let after = try? StoreReader(directory: store).events()
            if after != served { return "opening a writer changed the \(served.count) events a reader served" }
            if intact && (try? StoreVerifier.verify(directory: store))?.isIntact != true {
                return "a writer's recovery damaged an intact log"
            }
            return nil
        }

        private static func ingest(_ data: UnsafeRawBufferPointer, format: InputFormat) -> String? {
            let scratch = FuzzScratch.shared
            let input = scratch.directory + "/input." + format.rawValue
            guard FuzzScratch.write(data, to: input) else { return "cannot write the scratch input" }
            let before = scratch.store.endOffset
            let report: IngestReport
            do { report = try scratch.store.ingest([input], options: IngestOptions(format: format)) } catch {
                let after = (try? scratch.reader.refresh()).map { scratch.reader.endOffset }
                if error.code == .invalidInput || error.code == .notFound {
                    return after == before
                        ? nil
                        : "a refused input appended events (end offset \(before) -> \(after.map(String.init) ?? "?"))"
                }
                return "ingest failed with \(error)"
            }
            do { try scratch.reader.refresh() } catch { return "cannot reread the store: \(error)" }
            guard report.offsets.lowerBound == before, scratch.reader.endOffset == report.offsets.upperBound else {
                return
                    "ingest reported offsets \(report.offsets) but the log went from \(before) to \(scratch.reader.endOffset)"
            }
            var failure: String?
            do {
                try scratch.reader.forEachBlock(matching: ReplayFilter(fromOffset: before)) { block in
                    var line: [UInt8] = []
                    var parsed = EventBatch()
                    for i in 0..<block.events.count where failure == nil {
                        line.removeAll(keepingCapacity: true)
                        EventJSON.appendLine(block, i, to: &line)
                        if line.last == 0x0A { line.removeLast() }
                        parsed.removeAll()
                        let problem: String? = line.withUnsafeBytes { raw in
                            do throws(FieldProblem) { try JSONEventParser.parse(raw, into: &parsed) } catch {
                                return error.reason
                            }
                            return nil
                        }
                        if let problem {
                            failure =
                                "replayed line \(String(decoding: line, as: UTF8.self)) does not parse: \(problem)"
                        } else if parsed.event(at: 0) != block.events.event(at: i) {
                            failure =
                                "replayed line \(String(decoding: line, as: UTF8.self)) parses to \(parsed.event(at: 0)), not \(block.events.event(at: i))"
                        }
                    }
                }
            } catch { return "cannot replay the appended events: \(error)" }
            return failure
        }

        private static func segmentDefinition(_ data: UnsafeRawBufferPointer) -> String? {
            guard let definition = try? SegmentDefinition(json: String(decoding: data, as: UTF8.self)) else {
                return nil
            }
            let canonical = definition.json
            do {
                let again = try SegmentDefinition(json: canonical)
                if again != definition { return "canonical JSON \(canonical) parses to a different definition" }
                if again.json != canonical { return "canonical JSON is not stable: \(canonical) then \(again.json)" }
            } catch {
                return "canonical JSON \(canonical) of an accepted definition is refused: \(error)"
            }
            return nil
        }

        private static func sameEvents(_ a: EventBatch, _ b: EventBatch) -> String? {
            guard a.count == b.count else { return "\(a.count) events became \(b.count)" }
            for i in 0..<a.count where a.event(at: i) != b.event(at: i) {
                return "event \(i) \(a.event(at: i)) became \(b.event(at: i))"
            }
            return nil
        }
    }

    /// A directory of the fuzzing process (in /dev/shm when there is one, so that fsync costs nothing), with one store
    /// kept open across inputs.
    private final class FuzzScratch: @unchecked Sendable {
        static let shared = FuzzScratch()

        let directory: String
        let store: TouchLogStore
        let reader: StoreReader

        private init() {
            let base = SystemFile.isDirectory("/dev/shm") ? "/dev/shm" : (Platform.environment("TMPDIR") ?? "/tmp")
            directory = "\(base)/touchlog-fuzz-\(Platform.processID)-\(Platform.nowMilliseconds())"
            guard (try? SystemFile.makeDirectory(directory)) == true else {
                fatalError("cannot create a scratch directory in \(base)")
            }
            do {
                store = try TouchLogStore(directory: directory + "/store")
                reader = try StoreReader(directory: directory + "/store")
            } catch {
                fatalError("cannot create the scratch store: \(error)")
            }
        }

        /// Removes the files of `directory` (not its subdirectories).
        static func removeFiles(in directory: String) {
            for name in (try? SystemFile.list(directory)) ?? [] { try? SystemFile.remove(directory + "/" + name) }
        }

        static func write(_ data: UnsafeRawBufferPointer, to path: String) -> Bool {
            guard let file = try? SystemFile.open(path, .createReadWrite) else { return false }
            defer { file.close() }
            return (try? file.truncate(to: 0)) != nil && (try? file.write(data, at: 0)) != nil
        }
    }
#endif
