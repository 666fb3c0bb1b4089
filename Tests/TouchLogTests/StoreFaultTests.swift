// The fault injector exists only in debug builds (TOUCHLOG_FAULT_INJECTION), which is how tests are built.
#if TOUCHLOG_FAULT_INJECTION
    import Glibc
    import Testing
    import TouchLogStorage
    @testable import TouchLog

    /// The store's derived and catalog files under the fault injector: a segment definition put, a query that saves a
    /// snapshot, and a second definition version, crashed at every file operation and followed by a power loss. After
    /// each, verify passes, every definition version is whole (old or new, never half), and answers are unchanged.
    @Suite(.serialized) struct StoreFaultTests {
        static let definitionV1 = try! SegmentDefinition(
            json: #"{"name":"s","match":"all","rules":[{"interaction":"click","touchpoint":{"startsWith":"t-1"}}]}"#)
        static let definitionV2 = try! SegmentDefinition(
            json:
                #"{"name":"s","match":"all","rules":[{"interaction":"any","touchpoint":{"startsWith":"t-"},"count":{"atLeast":2}}]}"#
        )
        static let times = [QueryTime(asOf: 1_000_000 + 200_000), QueryTime(asOf: 1_000_000 + 600_000)]

        static func events() -> [Event] {
            var random = TestRandom(seed: 5)
            return (0..<3_000).map { i in
                Event(
                    time: 1_000_000 + Int64(random.below(600_000)), profile: "p-\(random.below(300))",
                    type: random.chance(0.5) ? .view : .click, touchpoint: "t-\(random.below(20))")
            }
        }

        /// Appends the events (no faults), then runs the faulted steps; returns the answers for both definitions.
        static func faultedSteps(_ store: TouchLogStore) async {
            let directory = store.directory
            _ = try? await store.putSegment(definitionV1)
            if let reader = try? StoreReader(directory: directory) {
                reader.snapshotInterval = 500
                _ = try? reader.members(of: definitionV1, at: times[1])
            }
            _ = try? await store.putSegment(definitionV2)
        }

        /// How many file operations `steps` makes under `root` when nothing fails: the crash points to try.
        static func fileOperations(under root: String, _ steps: () async -> Void) async -> Int {
            let counter = FaultInjector.install(root: root)
            await steps()
            let count = counter.operations
            counter.uninstall()
            #expect(count > 10, "the steps make \(count) file operations")
            return count
        }

        static func answers(_ directory: String) throws -> [[String]] {
            let reader = try StoreReader(directory: directory)
            reader.snapshotInterval = nil
            return try [definitionV1, definitionV2].flatMap { d in try times.map { try reader.members(of: d, at: $0) } }
        }

        @Test func everyCrashPointOfDefinitionsAndSnapshotsLeavesAWholeStore() async throws {
            let reference = TemporaryDirectory()
            let events = Self.events()
            let referenceStore = try TouchLogStore(directory: reference.path + "/s", blockEvents: 256)
            try await referenceStore.append(events)
            let expected = try Self.answers(reference.path + "/s")
            let count = await Self.fileOperations(under: reference.path + "/s") {
                await Self.faultedSteps(referenceStore)
                referenceStore.close()
            }

            var runs = 0
            for point in 0..<count {
                for loss in [FaultInjector.PowerLoss.dropUnsynced, .garbage] {
                    let dir = TemporaryDirectory()
                    let store = dir.path + "/s"
                    let writer = try TouchLogStore(directory: store, blockEvents: 256)
                    try await writer.append(events)
                    let injector = FaultInjector.install(root: store)
                    injector.fail(at: point, .crash(tornAt: 512))
                    await Self.faultedSteps(writer)
                    writer.close()
                    let label =
                        "crash at \(injector.operationLog.dropFirst(point).first ?? "operation \(point)"), \(loss)"
                    injector.powerLoss(loss, seed: UInt64(point))
                    injector.uninstall()

                    let report = try StoreVerifier.verify(directory: store)
                    #expect(report.isIntact, "\(label): \(report.log.problems) \(report.otherProblems)")
                    let versions = (try? SegmentCatalog(layout: StoreLayout(root: store)).history("s")) ?? []
                    #expect(
                        versions.allSatisfy {
                            $0.definition == Self.definitionV1 || $0.definition == Self.definitionV2
                        }, "\(label)")
                    #expect(try Self.answers(store) == expected, "\(label)")
                    // The writer carries on: the definition can be put again and queries save snapshots again.
                    try await TouchLogStore(directory: store).putSegment(Self.definitionV2)
                    let reader = try StoreReader(directory: store)
                    reader.snapshotInterval = 500
                    _ = try reader.members(of: Self.definitionV2, at: Self.times[1])
                    #expect(try StoreVerifier.verify(directory: store).isIntact, "\(label): after carrying on")
                    runs += 1
                }
            }
            print(
                "fault injection: \(count) crash points of definition puts and snapshot saves x 2 kinds of power loss = \(runs) stores checked"
            )
        }

        /// Erasures under the fault injector: an erasure of two profiles, an append that brings one of them back as a
        /// new profile, and an erasure of a third, crashed at every file operation and followed by each kind of power
        /// loss. After each, the writer reopens (finishing what the crash cut short); the store verifies intact; each
        /// erasure is whole (both of its profiles erased, or neither), and one that returned is erased; an erased
        /// profile is no member and has no pad left (verify checks that), one not erased still reads back.
        @Test func everyCrashPointOfAnErasureLeavesEachProfileReadableOrErased() async throws {
            let segment = try SegmentDefinition(
                json: #"{"name":"e","match":"all","rules":[{"interaction":"any","touchpoint":{"startsWith":"t-"}}]}"#)
            let events = (0..<600).map { i in
                Event(time: 1_000 + Int64(i), profile: "p-\(i % 60)", type: .click, touchpoint: "t-\(i % 7)")
            }
            let returning = [Event(time: 5_000, profile: "p-1", type: .view, touchpoint: "t-9")]
            let everyone = (0..<60).map { "p-\($0)" }
            /// The faulted steps; returns which erasures returned.
            func steps(_ store: TouchLogStore) async -> [Bool] {
                let first = (try? await store.erase(profiles: ["p-1", "p-2"], reason: "first")) != nil
                _ = try? await store.append(returning)
                let second = (try? await store.erase(profiles: ["p-3"], reason: "second")) != nil
                return [first, second]
            }
            func fresh(_ path: String) async throws -> TouchLogStore {
                let store = try TouchLogStore(directory: path, blockEvents: 64)
                try await store.append(events)
                try await store.putSegment(segment)
                return store
            }
            let reference = TemporaryDirectory()
            let referenceStore = try await fresh(reference.path + "/s")
            let count = await Self.fileOperations(under: reference.path + "/s") {
                #expect(await steps(referenceStore) == [true, true])
                referenceStore.close()
            }

            var runs = 0
            for point in 0..<count {
                for loss in FaultInjector.PowerLoss.allCases {
                    let dir = TemporaryDirectory()
                    let path = dir.path + "/s"
                    let writer = try await fresh(path)
                    let injector = FaultInjector.install(root: path)
                    injector.fail(at: point, .crash(tornAt: 512))
                    let returned = await steps(writer)
                    writer.close()
                    let label =
                        "crash at \(injector.operationLog.dropFirst(point).first ?? "operation \(point)"), \(loss)"
                    injector.powerLoss(loss, seed: UInt64(point))
                    injector.uninstall()

                    let reopened = try TouchLogStore(directory: path)
                    let report = try StoreVerifier.verify(directory: path)
                    #expect(report.isIntact, "\(label): \(report.log.problems) \(report.otherProblems)")
                    let reader = try StoreReader(directory: path)
                    let erasures = reader.erasures.records.map(\.reason)
                    #expect(
                        erasures == ["first", "second"] || erasures == ["first"] || erasures.isEmpty,
                        "\(label): \(erasures)")
                    for (k, didReturn) in returned.enumerated() where didReturn {
                        #expect(erasures.count > k, "\(label): erasure \(k) returned and is gone")
                    }
                    let erased = Set(erasures.isEmpty ? [] : ["p-2"] + (erasures.count == 2 ? ["p-3"] : []))
                    let members = try reader.members(of: segment, at: QueryTime(asOf: 10_000))
                    let back = try reader.events(matching: ReplayFilter(profiles: ["p-1"])).contains {
                        $0.event.time == 5_000
                    }
                    #expect(
                        Set(members)
                            == Set(everyone).subtracting(erased).subtracting(erasures.isEmpty || back ? [] : ["p-1"]),
                        "\(label)")
                    // Each profile not erased reads back with its events; the erased ones' events are anonymous.
                    let named = Set(try reader.events().map(\.event.profile))
                    #expect(
                        named.isDisjoint(with: erased)
                            && named.isSuperset(of: Set(everyone).subtracting(erased).subtracting(["p-1"])), "\(label)")
                    // The writer carries on.
                    try await reopened.append([Event(time: 9_000, profile: "p-4", type: .click, touchpoint: "t-1")])
                    try await reopened.erase(profiles: ["p-4"])
                    reopened.close()
                    #expect(try StoreVerifier.verify(directory: path).isIntact, "\(label): after carrying on")
                    runs += 1
                }
            }
            print(
                "fault injection: \(count) crash points of erasures x \(FaultInjector.PowerLoss.allCases.count) kinds of power loss = \(runs) stores checked"
            )
        }
    }
#endif
