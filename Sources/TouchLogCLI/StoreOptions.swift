import ArgumentParser
import Glibc

/// `--store DIR`, falling back to `TOUCHLOG_STORE`.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory (default: $TOUCHLOG_STORE).", valueName: "dir"))
    var store: String?

    /// The store directory, or a usage error when neither the option nor the variable gives one.
    func directory() throws -> String {
        if let store, !store.isEmpty { return store }
        if let fromEnvironment = getenv("TOUCHLOG_STORE").map({ String(cString: $0) }), !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        throw ValidationError("no store given: pass --store DIR or set TOUCHLOG_STORE")
    }
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

import TouchLog
