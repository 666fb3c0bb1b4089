import ArgumentParser
import TouchLog
import TouchLogStorage

struct EraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Forget profiles: their identifiers can never be read again; their events stay as anonymous facts.",
        discussion: """
            Each identifier is sealed with a key of its own (log format 3); erasing destroys the key, so no file under \
            the store holds the identifier in a form that can be turned back into it, while every block of the log, and \
            so every hash of its chain, stays as it was. The erasure is recorded in the log (when, the reason, the \
            profiles' internal ids; no identifier). Segments never list an erased profile again, at any time; the same \
            identifier appended later is a new profile. Durable when it returns; many identifiers are one durable step.

            An identifier the store does not hold is an error (exit 66) and nothing is erased, unless --skip-unknown. \
            Backups taken before the erasure still hold the keys.
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Argument(help: ArgumentHelp("The profile identifiers to erase.", valueName: "profile"))
    var profiles: [String] = []

    @Option(
        name: .customLong("from"),
        help: ArgumentHelp(
            "Also erase the identifiers in FILE, one per line ('-': standard input).",
            valueName: "file"))
    var file: String?

    @Option(help: "Why (recorded in the log; it should name no person).")
    var reason = ""

    @Flag(help: "Erase the identifiers the store holds and list the others, instead of failing.")
    var skipUnknown = false

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        if let urls = cluster.urls(unless: storeOptions) {
            return try withCluster(urls) { client in
                var wanted = profiles
                if let file { wanted += try Self.lines(of: file) }
                guard !wanted.isEmpty else {
                    throw ValidationError("no profile to erase: name one or more, or pass --from FILE")
                }
                let report = try client.erase(profiles: wanted, reason: reason, skipUnknown: skipUnknown)
                var out = StandardOutput()
                out.write(
                    "erased \(counted(report.erased.count, "profile")) in cluster \(client.config.id) (applied by the partition owners)\n"
                )
                for profile in report.unknown { out.write("unknown, not erased: \(profile)\n") }
                out.flush()
            }
        }
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            var wanted = profiles
            if let file { wanted += try Self.lines(of: file) }
            guard !wanted.isEmpty else {
                throw ValidationError("no profile to erase: name one or more, or pass --from FILE")
            }
            let store = try writableStore(directory, create: false)
            let report = try await store.erase(profiles: wanted, reason: reason, skipUnknown: skipUnknown)
            var out = StandardOutput()
            out.write("erased \(counted(report.erased.count, "profile"))\n")
            for profile in report.unknown { out.write("unknown, not erased: \(profile)\n") }
            out.write("chain head: \(report.head)\n")
            out.flush()
        }
    }

    /// The non-empty lines of `path` ('-': standard input), without their line ends.
    static func lines(of path: String) throws -> [String] {
        // Lines end at \n; a \r before it goes too. Nothing else splits a line: a profile is any string.
        try readWholeInput(path).split(separator: 0x0A).compactMap { line in
            var text = String(decoding: line, as: UTF8.self)
            while text.hasSuffix("\r") { text.removeLast() }
            return text.isEmpty ? nil : text
        }
    }
}
