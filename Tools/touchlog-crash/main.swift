// touchlog-crash: kills a writer with SIGKILL at random moments and checks the store after each kill.
//
//   touchlog-crash run --store DIR [--kills N] [--seed S] [--max-delay-ms MS] [--fresh-every K]
//   touchlog-crash writer DIR SEED        (started by `run`; appends until killed, printing each acknowledged commit)
//
// The writer appends from three tasks at once (group commit), in batches of 1 to 5,000 events split into blocks of
// 256, into log files that roll at 256 KiB, so kills land in single- and multi-block commits, in shared fsyncs, in
// file rolls, and (for the shortest delays) in the store's open and recovery. Each event names its batch: profile
// `BATCH/i/n` is event i of n of batch BATCH. Only after `append` returns does the writer print `ack BATCH FROM END`.
// A fourth task appends one-event batches (`…v…`) and erases each profile right after, printing `erased BATCH` once
// `erase` returns, so kills also land inside erasures (their commit, the zeroing of the pads, its sync).
//
// After each kill `run` opens the store as a writer would (recovering it), then checks:
// - every acknowledged batch is there, whole, at the offsets its acknowledgement gave;
// - every batch in the log is whole and in order (no partial commit, no event from nowhere), offsets have no gaps;
//   an erased event (its profile gone) is the one event of an acknowledged erasable batch;
// - every acknowledged erasure holds: its event is erased;
// - `verify` finds the log, key file, snapshots and definitions intact (so no erased profile has a pad left).
// Exit 0 when every check passed after every kill, 1 at the first failure (with the store left for inspection).
import Glibc
import TouchLog
import TouchLogRandom
import TouchLogStorage

func say(_ text: String, to fd: Int32 = 1) {
    let line = text + "\n"
    _ = line.withCString { write(fd, $0, strlen($0)) }
}

func fail(_ text: String, code: Int32 = 1) -> Never {
    say("touchlog-crash: " + text, to: 2)
    exit(code)
}

func nowMs() -> Int64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
}

/// Event `i` of a batch of `n` named `batch`: everything about it follows from those three.
func event(_ batch: String, _ i: Int, _ n: Int) -> Event {
    let type = EventType(rawValue: UInt8(i % 3))!
    return Event(
        time: 1_654_000_000_000 + Int64(i) * 1000, profile: "\(batch)/\(i)/\(n)", type: type,
        touchpoint: type == .conversion && i % 2 == 0 ? nil : "tp-\(i % 37)",
        value: type == .conversion ? Double(i) / 4 : nil)
}

// MARK: writer

func runWriter(directory: String, seed: UInt64) async -> Never {
    let store: TouchLogStore
    do {
        store = try TouchLogStore(directory: directory, options: LogOptions(rollSize: 256 << 10), blockEvents: 256)
    } catch {
        fail("writer cannot open the store: \(error)", code: 2)
    }
    let session = "\(getpid())-\(seed % 100_000)"
    await withTaskGroup(of: Void.self) { group in
        for task in 0..<3 {
            group.addTask {
                var random = SplitMix64(seed: seed &+ UInt64(task) &* 0x9E37_79B9)
                var number = 0
                while true {
                    let n = 1 + random.below(random.chance(0.15) ? 5000 : 300)
                    let batch = "s\(session).t\(task).b\(number)"
                    let events = (0..<n).map { event(batch, $0, n) }
                    do {
                        let offsets = try await store.append(events)
                        say("ack \(batch) \(offsets.lowerBound) \(offsets.upperBound)")
                    } catch {
                        fail("writer: append failed: \(error)", code: 2)
                    }
                    number += 1
                }
            }
        }
        group.addTask {
            var number = 0
            while true {
                let batch = "s\(session).v\(number)"
                do {
                    let offsets = try await store.append([event(batch, 0, 1)])
                    say("ack \(batch) \(offsets.lowerBound) \(offsets.upperBound)")
                    try await store.erase(profiles: [event(batch, 0, 1).profile], reason: "crash test")
                    say("erased \(batch)")
                } catch {
                    fail("writer: append or erase failed: \(error)", code: 2)
                }
                number += 1
            }
        }
    }
    exit(0)
}

// MARK: harness

/// What the harness knows of one store.
struct Acknowledged {
    /// Every acknowledged batch and its offsets.
    var offsets: [String: Range<UInt64>] = [:]
    /// Every whole batch found in the log so far, and where.
    var seen: [String: Range<UInt64>] = [:]
    /// Every acknowledged erasure: the batch whose one event's profile was erased.
    var erased: Set<String> = []
    /// The log up to here was checked event by event after an earlier kill; the block ending there had this hash.
    var checkedEnd: UInt64 = 0
    var checkedHash = BlockHash.zero
}

/// Starts the writer with its standard output on a pipe; returns its pid and the pipe's read end.
func spawnWriter(directory: String, seed: UInt64) -> (pid_t, Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { fail("pipe: \(String(cString: strerror(errno)))") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    posix_spawn_file_actions_addclose(&actions, fds[1])
    defer { posix_spawn_file_actions_destroy(&actions) }
    let executable = "/proc/self/exe"
    let arguments = [CommandLine.arguments[0], "writer", directory, String(seed)]
    var argv = arguments.map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, &argv, environ)
    guard rc == 0 else { fail("cannot start the writer: \(String(cString: strerror(rc)))") }
    close(fds[1])
    return (pid, fds[0])
}

/// Reads everything the (dead) writer wrote, and records each acknowledgement.
func readAcknowledgements(_ fd: Int32, into acked: inout Acknowledged) -> Int {
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        data += chunk[..<n]
    }
    close(fd)
    var count = 0
    for line in data.split(separator: 0x0A) {
        let parts = String(decoding: line, as: UTF8.self).split(separator: " ")
        // A line cut by the kill has no newline yet only if it is the last; its ack was never complete.
        if parts.count == 2 && parts[0] == "erased" {
            acked.erased.insert(String(parts[1]))
            continue
        }
        guard parts.count == 4, parts[0] == "ack", let from = UInt64(parts[2]), let end = UInt64(parts[3]) else {
            continue
        }
        acked.offsets[String(parts[1])] = from..<end
        count += 1
    }
    return count
}

/// Opens the store as a writer (recovering it) and checks every promise; returns what recovery cut, or fails.
/// Events before `acked.checkedEnd` were checked after an earlier kill: that they are unchanged follows from the hash
/// chain (the block ending there still has the hash it had, and verify checks every hash and link), so each check
/// decodes only what is new.
func check(directory: String, acked: inout Acknowledged, kill: Int) -> (recovery: RecoveryReport?, end: UInt64) {
    let recovery: RecoveryReport?
    // Before any acknowledgement the writer may have died while creating the store: open it as the next writer
    // would, completing it. After one, the store must exist.
    do { recovery = try TouchLogStore(directory: directory, create: acked.offsets.isEmpty).recovery } catch {
        fail("after kill \(kill): the store does not reopen: \(error)")
    }
    let events: [StoredEvent]
    let blocks: [BlockLocation]
    do {
        blocks = try LogReader(directory: directory + "/log").blocks
        events = try StoreReader(directory: directory).events(
            matching: ReplayFilter(fromOffset: acked.checkedEnd, includeErased: true))
    } catch {
        fail("after kill \(kill): the store cannot be read: \(error)")
    }
    if acked.checkedEnd > 0 {
        guard let block = blocks.first(where: { $0.header.endOffset == acked.checkedEnd }),
            block.header.hash == acked.checkedHash
        else {
            fail(
                "after kill \(kill): the log checked up to offset \(acked.checkedEnd) after an earlier kill has changed"
            )
        }
    }
    var current: (batch: Substring, n: Int, next: Int, from: UInt64)?
    for (position, stored) in events.enumerated() {
        guard stored.offset == acked.checkedEnd + UInt64(position) else {
            fail("after kill \(kill): offset \(stored.offset) at position \(acked.checkedEnd + UInt64(position))")
        }
        if stored.event.profile.isEmpty {
            // Erased: the one event of an acknowledged erasable batch (its erasure is only asked after its ack).
            guard current == nil,
                let batch = acked.offsets.first(where: {
                    $0.key.contains(".v") && $0.value == stored.offset..<(stored.offset + 1)
                })?.key,
                stored.event
                    == Event(
                        time: event(batch, 0, 1).time, profile: "", type: event(batch, 0, 1).type,
                        touchpoint: event(batch, 0, 1).touchpoint, value: event(batch, 0, 1).value)
            else {
                fail(
                    "after kill \(kill): offset \(stored.offset) holds an erased event of no acknowledged erasable batch"
                )
            }
            acked.seen[batch] = stored.offset..<(stored.offset + 1)
            continue
        }
        let parts = stored.event.profile.split(separator: "/")
        guard parts.count == 3, let i = Int(parts[1]), let n = Int(parts[2]),
            stored.event == event(String(parts[0]), i, n)
        else {
            fail("after kill \(kill): offset \(stored.offset) holds an event no writer wrote: \(stored.event)")
        }
        if let c = current {
            guard c.batch == parts[0], i == c.next else {
                fail(
                    "after kill \(kill): batch \(c.batch) stops at event \(c.next) of \(c.n) (offset \(stored.offset) is \(stored.event.profile))"
                )
            }
        } else {
            guard i == 0, acked.seen[String(parts[0])] == nil else {
                fail("after kill \(kill): offset \(stored.offset) starts inside or repeats batch \(parts[0])")
            }
            current = (parts[0], n, 0, stored.offset)
        }
        current!.next += 1
        if current!.next == n {
            acked.seen[String(parts[0])] = current!.from..<stored.offset + 1
            current = nil
        }
    }
    if let c = current { fail("after kill \(kill): the log ends inside batch \(c.batch) (\(c.next) of \(c.n) events)") }
    for (batch, offsets) in acked.offsets where acked.seen[batch] != offsets {
        fail(
            "after kill \(kill): acknowledged batch \(batch) at \(offsets) is \(acked.seen[batch].map { "at \($0)" } ?? "missing")"
        )
    }
    for batch in acked.erased {
        guard let offsets = acked.offsets[batch],
            let events = try? StoreReader(directory: directory).events(
                matching: ReplayFilter(
                    fromOffset: offsets.lowerBound, toOffset: offsets.lowerBound, includeErased: true)),
            events.map(\.event.profile) == [""]
        else { fail("after kill \(kill): the acknowledged erasure of batch \(batch) does not hold") }
    }
    do {
        let report = try StoreVerifier.verify(directory: directory)
        guard report.isIntact else {
            fail(
                "after kill \(kill): verify finds damage: \(report.log.problems.map(\.description) + report.otherProblems)"
            )
        }
    } catch {
        fail("after kill \(kill): verify fails: \(error)")
    }
    if let last = blocks.last {
        (acked.checkedEnd, acked.checkedHash) = (last.header.endOffset, last.header.hash)
    }
    return (recovery, acked.checkedEnd)
}

func runHarness(_ options: [String: String]) -> Never {
    guard let store = options["store"] else { fail("run needs --store DIR", code: 64) }
    func number(_ name: String, _ otherwise: Int) -> Int {
        guard let text = options[name] else { return otherwise }
        guard let value = Int(text), value > 0 else {
            fail("run: --\(name) needs a positive number, not \(text)", code: 64)
        }
        return value
    }
    let kills = number("kills", 50)
    let maxDelay = number("max-delay-ms", 250)
    let freshEvery = number("fresh-every", 25)
    let seed = UInt64(number("seed", Int(nowMs())))
    if let unknown = options.keys.first(where: {
        !["store", "kills", "max-delay-ms", "fresh-every", "seed"].contains($0)
    }) {
        fail("run: unknown option --\(unknown)", code: 64)
    }
    var random = SplitMix64(seed: seed)
    say("crash test: \(kills) kills, seed \(seed), store \(store)")
    var acked = Acknowledged()
    var totals = (acks: 0, events: 0 as UInt64, recoveries: 0, cutBytes: 0 as Int64, early: 0, stores: 0, erasures: 0)
    var storeIndex = -1
    var directory = ""
    let started = nowMs()
    for round in 1...kills {
        if (round - 1) % freshEvery == 0 {
            totals.erasures += acked.erased.count
            storeIndex += 1
            directory = "\(store)/store-\(storeIndex)"
            acked = Acknowledged()
            totals.stores += 1
        }
        // A third of the kills come early, while the writer starts, opens and recovers the store.
        let delay = random.chance(0.3) ? random.below(30) : 30 + random.below(max(1, maxDelay - 30))
        let (pid, output) = spawnWriter(directory: directory, seed: random.next())
        usleep(useconds_t(delay * 1000))
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let acks = readAcknowledgements(output, into: &acked)
        if status & 0x7F != SIGKILL {
            fail("kill \(round): the writer ended by itself (status \(status)) before the kill; see its message above")
        }
        if acks == 0 { totals.early += 1 }
        let (recovery, end) = check(directory: directory, acked: &acked, kill: round)
        totals.acks += acks
        if let recovery {
            totals.recoveries += 1
            totals.cutBytes += recovery.bytesRemoved
        }
        say(
            "kill \(round) after \(delay) ms: \(acks) commits acknowledged, log end \(end)"
                + (recovery.map {
                    ", recovery cut \($0.bytesRemoved) bytes (\($0.uncommittedBlocks) whole blocks of an unfinished commit)"
                } ?? ""))
        totals.events = max(totals.events, end)
    }
    totals.erasures += acked.erased.count
    let seconds = Double(nowMs() - started) / 1000
    say(
        """
        \(kills) kills in \(Double(Int(seconds * 10)) / 10) s over \(totals.stores) stores: every check passed. \
        \(totals.acks) acknowledged commits, all found whole; \(totals.erasures) acknowledged erasures, all holding; \
        \(totals.recoveries) recoveries cut \(totals.cutBytes) bytes of unfinished commits; \(totals.early) kills before the \
        first acknowledgement.
        """)
    exit(0)
}

let arguments = CommandLine.arguments
switch arguments.count > 1 ? arguments[1] : "" {
case "writer" where arguments.count == 4:
    guard let seed = UInt64(arguments[3]) else { fail("writer DIR SEED: bad seed", code: 64) }
    await runWriter(directory: arguments[2], seed: seed)
case "run":
    var options: [String: String] = [:]
    var rest = arguments.dropFirst(2)
    while let flag = rest.popFirst() {
        guard flag.hasPrefix("--"), let value = rest.popFirst() else {
            fail("run: expected --option VALUE, got \(flag)", code: 64)
        }
        options[String(flag.dropFirst(2))] = value
    }
    runHarness(options)
default:
    fail("usage: touchlog-crash run --store DIR [--kills N] [--seed S] [--max-delay-ms MS] [--fresh-every K]", code: 64)
}
