// audience-sync: ingests a stream of touchpoint events (JSON Lines on standard input) into an embedded touchlog
// store, and keeps one segment's audience current: every entry and exit is printed (`+profile`, `-profile`) and the
// whole audience is rewritten to a file, as a service syncing it to an ad platform would.
//
//     audience-sync STORE SEGMENT.json AUDIENCE.txt < events.jsonl
//
// Two tasks share the store: one appends batches as lines arrive (each durable when `append` returns), one watches
// the segment. At the end of the input the audience is checked against a direct query.
import Foundation
import TouchLog

@main
struct AudienceSync {
    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count == 3 else {
            FileHandle.standardError.write(
                Data("usage: audience-sync STORE SEGMENT.json AUDIENCE.txt < events.jsonl\n".utf8))
            exit(64)
        }
        let (storePath, segmentPath, audiencePath) = (arguments[1], arguments[2], arguments[3])
        let store = try TouchLogStore(directory: storePath)
        defer { store.close() }
        let definition = try SegmentDefinition(json: String(contentsOfFile: segmentPath, encoding: .utf8))
        try await store.putSegment(definition)

        var options = SegmentWatchOptions(recheckInterval: .seconds(1))
        options.includeInitialMembers = true
        let watcher = Task {
            var audience = Set<String>()
            for try await update in store.watch(definition.name, options: options) {
                audience.formUnion(update.entered)
                audience.subtract(update.exited)
                for profile in update.entered where !update.isInitial { print("+\(profile)") }
                for profile in update.exited { print("-\(profile)") }
                if update.isInitial {
                    print("audience of \(definition.name): \(audience.count) profiles at offset \(update.endOffset)")
                }
                try write(audience, to: audiencePath)
            }
            return audience
        }

        // Batches: whatever arrived within 100 ms, at most 5,000 lines.
        var appended = 0
        for await batch in lineBatches(maxLines: 5_000, maxWait: .milliseconds(100)) {
            do {
                let report = try await store.append(
                    contentsOf: Array(batch.utf8), options: IngestOptions(format: .jsonl, skipInvalid: true))
                appended += report.appendedCount
                for problem in report.problems {
                    FileHandle.standardError.write(Data("skipped line \(problem)\n".utf8))
                }
            } catch {
                FileHandle.standardError.write(Data("append failed: \(error)\n".utf8))
            }
        }
        try await Task.sleep(for: .milliseconds(300))  // let the watch report the last batch
        watcher.cancel()
        let watched = try await watcher.value
        let queried = Set(try await store.members(of: definition.name))
        try write(queried, to: audiencePath)
        print(
            "appended \(appended) events; audience of \(definition.name): \(queried.count) profiles "
                + (watched == queried
                    ? "(the watch kept it current)"
                    : "(the watch was \(watched.symmetricDifference(queried).count) behind)"))
    }

    /// The audience, one profile per line in byte order, replaced atomically.
    static func write(_ audience: Set<String>, to path: String) throws {
        let text = audience.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.map { $0 + "\n" }
            .joined()
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Standard input's lines, grouped into batches of what arrived within `maxWait` (at most `maxLines`).
    static func lineBatches(maxLines: Int, maxWait: Duration) -> AsyncStream<String> {
        let (lines, input) = AsyncStream<String>.makeStream()
        Thread.detachNewThread {
            while let line = readLine(strippingNewline: false) { input.yield(line) }
            input.finish()
        }
        return AsyncStream { output in
            let task = Task {
                var batch = ""
                var count = 0
                var deadline = ContinuousClock.now + maxWait
                for await line in lines {
                    batch += line
                    count += 1
                    if count >= maxLines || ContinuousClock.now >= deadline {
                        output.yield(batch)
                        batch = ""
                        count = 0
                        deadline = ContinuousClock.now + maxWait
                    }
                }
                if !batch.isEmpty { output.yield(batch) }
                output.finish()
            }
            output.onTermination = { _ in task.cancel() }
        }
    }
}
