// The fuzz targets exist only in debug builds (TOUCHLOG_FUZZ_TARGETS), which is how tests are built.
#if TOUCHLOG_FUZZ_TARGETS
    import Glibc
    import Testing
    import TouchLogStorage
    import TouchLogTestSupport
    @testable import TouchLog

    /// Replays every saved fuzz input (`Fixtures/fuzz/TARGET/`: the seed corpus and every input that once broke a
    /// target) through the fuzz targets, and runs a small deterministic mutation fuzz of the seeds, so that a normal
    /// test run keeps the fuzzers' findings fixed. The long runs are `Tools/fuzz`.
    /// Serialized: the ingest targets share one scratch store per process.
    @Suite(.serialized) struct FuzzCorpusTests {
        static func inputs(_ target: FuzzTarget) -> [(name: String, bytes: [UInt8])] {
            let directory = fixturePath("fuzz/" + target.rawValue, from: #filePath)
            let names = ((try? SystemFile.list(directory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            return names.map { name in
                let file = try! SystemFile.open(directory + "/" + name, .readOnly)
                defer { file.close() }
                return (name, try! file.read(at: 0, count: Int(try! file.size())))
            }
        }

        @Test(arguments: FuzzTarget.allCases)
        func savedInputsKeepEveryProperty(_ target: FuzzTarget) {
            let inputs = Self.inputs(target)
            #expect(!inputs.isEmpty, "Fixtures/fuzz/\(target.rawValue) has no seed inputs")
            for input in inputs {
                let problem = input.bytes.withUnsafeBytes { target.run($0) }
                #expect(problem == nil, "\(target.rawValue)/\(input.name): \(problem ?? "")")
            }
        }

        /// A few hundred mutations of each seed (bit flips, byte changes, cuts, duplicated and spliced ranges), the kinds
        /// libFuzzer starts with: a cheap stand-in for Tools/fuzz in every CI run.
        @Test(arguments: FuzzTarget.allCases)
        func mutatedSeedsKeepEveryProperty(_ target: FuzzTarget) {
            var random = SplitMix64(seed: 0xF022 &+ UInt64(target.rawValue.utf8.count))
            let seeds = Self.inputs(target).map(\.bytes).filter { !$0.isEmpty }
            let rounds = target == .logFile ? 150 : 400
            for round in 0..<rounds {
                var bytes = seeds[round % seeds.count]
                for _ in 0...random.below(4) { Self.mutate(&bytes, &random) }
                let problem = bytes.withUnsafeBytes { target.run($0) }
                #expect(
                    problem == nil, "\(target.rawValue) round \(round): \(problem ?? "") for bytes \(bytes.prefix(200))"
                )
            }
        }

        static func mutate(_ bytes: inout [UInt8], _ random: inout SplitMix64) {
            guard !bytes.isEmpty else {
                bytes = random.bytes(1 + random.below(16))
                return
            }
            let at = random.below(bytes.count)
            switch random.below(6) {
            case 0: bytes[at] ^= UInt8(1) << UInt8(random.below(8))
            case 1: bytes[at] = [0x00, 0xFF, 0x7F, 0x80, 0x22, 0x2C, 0x0A, 0x5C, 0x7B, 0x7D][random.below(10)]
            case 2: bytes.removeSubrange(at..<min(bytes.count, at + 1 + random.below(64)))
            case 3:
                let end = min(bytes.count, at + 1 + random.below(32))
                bytes.insert(contentsOf: Array(bytes[at..<end]), at: random.below(bytes.count))
            case 4: bytes.insert(contentsOf: random.bytes(1 + random.below(8)), at: at)
            default: bytes.removeSubrange(at...)
            }
        }
    }

    /// The seeds of the `grouped-block` target: format-2 blocks of random events in the target's input layout. They
    /// are committed in `Fixtures/fuzz/grouped-block/`; `TOUCHLOG_WRITE_FUZZ_SEEDS=1` writes them again.
    @Suite struct GroupedBlockSeedTests {
        static func seed(_ events: [Event]) throws -> [UInt8] {
            var dictionary = StoreDictionary()
            var scratch = EventBlockCodec.EncodeScratch()
            let batch = try EventBatch(events)
            let block = GroupedBlockCodec.encode(
                GroupedBlockCodec.prepare(batch, range: 0..<batch.count, scratch: &scratch), dictionary: &dictionary)
            var bytes: [UInt8] = []
            func append(_ value: UInt64, _ count: Int) {
                for k in 0..<count { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))) }
            }
            append(UInt64(block.count), 4)
            append(UInt64(bitPattern: block.minTime), 8)
            append(UInt64(bitPattern: block.maxTime), 8)
            append(UInt64(block.summary!.count), 4)
            return bytes + block.summary! + block.payload
        }

        @Test func theSeedsAreBlocksTheTargetAccepts() throws {
            let seeds = try [(1, 1), (7, 2), (60, 3), (400, 4)].map { count, seed in
                try Self.seed(randomEvents(count, seed: UInt64(seed)))
            }
            for seed in seeds {
                #expect(seed.withUnsafeBytes { FuzzTarget.groupedBlock.run($0) } == nil)
                let header = BlockHeader.formatTwo(
                    count: UInt32(seed[0]) | UInt32(seed[1]) << 8, storedLength: seed.count - 24,
                    summaryLength: Int(seed[20]) | Int(seed[21]) << 8,
                    minTime: Int64(
                        bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(seed[4 + $1]) << (8 * UInt64($1)) }),
                    maxTime: Int64(
                        bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(seed[12 + $1]) << (8 * UInt64($1)) }))
                #expect(
                    FuzzTarget.decodeGrouped(header, Array(seed[24...])) != nil, "a seed the target does not accept")
            }
            if getenv("TOUCHLOG_WRITE_FUZZ_SEEDS") != nil {
                let directory = fixturePath("fuzz", from: #filePath) + "/grouped-block"
                _ = mkdir(directory, 0o755)
                for (k, seed) in seeds.enumerated() {
                    let file = try SystemFile.open(directory + "/seed-\(k + 1)", .createReadWrite)
                    try file.truncate(to: 0)
                    try file.write(seed, at: 0)
                    file.close()
                }
            }
        }
    }
#endif
