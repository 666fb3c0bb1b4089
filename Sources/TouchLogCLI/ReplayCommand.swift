import ArgumentParser
import TouchLog

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Print events in log order as JSON Lines, with their offset and recorded time.",
        discussion: """
            The output is valid `append` input: appending it to an empty store rebuilds the same events at the same \
            offsets. Events of erased profiles are left out (so their offsets are missing) unless --include-erased. \
            With --nats, each partition's events are merged by recorded time, and an offset is the one in its \
            partition's store.
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: ArgumentHelp("First offset to print.", valueName: "n")) var fromOffset: UInt64?
    @Option(help: ArgumentHelp("Last offset to print (inclusive).", valueName: "m")) var toOffset: UInt64?
    @Option(help: ArgumentHelp("Only events whose event time is at or after this time.", valueName: "time")) var since:
        TimeArgument?
    @Option(help: ArgumentHelp("Only events whose event time is at or before this time.", valueName: "time")) var until:
        TimeArgument?
    @Option(help: ArgumentHelp("Only this profile (repeat for several).", valueName: "profile")) var profile: [String] =
        []
    @Option(help: ArgumentHelp("Only this touchpoint (repeat for several).", valueName: "touchpoint")) var touchpoint:
        [String] = []
    @Option(help: ArgumentHelp("Only this type: view, click or conversion (repeat for several).", valueName: "type"))
    var type: [EventTypeArgument] = []
    @Option(
        help: ArgumentHelp(
            "Only events recorded at or before this time: what the store knew then (an auditor's view).",
            valueName: "time"))
    var knownAt: TimeArgument?
    @Flag(help: "Also the events of erased profiles, with \"profile\":null,\"erased\":true (not valid append input).")
    var includeErased = false
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    func validate() throws {
        if let fromOffset, let toOffset, fromOffset > toOffset {
            throw ValidationError("--from-offset is after --to-offset")
        }
        if let since, let until, since.milliseconds > until.milliseconds {
            throw ValidationError("--since is after --until")
        }
    }

    func run() throws {
        if let urls = cluster.urls(unless: storeOptions) {
            if fromOffset != nil || toOffset != nil {
                throw ValidationError(
                    "--from-offset and --to-offset are not available with --nats: offsets belong to each partition's store"
                )
            }
            return try withCluster(urls) { client in
                let filter = ReplayFilter(
                    since: since?.milliseconds, until: until?.milliseconds, profiles: profile, touchpoints: touchpoint,
                    types: Set(type.map(\.type)), includeErased: includeErased,
                    knownAt: knownAt?.milliseconds)
                var gather = gather
                if gather.timeout == 10 { gather.timeout = 600 }
                let (lines, missing) = try client.replay(
                    filter, timeout: gather.deadline, allowPartial: gather.allowPartial)
                var out = StandardOutput()
                out.buffer = lines
                out.flush()
                if !missing.isEmpty {
                    printError(
                        "touchlog: partial replay: partitions \(missing.map(String.init).joined(separator: ", ")) missing"
                    )
                }
            }
        }
        let directory = try storeOptions.directory()
        try reportingErrors {
            let store = try readingStore(directory)
            let end = store.endOffset
            let filter = ReplayFilter(
                fromOffset: fromOffset, toOffset: toOffset, since: since?.milliseconds, until: until?.milliseconds,
                profiles: profile, touchpoints: touchpoint, types: Set(type.map(\.type)), includeErased: includeErased,
                knownAt: knownAt?.milliseconds)
            let progress = Progress("replay", sharesTerminalWithOutput: true)
            var out = StandardOutput()
            try store.forEachBlock(matching: filter) { block in
                for index in filter.matches(in: block) {
                    EventJSON.appendLine(block, index, to: &out.buffer)
                    out.flushIfFull()
                }
                progress.update(
                    Int64(block.firstOffset) + Int64(block.events.count), of: Int64(end), unit: "events")
            }
            progress.finish()
            out.flush()
        }
    }
}

struct EventTypeArgument: ExpressibleByArgument {
    var type: EventType
    init?(argument: String) {
        guard let type = EventType(name: argument) else { return nil }
        self.type = type
    }
    static var allValueStrings: [String] { EventType.allCases.map(\.name) }
}
