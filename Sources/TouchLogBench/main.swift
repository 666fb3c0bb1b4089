// In-process measurements for Tools/bench (the CLI numbers include process start and text parsing; these are
// what an embedding service sees). Prints one JSON object.
//
//   touchlog-bench scan STORE              decode every field of every block on one thread
//   touchlog-bench append STORE SCRATCH    append STORE's events (already parsed) to a new store at SCRATCH,
//                                          1M events per durable append, as [Event] and as a built EventBatch
import Glibc
import TouchLog

func seconds(_ body: () throws -> Void) rethrows -> Double {
    var start = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    try body()
    var end = timespec()
    clock_gettime(CLOCK_MONOTONIC, &end)
    return Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
}

func fail(_ message: String) -> Never {
    let text = Array("touchlog-bench: \(message)\n".utf8)
    _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(64)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: touchlog-bench scan STORE | append STORE SCRATCH") }
do {
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
        print("{\"events\":\(events),\"seconds\":\(elapsed),\"eventsPerSecond\":\(Double(events) / elapsed),\"checksum\":\(checksum)}")

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
            let store = try TouchLogStore(directory: directory)
            let chunks = stride(from: 0, to: events.count, by: chunk).map { Array(events[$0..<min($0 + chunk, events.count)]) }
            let batches = kind == "batch" ? try chunks.map { try EventBatch($0) } : []
            let elapsed = try await {
                var start = timespec()
                clock_gettime(CLOCK_MONOTONIC, &start)
                for k in chunks.indices {
                    if kind == "batch" { try await store.append(batches[k]) } else { try await store.append(chunks[k]) }
                }
                var end = timespec()
                clock_gettime(CLOCK_MONOTONIC, &end)
                return Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
            }()
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
