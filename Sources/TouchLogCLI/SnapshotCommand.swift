import ArgumentParser
import TouchLog

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Snapshots of segment projections: create, list, prune. They only make queries faster.",
        discussion: """
            Queries also save a snapshot by themselves when they have folded at least 1,000,000 events past \
            the snapshot they started from (TOUCHLOG_SNAPSHOT_EVERY=N to change, 0 to stop); at most 8 are \
            kept per segment. Deleting snapshots never changes an answer.
            """,
        subcommands: [List.self, Create.self, Prune.self],
        defaultSubcommand: List.self
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create", abstract: "Snapshot every current segment (or one) at the end of the log.",
            discussion:
                "In a format-2 store, also one every million events on the way (at most 8 are kept per segment, spread along the log), so that queries at past times start near them."
        )
        @OptionGroup var storeOptions: StoreOptions
        @Argument(help: "Only this segment.") var name: String?

        func run() async throws {
            let directory = try storeOptions.directory()
            try await reportingErrorsAsync {
                let store = try readingStore(directory)
                var out = StandardOutput()
                for result in try await store.createSnapshots(of: name) {
                    if let info = result.snapshot {
                        out.write(
                            "\(result.segment): snapshot at offset \(info.endOffset), watermark \(Timestamp.format(info.watermark)), \(info.bytes) bytes\n"
                        )
                    } else if !result.helps {
                        out.write(
                            "\(result.segment): nothing to snapshot (its rules look back from T and are read from the log)\n"
                        )
                    } else {
                        out.write("\(result.segment): already snapshotted at the end of the log\n")
                    }
                }
                out.flush()
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "Every snapshot: segment, offset, watermark, recorded, bytes.")
        @OptionGroup var storeOptions: StoreOptions

        func run() throws {
            let directory = try storeOptions.directory()
            try reportingErrors {
                let store = try readingStore(directory)
                var out = StandardOutput()
                for info in try store.snapshots() {
                    let name = info.segment ?? "(an earlier or removed definition)"
                    out.write(
                        "\(name)\toffset \(info.endOffset)\twatermark \(Timestamp.format(info.watermark))\trecorded \(Timestamp.format(info.recorded))\t\(info.bytes) bytes\t\(info.path)\n"
                    )
                }
                out.flush()
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract:
                "Keep the newest N snapshots of each current segment; delete the rest and those of old definitions.")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "How many to keep per segment.") var keep: Int

        func validate() throws {
            if keep < 0 { throw ValidationError("--keep must be 0 or more") }
        }

        func run() async throws {
            let directory = try storeOptions.directory()
            try await reportingErrorsAsync {
                let store = try readingStore(directory)
                let removed = try await store.pruneSnapshots(keep: keep)
                var out = StandardOutput()
                out.write(
                    "deleted \(removed.count) snapshot\(removed.count == 1 ? "" : "s"), kept \(try store.snapshots().count)\n"
                )
                out.flush()
            }
        }
    }
}
