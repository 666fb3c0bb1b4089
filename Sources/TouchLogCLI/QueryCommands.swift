import ArgumentParser
import TouchLog
import TouchLogStorage

/// `--as-of` and `--known-at`, shared by the query commands.
struct TimeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Evaluate with the events whose event time is at or before this time (default: now).", valueName: "time"))
    var asOf: TimeArgument?
    @Option(
        help: ArgumentHelp(
            "…and only those recorded at or before this time (default: everything recorded).", valueName: "time"))
    var knownAt: TimeArgument?

    var queryTime: QueryTime {
        QueryTime(asOf: asOf?.milliseconds ?? Timestamp.now(), knownAt: knownAt?.milliseconds)
    }
}

/// A segment named in the store, or a definition file given by `--rules`.
func resolveDefinition(_ store: TouchLogStore, name: String?, rulesFile: String?) throws -> SegmentDefinition {
    if let rulesFile { return try loadDefinition(rulesFile) }
    guard let name else { throw ValidationError("name a segment or give --rules FILE") }
    return try store.segments.current(name).definition
}

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "The members of a segment, one profile per line, sorted by bytes.",
        discussion:
            "As of a time (--as-of, default now) and by what the store knew at a time (--known-at, default everything)."
    )

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The segment's name.") var name: String?
    @Option(help: ArgumentHelp("Evaluate this definition file instead of a stored segment.", valueName: "file.json"))
    var rules: String?
    @OptionGroup var time: TimeOptions
    @Option(help: "text (one profile per line), csv (with a header) or jsonl.") var format: OutputFormat = .text
    @Flag(help: "Print only the number of members.") var count = false
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable { case text, csv, jsonl }

    func validate() throws {
        if (name == nil) == (rules == nil) {
            throw ValidationError("give a segment name or --rules FILE (one of them)")
        }
    }

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) { return try queryCluster(urls) }
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let store = try readingStore(directory)
            let definition = try resolveDefinition(store, name: name, rulesFile: rules)
            if count {
                var out = StandardOutput()
                out.write("\(try await store.count(of: definition, at: time.queryTime))\n")
                out.flush()
            } else {
                print(try await store.members(of: definition, at: time.queryTime))
            }
        }
    }

    /// `query --nats`: every partition's owner answers for its profiles; the union is the answer.
    func queryCluster(_ urls: [String]) throws {
        try withCluster(urls) { client in
            let definition = try rules.map(loadDefinition) ?? client.segment(name ?? "").definition
            let missing: [Int]
            if count {
                let answer = try client.count(
                    of: definition, at: time.queryTime, timeout: gather.deadline, allowPartial: gather.allowPartial)
                var out = StandardOutput()
                out.write("\(answer.count)\n")
                out.flush()
                missing = answer.missing
            } else {
                let answer = try client.members(
                    of: definition, at: time.queryTime, timeout: gather.deadline, allowPartial: gather.allowPartial)
                print(answer.members)
                missing = answer.missing
            }
            if !missing.isEmpty {
                printError(
                    "touchlog: partial answer: partition\(missing.count == 1 ? "" : "s") \(missing.map(String.init).joined(separator: ", ")) missing"
                )
            }
        }
    }

    /// Writes the members in the chosen format.
    func print(_ members: [String]) {
        var out = StandardOutput()
        if format == .csv { out.write("profile\n") }
        for profile in members {
            switch format {
            case .text: out.write(profile + "\n")
            case .csv: out.write(csvField(profile) + "\n")
            case .jsonl:
                var line = Array("{\"profile\":".utf8)
                EventJSON.appendString(profile, to: &line)
                out.write(String(decoding: line, as: UTF8.self) + "}\n")
            }
        }
        out.flush()
    }

    func csvField(_ text: String) -> String {
        text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            ? "\"" + text.replacingAll("\"", with: "\"\"") + "\"" : text
    }
}

struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Whether a profile is in a segment, each rule's verdict, and the events that decided it."
    )

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The segment's name.") var name: String
    @Argument(help: "The profile.") var profile: String
    @OptionGroup var time: TimeOptions
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) {
            return try withCluster(urls) { client in
                let (revision, definition) = try client.segment(name)
                var out = StandardOutput()
                out.write(
                    try client.explain(
                        definition, revision: revision, profile: profile, at: time.queryTime, timeout: gather.deadline))
                out.flush()
            }
        }
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let store = try readingStore(directory)
            let (version, definition) = try store.segments.current(name)
            let explanation = try await store.explain(definition, profile: profile, at: time.queryTime)
            var out = StandardOutput()
            out.write(explanation.report(segment: name, version: "version \(version)", definition: definition))
            out.flush()
        }
    }
}

struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Who entered (+profile) and who left (-profile) a segment between two times, sorted by profile."
    )

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The segment's name.") var name: String
    @Option(help: ArgumentHelp("The earlier time.", valueName: "time")) var from: TimeArgument
    @Option(help: ArgumentHelp("The later time.", valueName: "time")) var to: TimeArgument
    @Option(
        help: ArgumentHelp(
            "Evaluate both times by what the store knew at this time (default: everything).", valueName: "time"))
    var knownAt: TimeArgument?
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) {
            return try withCluster(urls) { client in
                let definition = try client.segment(name).definition
                let before = try client.members(
                    of: definition, at: QueryTime(asOf: from.milliseconds, knownAt: knownAt?.milliseconds),
                    timeout: gather.deadline)
                let after = try client.members(
                    of: definition, at: QueryTime(asOf: to.milliseconds, knownAt: knownAt?.milliseconds),
                    timeout: gather.deadline)
                print(SegmentDiff(before: before.members, after: after.members))
            }
        }
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let store = try readingStore(directory)
            print(
                try await store.diff(
                    name, from: QueryTime(asOf: from.milliseconds, knownAt: knownAt?.milliseconds),
                    to: QueryTime(asOf: to.milliseconds, knownAt: knownAt?.milliseconds)))
        }
    }

    func print(_ diff: SegmentDiff) {
        var out = StandardOutput()
        for change in diff.changes { out.write((change.entered ? "+" : "-") + change.profile + "\n") }
        out.flush()
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for c in self { if c == target { result += replacement } else { result.append(c) } }
        return result
    }
}
