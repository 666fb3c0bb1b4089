// In-process measurements for Tools/bench (the CLI numbers include process start and text parsing; these are
// what an embedding service sees). Prints one JSON object.
//
//   touchlog-bench scan STORE              decode every field of every block on one thread
//   touchlog-bench append STORE SCRATCH    append STORE's events (already parsed) to a new store at SCRATCH,
//                                          1M events per durable append, as [Event] and as a built EventBatch
//   touchlog-bench query STORE QUERIES     open STORE as a service would (TouchLogStore, the writer) and ask the
//                                          queries of the file QUERIES in order, one per line: `SEGMENT ASOF KNOWNAT`
//                                          (epoch ms; KNOWNAT `-` for everything recorded); prints each one's seconds,
//                                          member count and SHA-256 of the sorted members joined by newlines
//   touchlog-bench watch STORE SEGMENT     watch SEGMENT of STORE (a scratch copy: it is appended to) as of a clock at
//                                          its last event time, then append 50 commits of 1,000 events near that
//                                          time; per commit, the time until the watch's update arrives (with a full
//                                          query of the same time running beside it, which tells whether one is due),
//                                          and the full query's time (what each update cost before live audiences)
import Crypto
import Glibc
import Synchronization
import TouchLog
import TouchLogRandom
import TouchLogStorage

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = monotonicSeconds()
    try body()
    return monotonicSeconds() - start
}

func fail(_ message: String) -> Never {
    let text = Array("touchlog-bench: \(message)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(64)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    fail("usage: touchlog-bench scan STORE | append STORE SCRATCH | query STORE QUERIES")
}
do {
    if arguments[1] == "convert" {
        guard arguments.count == 5, let version = UInt16(arguments[4]) else {
            fail("usage: touchlog-bench convert STORE TARGET VERSION")
        }
        try await convert(source: arguments[2], target: arguments[3], version: version)
        exit(0)
    }
    if arguments[1] == "watch" {
        guard arguments.count == 4 else { fail("usage: touchlog-bench watch STORE SEGMENT") }
        try await measureWatch(store: arguments[2], segment: arguments[3])
        exit(0)
    }
    if arguments[1] == "query" {
        guard arguments.count == 4 else { fail("usage: touchlog-bench query STORE QUERIES") }
        try await measureQueries(store: arguments[2], queries: arguments[3])
        exit(0)
    }
    let reader = try StoreReader(directory: arguments[2])

    switch arguments[1] {
    case "scan":
        var events = 0
        var checksum: Int64 = 0
        let elapsed = try seconds {
            try reader.forEachBlock { block in
                // Touch every column so that nothing decoded goes unused.
                events += block.events.count
                checksum &+= block.events.times.last ?? 0
                checksum &+= Int64(block.events.profiles.count + block.events.touchpoints.count)
            }
        }
        print(
            "{\"events\":\(events),\"seconds\":\(elapsed),\"eventsPerSecond\":\(Double(events) / elapsed),\"checksum\":\(checksum)}"
        )

    case "append":
        guard arguments.count == 4 else { fail("usage: touchlog-bench append STORE SCRATCH") }
        let chunk = 1_000_000
        var events: [Event] = []
        events.reserveCapacity(Int(reader.endOffset))
        try reader.forEachBlock { block in
            for i in 0..<block.events.count { events.append(block.events.event(at: i)) }
        }
        var results: [String] = []
        for kind in (getenv("TOUCHLOG_BENCH_ONLY").map { [String(cString: $0)] } ?? ["events", "batch"]) {
            let directory = arguments[3] + "-" + kind
            _ = system("rm -rf '\(directory)'")
            // TOUCHLOG_BENCH_FORMAT=2: into a format-2 store.
            let version =
                getenv("TOUCHLOG_BENCH_FORMAT").flatMap { UInt16(String(cString: $0)) }
                ?? LogOptions.defaultFormatVersion
            let store = try TouchLogStore(directory: directory, options: LogOptions(formatVersion: version))
            let chunks = stride(from: 0, to: events.count, by: chunk).map {
                Array(events[$0..<min($0 + chunk, events.count)])
            }
            let batches = kind == "batch" ? try chunks.map { try EventBatch($0) } : []
            let start = monotonicSeconds()
            // TOUCHLOG_BENCH_STEPS=1: each append's seconds on standard error.
            let steps = getenv("TOUCHLOG_BENCH_STEPS") != nil
            for k in chunks.indices {
                let began = monotonicSeconds()
                if kind == "batch" { try await store.append(batches[k]) } else { try await store.append(chunks[k]) }
                if steps {
                    let text = Array("\(kind) append \(k): \(monotonicSeconds() - began) s\n".utf8)
                    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                }
            }
            let elapsed = monotonicSeconds() - start
            results.append("\"\(kind)\":{\"seconds\":\(elapsed),\"eventsPerSecond\":\(Double(events.count) / elapsed)}")
            _ = system("rm -rf '\(directory)'")
        }
        print("{\"events\":\(events.count)," + results.joined(separator: ",") + "}")

    default:
        fail("unknown measurement \(arguments[1])")
    }
} catch {
    fail("\(error)")
}

/// Asks each query of the file `queries` of a store opened as an embedding service opens it, timing each answer.
func measureQueries(store directory: String, queries path: String) async throws {
    guard let file = fopen(path, "r") else { fail("cannot read \(path)") }
    var lines: [String] = []
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    while getline(&line, &capacity, file) > 0 { lines.append(String(cString: line!).trimmingNewline) }
    free(line)
    fclose(file)
    var store: TouchLogStore?
    let openSeconds = try seconds { store = try TouchLogStore(directory: directory, create: false) }
    guard let store else { fail("cannot open \(directory)") }
    var results: [String] = []
    for text in lines where !text.isEmpty {
        let fields = text.split(separator: " ").map(String.init)
        guard fields.count == 3, let asOf = Int64(fields[1]), fields[2] == "-" || Int64(fields[2]) != nil else {
            fail("bad query line \"\(text)\"")
        }
        let time = QueryTime(asOf: asOf, knownAt: Int64(fields[2]))
        let before = monotonicSeconds()
        let members = try await store.members(of: fields[0], at: time)
        let elapsed = monotonicSeconds() - before
        var hash = SHA256()
        for (i, member) in members.enumerated() {
            if i > 0 { hash.update(data: [UInt8(ascii: "\n")]) }
            hash.update(data: Array(member.utf8))
        }
        let digest = hash.finalize().map { String($0, radix: 16).leftPadded(2) }.joined().prefix(16)
        results.append("{\"seconds\":\(elapsed),\"members\":\"\(digest)/\(members.count)\"}")
    }
    print("{\"openSeconds\":\(openSeconds),\"queries\":[" + results.joined(separator: ",") + "]}")
    store.close()
}

extension String {
    var trimmingNewline: String { hasSuffix("\n") ? String(dropLast()) : self }
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Copies every event of `source` into a new store of format `version` at `target`, a commit per source block, and
/// reports the time and the log's size.
func convert(source: String, target: String, version: UInt16) async throws {
    let reader = try StoreReader(directory: source)
    _ = system("rm -rf '\(target)'")
    let store = try TouchLogStore(directory: target, options: LogOptions(formatVersion: version), blockEvents: 65_536)
    var batches: [EventBatch] = []
    try reader.forEachBlock { block in batches.append(block.events) }
    let start = monotonicSeconds()
    for batch in batches { try await store.append(batch) }
    let elapsed = monotonicSeconds() - start
    store.close()
    print(
        "{\"events\":\(reader.endOffset),\"seconds\":\(elapsed),\"eventsPerSecond\":\(Double(reader.endOffset) / elapsed)}"
    )
}

/// A watch's updates against full queries, commit by commit (see the usage above).
func measureWatch(store directory: String, segment: String) async throws {
    let store = try TouchLogStore(directory: directory, create: false)
    let stats = try await store.stats()
    guard let last = stats.timeRange?.upperBound else { fail("the store is empty") }
    let clock = Mutex(last)
    var options = SegmentWatchOptions(recheckInterval: .seconds(3_600), minimumInterval: .zero)
    options.clock = { clock.withLock { $0 } }
    // The watch runs in a task of its own and stamps each update with the time it arrived.
    let (arrivals, arrived) = AsyncStream<(SegmentUpdate, Double)>.makeStream()
    let watcher = Task {
        for try await update in store.watch(segment, options: options) { arrived.yield((update, monotonicSeconds())) }
    }
    var updates = arrivals.makeAsyncIterator()
    let opened = monotonicSeconds()
    guard let (initial, initialAt) = await updates.next() else { fail("the watch ended") }
    let initialSeconds = initialAt - opened
    var live: [Double] = []
    var full: [Double] = []
    var members = Set(initial.entered)
    var random = SplitMix64(seed: 7)
    for commit in 0..<50 {
        let now = last + Int64(commit + 1) * 60_000
        clock.withLock { $0 = now }
        let events = (0..<1_000).map { _ in
            let roll = random.next() % 100
            let type: EventType = roll < 60 ? .view : roll < 90 ? .click : .conversion
            let touchpoints = ["summer-2022-collection", "discount-notification", "store-location", "iphone-interest"]
            return Event(
                time: now - Int64(random.next() % 86_400_000), profile: "p-\(random.next() % 100_000)", type: type,
                touchpoint: type == .conversion ? nil : touchpoints[Int(random.next() % 4)])
        }
        try await store.append(events)
        let committed = monotonicSeconds()
        // An update comes only when the members changed: a full query tells whether to wait for one.
        let expected = Set(try await store.members(of: segment, at: QueryTime(asOf: now)))
        full.append(monotonicSeconds() - committed)
        if expected != members {
            guard let (update, at) = await updates.next() else { fail("the watch ended") }
            live.append(at - committed)
            members.formUnion(update.entered)
            members.subtract(update.exited)
            guard members == expected else { fail("the watch disagrees with the query after commit \(commit)") }
        }
    }
    watcher.cancel()
    func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((p * Double(sorted.count - 1)).rounded()))]
    }
    print(
        "{\"initialSeconds\":\(initialSeconds),\"updates\":\(live.count),\"updateP50\":\(percentile(live, 0.5)),"
            + "\"updateP99\":\(percentile(live, 0.99)),\"fullQueryP50\":\(percentile(full, 0.5)),"
            + "\"fullQueryP99\":\(percentile(full, 0.99)),\"members\":\(members.count)}")
    store.close()
}
