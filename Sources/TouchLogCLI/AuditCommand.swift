import ArgumentParser
import TouchLog

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Keep a record of a segment's members at a time that anyone can later check against the store.",
        discussion: """
            `touchlog audit NAME --as-of T` prints one JSON audit record: the segment, its version and definition, T, \
            K (default: the latest recorded time), the log offset and chain head it was computed at, the member \
            count and the SHA-256 of the sorted member list; with --sign KEYFILE, an Ed25519 signature of it all. \
            `audit check RECORD` recomputes it from the store.
            """,
        subcommands: [AuditRecordCommand.self, AuditKeygenCommand.self, AuditCheckCommand.self],
        defaultSubcommand: AuditRecordCommand.self
    )
}

struct AuditRecordCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Print an audit record of a segment as of a time (`touchlog audit NAME …` for short).",
        discussion: """
            The members are folded from the log alone (no snapshot is read), so the record states what the log \
            says. The same store, segment, T and K always give the same bytes.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The segment's name (its current version is audited).") var name: String
    @Option(help: ArgumentHelp("The time the membership is for.", valueName: "time")) var asOf: TimeArgument
    @Option(
        help: ArgumentHelp(
            "Count only events recorded at or before this time (default: the latest recorded time).",
            valueName: "time"))
    var knownAt: TimeArgument?
    @Option(help: ArgumentHelp("Sign the record with this Ed25519 private key (audit keygen).", valueName: "keyfile"))
    var sign: String?

    func run() async throws {
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let key = try sign.map { path throws(TouchLogError) in try AuditSigningKey(contentsOf: path) }
            let store = try TouchLogStore(readingFrom: directory)
            let record = try await store.audit(
                name, at: QueryTime(asOf: asOf.milliseconds, knownAt: knownAt?.milliseconds), signingKey: key)
            var out = StandardOutput()
            out.write(record.json + "\n")
            out.flush()
        }
    }
}

struct AuditKeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Write a new Ed25519 private key to PATH (mode 0600) and its public key to PATH.pub.",
        discussion: """
            Both are PEM files (PKCS #8 and SubjectPublicKeyInfo), which openssl reads too. Existing files are never \
            overwritten. Keep the private key to yourself; give the public key to whoever checks your records.
            """
    )

    @Argument(help: "Where to write the private key.") var path: String

    func run() throws {
        try reportingErrors {
            let key = AuditSigningKey.generate()
            try key.write(to: path)
            var out = StandardOutput()
            out.write("wrote \(path) (private key, mode 0600) and \(path).pub (public key \(key.publicKey.hex))\n")
            out.flush()
        }
    }
}

struct AuditCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Recompute an audit record from the store; exit 0 only if every part of it holds.",
        discussion: """
            Checks that the record is byte for byte as touchlog wrote it, that its signature verifies (by the key \
            given with --public-key, when given), that the store still holds the block it is anchored to at its \
            offset, that the segment's version holds the same definition, and that the members recomputed from the \
            log up to that offset, as of T and known at K, have the same count and digest. Exits 1 naming each part \
            that differs; 65 when RECORD is not an audit record or a key is not an Ed25519 key; 66 when a file is \
            missing.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The record's file (- for standard input).") var record: String
    @Option(
        help: ArgumentHelp(
            "The public key the record must be signed by (PATH.pub from audit keygen).", valueName: "file"))
    var publicKey: String?

    func run() async throws {
        let directory = try storeOptions.directory()
        try await reportingErrorsAsync {
            let key = try publicKey.map { path throws(TouchLogError) in try AuditPublicKey(contentsOf: path) }
            let text = String(decoding: try readWholeInput(record), as: UTF8.self)
            let store = try TouchLogStore(readingFrom: directory)
            let check: AuditCheck
            do { check = try await store.check(text, publicKey: key) } catch let error as TouchLogError
                where error.code == .invalidInput
            {
                throw TouchLogError(
                    code: .invalidInput, message: "\(record == "-" ? "standard input" : record): \(error.message)")
            }
            var out = StandardOutput()
            for note in check.notes { out.write(note + "\n") }
            for problem in check.problems { out.write("differs: \(problem)\n") }
            let count = check.problems.count
            out.write(
                count == 0
                    ? "ok\n"
                    : "FAILED: \(count) part\(count == 1 ? "" : "s") of the record do\(count == 1 ? "es" : "") not hold\n"
            )
            out.flush()
            if count > 0 { throw ExitCode(ExitStatus.failure) }
        }
    }
}
