import ArgumentParser
import TouchLog
import TouchLogStorage

struct AppendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Append events from JSON Lines or CSV files (or standard input), durably.",
        discussion: """
            All inputs of one invocation are one atomic commit: by default a single invalid line means nothing is \
            appended (exit 65) and every invalid line is reported as LINE:COLUMN reason. The events are on stable \
            storage before `appended N events, offsets A–B` is printed. Creates the store if it does not exist.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var cluster: ClusterOptions

    @Argument(help: ArgumentHelp("Input files; - or none for standard input.", valueName: "file"))
    var files: [String] = []

    @Option(help: "Input format (default: from the file extension, else from the first line).")
    var format: InputFormatArgument?

    @Flag(help: "Append the valid lines and report the invalid ones instead of appending nothing.")
    var skipInvalid = false

    @Option(
        help: ArgumentHelp(
            "With --skip-invalid: write each refused line and its reason here, as JSON Lines.", valueName: "file"))
    var rejects: String?

    func validate() throws {
        if rejects != nil && !skipInvalid { throw ValidationError("--rejects goes with --skip-invalid") }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be given once") }
    }

    func run() throws {
        let inputs = files.isEmpty ? ["-"] : files
        if let urls = cluster.urls(unless: storeOptions) { return try appendToCluster(urls, inputs) }
        let directory = try storeOptions.directory()
        try reportingErrors {
            for input in inputs where input != "-" {
                do throws(SystemCallError) { try SystemFile.open(input, .readOnly).close() } catch {
                    throw TouchLogError(
                        code: .notFound, message: "cannot read \(input): \(error.reason); nothing appended")
                }
            }
            let rejectsFile = try rejects.map { path throws(TouchLogError) in try OutputFile(path) }
            defer { rejectsFile?.close() }
            let store = try writableStore(directory)
            if let recovery = store.recovery { printError("touchlog: \(recovery)") }
            let total = inputs.reduce(Int64(0)) { $0 + ($1 == "-" ? 0 : fileBytes($1)) }
            let progress = Progress("append")
            var options = IngestOptions(format: format?.format, skipInvalid: skipInvalid)
            options.skipInvalid = skipInvalid
            var rejectsFailure: TouchLogError?
            let report = try store.ingest(
                inputs, options: options,
                rejected: { problem, text in
                    if let rejectsFile {
                        var writer = JSONWriter()
                        problem.write(to: &writer, text: Array(text))
                        do throws(TouchLogError) { try rejectsFile.write(writer.bytes + [0x0A]) } catch {
                            rejectsFailure = rejectsFailure ?? error
                        }
                    } else {
                        printError(problem.description)
                    }
                }, progress: { progress.update($0, of: total) })
            progress.finish()
            // The events are in; a rejects file that could not be written is still an error to report.
            defer { if let rejectsFailure { printError("touchlog: \(rejectsFailure.message)") } }
            var out = StandardOutput()
            let n = report.appendedCount
            if n == 0 {
                out.write("appended 0 events\n")
            } else {
                out.write(
                    "appended \(n) event\(n == 1 ? "" : "s"), offsets \(report.offsets.lowerBound)–\(report.offsets.upperBound - 1)\n"
                )
            }
            out.flush()
            if report.rejectedCount > 0 {
                printError(
                    "touchlog: skipped \(report.rejectedCount) invalid line\(report.rejectedCount == 1 ? "" : "s")"
                        + (rejects.map { " (written to \($0))" } ?? ""))
            }
        }
    }
}

struct InputFormatArgument: ExpressibleByArgument {
    var format: InputFormat
    init?(argument: String) {
        guard let format = InputFormat(rawValue: argument) else { return nil }
        self.format = format
    }
    static var allValueStrings: [String] { InputFormat.allCases.map(\.rawValue) }
}

func fileBytes(_ path: String) -> Int64 {
    SystemFile.status(path)?.size ?? 0
}

extension AppendCommand {
    /// `append --nats`: every input is checked before anything is published; returns once JetStream has
    /// acknowledged every event.
    func appendToCluster(_ urls: [String], _ inputs: [String]) throws {
        if skipInvalid {
            throw ValidationError(
                "--skip-invalid is not available with --nats: a cluster append publishes all lines or none")
        }
        try withCluster(urls) { client in
            var batches: [EventBatch] = []
            var problems: [InputProblem] = []
            for input in inputs {
                let bytes: [UInt8]
                do throws(TouchLogError) { bytes = try readWholeInput(input) } catch {
                    throw TouchLogError(code: error.code, message: error.message + "; nothing appended")
                }
                do {
                    batches.append(
                        try EventBatch.parse(bytes, format: format?.format, source: inputs.count > 1 ? input : nil))
                } catch let error as TouchLogError where error.code == .invalidInput {
                    problems += error.problems
                }
            }
            if !problems.isEmpty {
                throw TouchLogError(
                    code: .invalidInput,
                    message: "\(problems.count == 1 ? "an invalid line" : "invalid lines"); nothing published",
                    problems: problems)
            }
            var total = 0
            for batch in batches { total += try client.append(batch) }
            var out = StandardOutput()
            out.write(
                "appended \(total) event\(total == 1 ? "" : "s") to cluster \(client.config.id) (acknowledged by JetStream)\n"
            )
            out.flush()
        }
    }
}
