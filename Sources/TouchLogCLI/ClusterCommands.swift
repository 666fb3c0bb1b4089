import ArgumentParser
import Dispatch
import TouchLog
import TouchLogCluster
import TouchLogStorage

/// `--nats URLS`, falling back to `TOUCHLOG_NATS`: run the command against a cluster instead of a local store.
struct ClusterOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Run against the touchlog cluster on these NATS servers (comma-separated; default: $TOUCHLOG_NATS when no --store is given).",
            valueName: "urls"))
    var nats: String?

    /// The servers, or nil when the command runs on a local store.
    func urls(unless storeOptions: StoreOptions? = nil) -> [String]? {
        if let nats, !nats.isEmpty { return Self.split(nats) }
        // A store given by option or variable wins over the variable naming servers.
        if let storeOptions, (try? storeOptions.directory()) != nil { return nil }
        guard let fromEnvironment = Platform.environment("TOUCHLOG_NATS"), !fromEnvironment.isEmpty
        else { return nil }
        return Self.split(fromEnvironment)
    }

    /// The servers, or a usage error when none are given.
    func requiredURLs() throws -> [String] {
        guard let urls = urls() else {
            throw ValidationError("no NATS servers given: pass --nats URLS or set TOUCHLOG_NATS")
        }
        return urls
    }

    static func split(_ text: String) -> [String] {
        text.split(separator: ",").map { trimmingSpaces(String($0)) }.filter { !$0.isEmpty }
    }
}

/// `text` without leading and trailing spaces, tabs and line ends.
private func trimmingSpaces(_ text: String) -> String {
    let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
    let bytes = Array(text.utf8)
    guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
    else { return "" }
    return String(decoding: bytes[first...last], as: UTF8.self)
}

/// `--allow-partial` and `--timeout`, for commands that gather answers from every partition.
struct GatherOptions: ParsableArguments {
    @Flag(help: "With --nats: answer from the partitions that answered, naming the ones missing, instead of failing.")
    var allowPartial = false
    @Option(
        help: ArgumentHelp(
            "With --nats: how long to wait for every partition's answer, in seconds.", valueName: "seconds"))
    var timeout: Double = 10

    var deadline: Duration { .milliseconds(Int64(max(0.05, timeout) * 1000)) }
}

/// Runs `body` with a cluster client, turning cluster errors into one `touchlog: …` line and an exit code.
func withCluster<T>(_ urls: [String], _ body: (ClusterClient) throws -> T) throws -> T {
    try reportingClusterErrors {
        let client = try ClusterClient(urls: urls)
        defer { client.nats.close() }
        return try body(client)
    }
}

/// Prints a cluster error (and a store error's problems) as one line and exits with its code: 66 for a cluster not
/// initialised or a segment or profile not found, 65 for invalid input, 1 otherwise.
func reportingClusterErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as ClusterError {
        var status = ExitStatus.failure
        switch error.kind {
        case .store(let storeError):
            for problem in storeError.problems { printError(problem.description) }
            status = ExitStatus.of(storeError)
        case .notInitialised: status = ExitStatus.notFound
        default: break
        }
        printError("touchlog: \(error.message)")
        throw ExitCode(status)
    } catch let error as TouchLogError {
        for problem in error.problems { printError(problem.description) }
        printError("touchlog: \(error.message)")
        throw ExitCode(ExitStatus.of(error))
    }
}

struct ClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Create a cluster on NATS JetStream, and see its partitions.",
        subcommands: [Init.self, Status.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create the partition streams and buckets (run once; again only completes what is missing).",
            discussion:
                "The partition count is fixed for the cluster's life: init with another count fails and changes nothing."
        )
        @OptionGroup var cluster: ClusterOptions
        @Option(help: "Partitions (1–4096): events are spread by FNV-1a of the profile, mod this.") var partitions: Int
        @Option(help: "Copies of each stream and bucket on the NATS servers (1–5; more than 1 needs a NATS cluster).")
        var replicas = 1
        @Option(help: ArgumentHelp("How long a node's lease lasts without renewal, in seconds.", valueName: "seconds"))
        var lease: Double = 10

        func validate() throws {
            if !(1...4096).contains(partitions) {
                throw ValidationError("--partitions must be 1 to 4096, not \(partitions)")
            }
            if !(1...5).contains(replicas) {
                throw ValidationError("--replicas must be 1 to 5 (JetStream's limit), not \(replicas)")
            }
            if !(lease >= 0.3 && lease <= 3600) {
                throw ValidationError("--lease must be 0.3 to 3600 seconds, not \(lease)")
            }
        }

        func run() throws {
            let urls = try cluster.requiredURLs()
            try reportingClusterErrors {
                let result = try ClusterClient.initialise(
                    urls: urls, partitions: partitions, replicas: replicas,
                    leaseMilliseconds: Int64(lease * 1000))
                var out = StandardOutput()
                let c = result.config
                out.write(
                    result.created
                        ? "created cluster \(c.id): \(c.partitions) partitions, \(c.replicas) replica\(c.replicas == 1 ? "" : "s")\n"
                        : "cluster \(c.id) exists: \(c.partitions) partitions, \(c.replicas) replica\(c.replicas == 1 ? "" : "s") (missing parts created)\n"
                )
                out.flush()
            }
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Each partition: owner, stream and applied sequence, applied digest, local chain head, events."
        )
        @OptionGroup var cluster: ClusterOptions
        @Flag(help: "Print JSON Lines instead of a table.") var json = false

        func run() throws {
            let urls = try cluster.requiredURLs()
            try withCluster(urls) { client in
                let partitions = try client.status()
                var out = StandardOutput()
                if !json {
                    out.write(
                        "cluster \(client.config.id): \(client.config.partitions) partitions, \(client.config.replicas) replicas\n"
                    )
                    out.write("partition\towner\tstream\tapplied\tevents\tdigest\thead\n")
                }
                for p in partitions {
                    if json {
                        out.writeJSONLine { p.write(to: &$0) }
                    } else {
                        let applied = p.appliedSequence.map(String.init) ?? "-"
                        out.write(
                            "\(p.partition)\t\(p.owner ?? "(none)")\t\(p.streamSequence)\t\(applied)\t\(p.events.map(String.init) ?? "-")\t"
                                + "\(p.digest.map { String($0.prefix(16)) } ?? "-")\t\(p.head.map { String($0.prefix(16)) } ?? "-")\n"
                        )
                    }
                }
                out.flush()
            }
        }
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract:
            "Serve partitions of a cluster: claim them by lease, apply their streams to local stores, answer queries.",
        discussion: """
            Each partition it owns is an ordinary touchlog store under DIR (DIR/p<N>): verify, replay and explain work \
            on it. SIGTERM or SIGINT releases its leases, so other nodes take its partitions over at once; if it dies, \
            they do once its leases lapse.
            """
    )
    @OptionGroup var cluster: ClusterOptions
    @Option(help: ArgumentHelp("Where the node keeps its partition stores.", valueName: "dir")) var data: String
    @Option(help: "The node's name (default: host-pid); letters, digits, - and _.") var name: String?

    func run() async throws {
        let urls = try cluster.requiredURLs()
        let node = try reportingClusterErrors {
            try ClusterNode(urls: urls, dataDirectory: data, name: name) { line in printError("touchlog node: \(line)")
            }
        }
        printError(
            "touchlog node: \(node.name) joined cluster \(node.config.id) (\(node.config.partitions) partitions), data in \(data)"
        )
        let signals = TerminationSignals { node.stop() }
        await node.run()
        signals.cancel()
        printError("touchlog node: \(node.name) stopped; its leases are released")
    }
}
