import ArgumentParser

@main
struct Touchlog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchlog",
        abstract: "An embedded, event-sourced store for marketing touchpoint interactions.",
        discussion: """
            The store is a directory given by --store DIR or the TOUCHLOG_STORE environment variable; with \
            --nats URLS (or TOUCHLOG_NATS) the store commands run against a cluster on NATS JetStream instead \
            (touchlog cluster init, touchlog node).
            Times are RFC 3339 (2022-06-01T10:21:14.250Z, any offset) or epoch milliseconds.

            Exit codes: 0 success; 1 failure (verify: damage found); 64 usage error; 65 invalid input \
            (nothing appended); 66 no such store, segment or readable input; 75 store locked by another writer.
            """,
        subcommands: [
            AppendCommand.self, SegmentCommand.self, QueryCommand.self, ExplainCommand.self, DiffCommand.self,
            HistoryCommand.self,
            SnapshotCommand.self, ReplayCommand.self, VerifyCommand.self, StatsCommand.self, ServeCommand.self,
            MigrateCommand.self, EraseCommand.self, AuditCommand.self, ClusterCommand.self, NodeCommand.self,
        ]
    )
}
