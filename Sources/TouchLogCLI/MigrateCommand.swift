import ArgumentParser
import TouchLog

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Rewrite the store's log into the newest format (3), keeping every event, offset and recorded time.",
        discussion: """
            The new log is a new hash chain whose first commit names the old chain's head; the old log is kept in \
            STORE/log-format1 (or log-format2), and verify checks both. Format 3 seals each profile identifier with a \
            key of its own, so that profiles can be erased; the old log still holds them in plain text, so erasure \
            refuses to run until it is moved out of the store. Snapshots are removed (queries recreate what they \
            need). Takes the store's lock: no one may append meanwhile. A store already in format 3 is left as it is.
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let progress = Progress("migrate")
            let report = try await TouchLogStore.migrate(directory: directory) { done, total in
                progress.update(Int64(done), of: Int64(total))
            }
            progress.finish()
            var out = StandardOutput()
            if let from = report.fromVersion {
                out.write(
                    "migrated \(counted(report.events, "event")) in \(counted(report.commits, "commit")) from format \(from) to format 3\n"
                )
                out.write(
                    "previous chain head: \(report.previousHead) (that log is kept in \(report.archivedLog ?? "")/)\n"
                )
                out.write("chain head: \(report.head)\n")
            } else {
                out.write("the store is already in format 3; nothing to do\n")
            }
            out.flush()
        }
    }
}
