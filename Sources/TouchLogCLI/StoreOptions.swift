import ArgumentParser
import TouchLog
import TouchLogStorage

/// `--store DIR`, falling back to `TOUCHLOG_STORE`.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory (default: $TOUCHLOG_STORE).", valueName: "dir"))
    var store: String?

    /// The store directory, or a usage error when neither the option nor the variable gives one.
    func directory() throws -> String {
        if let store, !store.isEmpty { return store }
        if let fromEnvironment = Platform.environment("TOUCHLOG_STORE"), !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        throw ValidationError("no store given: pass --store DIR or set TOUCHLOG_STORE")
    }
}

/// When the CLI's queries save snapshots (the spec's "taken automatically"): every 1,000,000 events folded past the
/// snapshot a query started from, or every `TOUCHLOG_SNAPSHOT_EVERY=N` (0: never).
func snapshotPolicy() throws -> SnapshotPolicy {
    guard let text = Platform.environment("TOUCHLOG_SNAPSHOT_EVERY") else { return .automatic() }
    guard let every = UInt64(text) else {
        throw ValidationError("TOUCHLOG_SNAPSHOT_EVERY must be a whole number, not \"\(text)\"")
    }
    return every == 0 ? .never : .automatic(every: every)
}

/// How the CLI opens a store to read it: without its lock (another process may be writing), with queries saving
/// snapshots by ``snapshotPolicy()``.
func readingStore(_ directory: String) throws -> TouchLogStore {
    try TouchLogStore(readingFrom: directory, snapshots: try snapshotPolicy())
}

/// How the CLI opens a store for writing; `TOUCHLOG_NEW_STORE_FORMAT=1` gives a store it creates log format 1
/// (which touchlog 0.1.0 can read) instead of 2. An existing store keeps its format.
func writableStore(_ directory: String, create: Bool = true, queryPriority: QueryPriority = .normal) throws
    -> TouchLogStore
{
    var options = LogOptions()
    if let text = Platform.environment("TOUCHLOG_NEW_STORE_FORMAT") {
        guard let version = UInt16(text), BlockHeader.supportedVersions.contains(version) else {
            throw ValidationError("TOUCHLOG_NEW_STORE_FORMAT must be 1, 2 or 3, not \"\(text)\"")
        }
        options.formatVersion = version
    }
    return try TouchLogStore(
        directory: directory, create: create, options: options, snapshots: try snapshotPolicy(),
        queryPriority: queryPriority)
}

/// A time argument: RFC 3339 or epoch milliseconds.
struct TimeArgument: ExpressibleByArgument {
    var milliseconds: Int64

    init?(argument: String) {
        guard let ms = Timestamp.parse(argument) else { return nil }
        milliseconds = ms
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
