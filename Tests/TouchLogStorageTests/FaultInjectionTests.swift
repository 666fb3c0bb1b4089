// The fault injector exists only in debug builds (TOUCHLOG_FAULT_INJECTION), which is how tests are built.
#if TOUCHLOG_FAULT_INJECTION
    import Glibc
    import Testing
    @testable import TouchLogStorage

    /// The append, commit, roll and recovery paths run through every crash point the fault injector can enumerate, each
    /// followed by each kind of power loss, and through an I/O error and a full disk at every operation.
    @Suite(.serialized) struct FaultInjectionTests {
        /// Commits of 1 to 3 blocks of 1,500 incompressible bytes, so that commits cross 512-byte and 4-KiB boundaries
        /// and the log (rolling at 8 KiB) spans several files.
        static let commits: [[UInt8]] = [[1], [2, 3], [4], [5, 6, 7], [8], [9, 10], [11]]

        static func block(_ marker: UInt8) -> RawBlock {
            var random = TestRandom(seed: UInt64(marker))
            return RawBlock(summary: [marker], body: random.bytes(1_500), count: 10, minTime: 1_000, maxTime: 1_010)
        }

        /// Runs the commits; returns how many were acknowledged, and whether any append reported success after one
        /// had failed (which must never happen: a writer that failed refuses all further work).
        static func scenario(_ dir: TemporaryDirectory) -> (acknowledged: Int, successAfterFailure: Bool) {
            guard
                let writer = try? LogWriter(
                    directory: dir.log, lockPath: dir.lock, options: LogOptions(rollSize: 8 << 10, clock: fixedClock))
            else {
                return (0, false)
            }
            defer { writer.close() }
            var acknowledged = 0
            var failed = false
            var successAfterFailure = false
            for commit in commits {
                do {
                    _ = try writer.append(commit.map(block))
                    if failed { successAfterFailure = true } else { acknowledged += 1 }
                } catch {
                    failed = true
                }
            }
            return (acknowledged, successAfterFailure)
        }

        /// After the faults: the log opens, holds a whole-commit prefix of the scenario that includes every acknowledged
        /// commit, verifies intact, and takes new appends.
        static func checkRecovered(_ dir: TemporaryDirectory, acknowledged: Int, _ label: String) {
            let writer: LogWriter
            do {
                writer = try LogWriter(
                    directory: dir.log, lockPath: dir.lock, options: LogOptions(rollSize: 8 << 10, clock: fixedClock))
            } catch {
                Issue.record("\(label): the log does not reopen: \(error)")
                return
            }
            defer { writer.close() }
            do {
                let reader = try LogReader(directory: dir.log)
                let markers = try reader.blocks.map { try reader.read($0)[0] }
                let boundaries = commits.indices.map { Array(commits[...$0].joined()) }
                let whole = markers.isEmpty || boundaries.contains(markers)
                #expect(whole, "\(label): the log holds blocks \(markers), not a prefix of whole commits")
                #expect(
                    markers.count >= (acknowledged == 0 ? 0 : boundaries[acknowledged - 1].count),
                    "\(label): \(acknowledged) commits were acknowledged but the log holds blocks \(markers)")
                let report = try LogVerifier.verify(directory: dir.log)
                #expect(report.isIntact, "\(label): verify: \(report.problems)")
                let end = writer.endOffset
                #expect(try writer.append([block(99)]) == end..<end + 10, "\(label): cannot append after recovery")
                #expect(
                    try LogVerifier.verify(directory: dir.log).isIntact,
                    "\(label): damaged by the append after recovery")
            } catch {
                Issue.record("\(label): \(error)")
            }
        }

        static func operationCount() -> Int {
            let dir = TemporaryDirectory()
            let injector = FaultInjector.install(root: dir.path)
            defer { injector.uninstall() }
            #expect(scenario(dir).acknowledged == commits.count)
            return injector.operations
        }

        @Test func everyCrashPointWithEveryKindOfPowerLossRecoversEveryAcknowledgedCommit() {
            let count = Self.operationCount()
            #expect(count > 30, "the scenario makes \(count) file operations")
            let kinds: [(FaultInjector.Failure, FaultInjector.PowerLoss)] = [
                (.crash(tornAt: nil), .dropUnsynced), (.crash(tornAt: 512), .tornAt512),
                (.crash(tornAt: 4096), .tornAt4K), (.crash(tornAt: 512), .garbage),
            ]
            var runs = 0
            for point in 0..<count {
                for (failure, loss) in kinds {
                    let dir = TemporaryDirectory()
                    let injector = FaultInjector.install(root: dir.path)
                    injector.fail(at: point, failure)
                    let (acknowledged, _) = Self.scenario(dir)
                    let log = injector.operationLog
                    injector.powerLoss(loss, seed: UInt64(point))
                    injector.uninstall()
                    Self.checkRecovered(
                        dir, acknowledged: acknowledged,
                        "crash at \(log[min(point, log.count - 1)]), \(failure), \(loss)")
                    runs += 1
                }
            }
            #expect(runs == count * 4)
            print("fault injection: \(count) crash points x 4 kinds of power loss = \(runs) recoveries checked")
        }

        /// A crash during recovery itself (cutting a torn tail, removing a leftover file): every crash point of the
        /// reopen after every crash point of the appends, each followed by a power loss that keeps torn data.
        @Test func aCrashDuringRecoveryIsRecoveredFromToo() {
            let count = Self.operationCount()
            var recoveries = 0
            for point in 0..<count {
                let dir = TemporaryDirectory()
                let injector = FaultInjector.install(root: dir.path)
                injector.fail(at: point, .crash(tornAt: 512))
                let (acknowledged, _) = Self.scenario(dir)
                injector.powerLoss(.tornAt512, seed: UInt64(point))
                injector.uninstall()
                let snapshot = TemporaryDirectory()
                _ = system("cp -a '\(dir.path)/.' '\(snapshot.path)/'")
                // Count the reopen's operations on a copy, then crash at each of them.
                let counter = FaultInjector.install(root: snapshot.path)
                (try? LogWriter(directory: snapshot.log, lockPath: snapshot.lock))?.close()
                let reopenOperations = counter.operations
                counter.uninstall()
                for reopenPoint in 0..<reopenOperations {
                    let attempt = TemporaryDirectory()
                    _ = system("cp -a '\(dir.path)/.' '\(attempt.path)/'")
                    let crasher = FaultInjector.install(root: attempt.path)
                    crasher.fail(at: reopenPoint, .crash(tornAt: nil))
                    (try? LogWriter(directory: attempt.log, lockPath: attempt.lock))?.close()
                    let log = crasher.operationLog
                    crasher.powerLoss(.dropUnsynced)
                    crasher.uninstall()
                    Self.checkRecovered(
                        attempt, acknowledged: acknowledged,
                        "crash at append operation \(point), then at \(log[min(reopenPoint, log.count - 1)]) of the reopen"
                    )
                    recoveries += 1
                }
            }
            #expect(recoveries > 0)
            print("fault injection: \(recoveries) crashes during recovery checked")
        }

        @Test func anIOErrorOrAFullDiskAtAnyOperationNeverLosesAnAcknowledgedCommit() {
            let count = Self.operationCount()
            defer {
                print(
                    "fault injection: \(count) operations x EIO/ENOSPC, once/persistent = \(count * 4) failures checked"
                )
            }
            for point in 0..<count {
                for failure in [
                    FaultInjector.Failure.error(EIO, persistent: false), .error(ENOSPC, persistent: false),
                    .error(EIO, persistent: true), .error(ENOSPC, persistent: true),
                ] {
                    let dir = TemporaryDirectory()
                    let injector = FaultInjector.install(root: dir.path)
                    injector.fail(at: point, failure)
                    let (acknowledged, successAfterFailure) = Self.scenario(dir)
                    let log = injector.operationLog
                    injector.uninstall()
                    let label = "\(failure) at \(log[min(point, log.count - 1)])"
                    #expect(!successAfterFailure, "\(label): an append reported success after one had failed")
                    Self.checkRecovered(dir, acknowledged: acknowledged, label)
                }
            }
        }

        /// A failed fsync stops the writer: the append that asked for it fails, and so does every later one until the
        /// log is reopened (the data may or may not be on disk; only a reopen can tell).
        @Test func aFailedFsyncStopsTheWriter() throws {
            let dir = TemporaryDirectory()
            let writer = try LogWriter(directory: dir.log, lockPath: dir.lock, options: LogOptions(clock: fixedClock))
            #expect(try writer.append([Self.block(1)]) == 0..<10)
            let injector = FaultInjector.install(root: dir.path)
            let before = injector.operations
            #expect(throws: StorageError.self) {
                injector.fail(at: before + 1, .error(EIO, persistent: false))  // the write succeeds, its fsync fails
                return try writer.append([Self.block(2)])
            }
            injector.uninstall()
            #expect(throws: StorageError.self) { try writer.append([Self.block(3)]) }
            writer.close()
            let reopened = try LogWriter(directory: dir.log, lockPath: dir.lock)
            #expect(reopened.endOffset == 10 || reopened.endOffset == 20)
            #expect(try LogVerifier.verify(directory: dir.log).isIntact)
        }
    }
#endif
