import ArgumentParser
import TouchLog
import TouchLogCluster
import TouchLogStorage

/// A duration of the rule language (`1d`, `6h`, `90m`).
struct DurationArgument: ExpressibleByArgument {
    var milliseconds: Int64

    init?(argument: String) {
        guard let ms = RuleDuration.parse(argument) else { return nil }
        milliseconds = ms
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "A segment's member count at --from, --from + --step, … up to --to, in one pass over the log.",
        discussion: """
            Text output is one line per time (time, count), with a sparkline first when standard output is a terminal; \
            --format csv (time,count) and jsonl ({"time":…,"count":…}) are for plotting.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The segment's name.") var name: String?
    @Option(help: ArgumentHelp("Evaluate this definition file instead of a stored segment.", valueName: "file.json"))
    var rules: String?
    @Option(help: ArgumentHelp("The first time.", valueName: "time")) var from: TimeArgument
    @Option(help: ArgumentHelp("The last time (included when a step lands on it).", valueName: "time")) var to:
        TimeArgument
    @Option(
        help: ArgumentHelp(
            "The time between points: a whole number and ms, s, m, h, d or w (1d = 86,400,000 ms).",
            valueName: "duration"))
    var step: DurationArgument
    @Option(
        help: ArgumentHelp(
            "Count by what the store knew at this time (default: everything recorded).", valueName: "time"))
    var knownAt: TimeArgument?
    @Option(help: "text, csv (with a header) or jsonl.") var format: QueryCommand.OutputFormat = .text
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    func validate() throws {
        if (name == nil) == (rules == nil) {
            throw ValidationError("give a segment name or --rules FILE (one of them)")
        }
        // The range and step are checked by the library (an invalid argument: exit 64), for the cluster too.
    }

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) {
            return try withCluster(urls) { client in
                let definition = try rules.map(loadDefinition) ?? client.segment(name!).definition
                let (history, missing) = try client.history(
                    of: definition, from: from.milliseconds, to: to.milliseconds, step: step.milliseconds,
                    knownAt: knownAt?.milliseconds, timeout: gather.deadline, allowPartial: gather.allowPartial)
                print(history)
                if !missing.isEmpty {
                    printError(
                        "touchlog: partial answer: partition\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")) missing"
                    )
                }
            }
        }
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let store = try readingStore(directory)
            let definition = try resolveDefinition(store, name: name, rulesFile: rules)
            print(
                try await store.history(
                    of: definition, from: from.milliseconds, to: to.milliseconds, step: step.milliseconds,
                    knownAt: knownAt?.milliseconds))
        }
    }

    func print(_ history: SegmentHistory) {
        var out = StandardOutput()
        switch format {
        case .text:
            if Platform.isTerminal(.output), !history.points.isEmpty {
                out.write(Self.sparkline(history.points.map(\.count)) + "\n")
            }
            let width = history.points.map { String($0.count).count }.max() ?? 1
            for point in history.points {
                let count = String(point.count)
                out.write(
                    Timestamp.format(point.time) + "  " + String(repeating: " ", count: width - count.count) + count
                        + "\n")
            }
        case .csv:
            out.write("time,count\n")
            for point in history.points { out.write("\(Timestamp.format(point.time)),\(point.count)\n") }
        case .jsonl:
            for point in history.points {
                out.writeJSONLine { point.write(to: &$0) }
            }
        }
        out.flush()
    }

    /// The counts as a line of block characters from ▁ (the least) to █ (the most), with the range after it.
    static func sparkline(_ counts: [Int]) -> String {
        let bars = Array("▁▂▃▄▅▆▇█")
        let low = counts.min()!
        let high = counts.max()!
        let line = String(counts.map { high == low ? bars[0] : bars[($0 - low) * (bars.count - 1) / (high - low)] })
        return line + "  \(low)–\(high)"
    }
}
