import ArgumentParser
import TouchLog

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every checksum, the hash chain, offsets and payloads; print the chain head.",
        discussion: """
            Exits 1 when damage is found, naming the file, block and byte of each damaged place, and when the log no \
            longer holds a block given with --anchor.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @Option(
        help: ArgumentHelp(
            "A chain head noted earlier (64 hex digits, as verify prints it): also check that the log still holds it "
                + "as a committed block, with the chain from it intact (repeatable).",
            valueName: "head"))
    var anchor: [String] = []
    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var gather: GatherOptions

    func run() throws {
        if let urls = cluster.urls(unless: storeOptions) {
            return try withCluster(urls) { client in
                var gather = gather
                if gather.timeout == 10 { gather.timeout = 600 }
                let reports = try client.verify(timeout: gather.deadline, allowPartial: gather.allowPartial)
                var out = StandardOutput()
                for report in reports { out.write("partition \(report.partition): \(report.summary)\n") }
                out.flush()
                if reports.contains(where: { !$0.ok }) { throw ExitCode(ExitStatus.failure) }
            }
        }
        let directory = try storeOptions.directory()
        try reportingErrors {
            let anchors = try anchor.map { text throws(TouchLogError) in try parseAnchor(text) }
            let progress = Progress("verify")
            let report = try StoreVerifier.verify(directory: directory, anchors: anchors) { done, total in
                progress.update(done, of: total)
            }
            progress.finish()
            let log = report.log
            var out = StandardOutput()
            let perEvent =
                log.records == 0 ? "" : " (\(String(format1: Double(log.bytes) / Double(log.records))) bytes/event)"
            out.write(
                "checked \(counted(log.files, "file")), \(counted(log.blocks, "block")), \(counted(log.records, "event")), \(log.bytes) bytes\(perEvent)\n"
            )
            out.write("chain head: \(log.head)\n")
            if log.isIntact {
                out.write("checked \(counted(report.snapshotsChecked, "snapshot")) and the segment definitions\n")
            }
            // Only an intact log has a tail the writer will simply cut; with damage, the writer refuses the log.
            if log.uncommittedTailBytes > 0 && log.problems.isEmpty {
                out.write(
                    "note: \(log.uncommittedTailBytes) bytes after the last commit (an unfinished write; the writer removes them when it next opens the store)\n"
                )
            }
            for erasure in report.erasures {
                let why = erasure.reason.isEmpty ? "" : " (\(erasure.reason))"
                out.write(
                    "erasure of \(counted(erasure.profiles.count, "profile")) at \(Timestamp.format(erasure.recorded))\(why); "
                        + "the chain before it ends at \(erasure.headBefore)\n")
            }
            if let archived = report.archivedLog, let version = report.archivedFormat {
                let name = StoreMigration.archivedLog(from: version)
                out.write(
                    "checked the replaced format-\(version) log (\(name)/): \(counted(archived.blocks, "block")), \(counted(archived.records, "event")), chain head \(archived.head)\n"
                )
                for problem in archived.problems { out.write("damage: \(name)/\(problem)\n") }
            }
            for problem in log.problems { out.write("damage: \(problem)\n") }
            for problem in report.otherProblems { out.write("damage: \(problem)\n") }
            for anchor in report.anchors { out.write((anchor.isFound ? "" : "missing: ") + anchor.summary + "\n") }
            for note in report.notes { out.write("note: \(note)\n") }
            let count =
                log.problems.count + report.otherProblems.count + (report.archivedLog?.problems.count ?? 0)
                + report.anchors.filter { !$0.isFound }.count
            out.write(count == 0 ? "ok\n" : "FAILED: \(count) problem\(count == 1 ? "" : "s") found\n")
            out.flush()
            if count > 0 { throw ExitCode(ExitStatus.failure) }
        }
    }
}

/// A chain head given on the command line: 64 hexadecimal digits, else invalid input (exit 65).
func parseAnchor(_ text: String, option: String = "--anchor") throws(TouchLogError) -> BlockHash {
    guard text.utf8.count == 64, let hash = BlockHash(hex: text) else {
        throw TouchLogError(
            code: .invalidInput,
            message: "\(option) \"\(text)\" is not a chain head: expected 64 hexadecimal digits, as verify prints it")
    }
    return hash
}
