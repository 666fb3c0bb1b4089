import ArgumentParser
import TouchLog

struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Events, profiles, touchpoints, files, bytes on disk and per event, time ranges, snapshots."
    )

    @OptionGroup var storeOptions: StoreOptions

    @Flag(help: "Print one JSON object instead of text.") var json = false
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) {
            return try withCluster(urls) { client in
                let stats = try client.stats(timeout: gather.deadline, allowPartial: gather.allowPartial)
                var out = StandardOutput()
                if json {
                    out.writeJSONLine { stats.write(to: &$0) }
                } else {
                    out.write(
                        "events          \(stats.events)\nprofiles        \(stats.profiles)"
                            + (stats.erasedProfiles > 0 ? " (and \(stats.erasedProfiles) erased)" : "") + "\n"
                            + "store bytes     \(stats.totalBytes) (each partition's owner, one copy)\npartitions      \(client.config.partitions)"
                            + (stats.missingPartitions.isEmpty
                                ? ""
                                : " (missing: \(stats.missingPartitions.map(String.init).joined(separator: ", ")))")
                            + "\n")
                }
                out.flush()
            }
        }
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let store = try readingStore(directory)
            let progress = Progress("stats")
            let stats = try await store.stats { done, total in
                progress.update(Int64(done), of: Int64(total), unit: "events")
            }
            progress.finish()
            var out = StandardOutput()
            let types = EventType.allCases.map { ($0.name, stats.eventsByType[$0] ?? 0) }
            if json {
                out.writeJSONLine { stats.write(to: &$0) }
            } else {
                func row(_ name: String, _ value: String) { out.write(name.padding(16) + value + "\n") }
                row("events", "\(stats.events)")
                for (name, count) in types { row("  \(name)s", "\(count)") }
                row(
                    "profiles",
                    "\(stats.profiles)" + (stats.erasedProfiles > 0 ? " (and \(stats.erasedProfiles) erased)" : ""))
                row("touchpoints", "\(stats.touchpoints)")
                row("log files", "\(stats.files) (\(counted(stats.blocks, "block")), format \(stats.formatVersion))")
                row("log bytes", "\(stats.logBytes) (\(String(format1: stats.bytesPerEvent)) per event)")
                row("store bytes", "\(stats.totalBytes)")
                row(
                    "event times",
                    stats.timeRange.map { "\(Timestamp.format($0.lowerBound)) – \(Timestamp.format($0.upperBound))" }
                        ?? "none")
                row(
                    "recorded",
                    stats.recordedRange.map {
                        "\(Timestamp.format($0.lowerBound)) – \(Timestamp.format($0.upperBound))"
                    } ?? "none")
                row("snapshots", "\(stats.snapshots)")
                row("segments", "\(stats.segments)")
            }
            out.flush()
        }
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
