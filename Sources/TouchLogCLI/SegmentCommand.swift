import ArgumentParser
import TouchLog
import TouchLogStorage

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Manage segment definitions (every version is kept).",
        subcommands: [Put.self, List.self, Show.self, Remove.self]
    )

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "put",
            abstract: "Store a definition from a JSON file (- for standard input) as its name's next version.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var cluster: ClusterOptions
        @Argument(help: ArgumentHelp("The definition.", valueName: "file.json")) var file: String

        func run() async throws {
            if let urls = cluster.urls(unless: storeOptions) {
                return try withCluster(urls) { client in
                    let definition = try loadDefinition(file)
                    let revision = try client.putSegment(definition)
                    var out = StandardOutput()
                    out.write(
                        "stored segment \(definition.name) in cluster \(client.config.id) (revision \(revision))\n")
                    out.flush()
                }
            }
            let directory = try storeOptions.directory()
            try await reportingErrorsAsync {
                let definition = try loadDefinition(file)
                let store = try writableStore(directory)
                let (version, changed) = try await store.putSegment(definition)
                var out = StandardOutput()
                out.write(
                    changed
                        ? "stored segment \(definition.name) version \(version)\n"
                        : "segment \(definition.name) unchanged (version \(version))\n")
                out.flush()
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "The current segments: name, version, description.")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var cluster: ClusterOptions

        func run() throws {
            if let urls = cluster.urls(unless: storeOptions) {
                return try withCluster(urls) { client in
                    var out = StandardOutput()
                    for (name, revision, definition) in try client.segments() {
                        out.write("\(name)\tr\(revision)\(definition.description.map { "\t" + $0 } ?? "")\n")
                    }
                    out.flush()
                }
            }
            let directory = try storeOptions.directory()
            try reportingErrors {
                let store = try readingStore(directory)
                var out = StandardOutput()
                for (name, version, definition) in try store.segments.list() {
                    out.write("\(name)\tv\(version)\(definition.description.map { "\t" + $0 } ?? "")\n")
                }
                out.flush()
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Print a segment's definition (the current version, or --version N).")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var cluster: ClusterOptions
        @Argument(help: "The segment's name.") var name: String
        @Option(help: "A past version.") var version: Int?

        func run() throws {
            if let urls = cluster.urls(unless: storeOptions) {
                if version != nil {
                    throw ValidationError(
                        "--version is not available with --nats: a cluster keeps the current definition")
                }
                return try withCluster(urls) { client in
                    var out = StandardOutput()
                    out.write(try client.segment(name).definition.json + "\n")
                    out.flush()
                }
            }
            let directory = try storeOptions.directory()
            try reportingErrors {
                let segments = try readingStore(directory).segments
                let definition =
                    try version.map { v throws(TouchLogError) in try segments.version(name, v) }
                    ?? segments.current(name).definition
                var out = StandardOutput()
                out.write(definition.json + "\n")
                out.flush()
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove a segment (its versions are kept for audit).")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var cluster: ClusterOptions
        @Argument(help: "The segment's name.") var name: String

        func run() async throws {
            if let urls = cluster.urls(unless: storeOptions) {
                return try withCluster(urls) { client in
                    try client.removeSegment(name)
                    var out = StandardOutput()
                    out.write("removed segment \(name) from cluster \(client.config.id)\n")
                    out.flush()
                }
            }
            let directory = try storeOptions.directory()
            try await reportingErrorsAsync {
                // No such segment is that, not "locked" when a server holds the store.
                _ = try readingStore(directory).segments.current(name)
                let store = try writableStore(directory, create: false)
                let version = try await store.removeSegment(name)
                var out = StandardOutput()
                out.write("removed segment \(name) (version \(version); earlier versions kept)\n")
                out.flush()
            }
        }
    }
}

/// Reads and checks a definition file; a grammar error is invalid input (exit 65) naming the JSON path.
func loadDefinition(_ path: String) throws -> SegmentDefinition {
    let text = String(decoding: try readWholeInput(path), as: UTF8.self)
    do {
        return try SegmentDefinition(json: text)
    } catch {
        throw TouchLogError(code: .invalidInput, message: "\(path == "-" ? "standard input" : path): \(error)")
    }
}
