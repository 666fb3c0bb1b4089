import TouchLogStorage

/// The one error type of the TouchLog module.
///
/// Storage failures keep their `StorageError` as `cause` and their location; ``code`` says what a caller
/// (or the CLI's exit status) should make of it.
public struct TouchLogError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure an error is: compare with the static codes (`error.code == .notFound`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, as the server's JSON errors and `touchlog` messages spell it (`notFound`).
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Reading or writing the store failed.
        public static let io = Code("io")
        /// The store's files are damaged.
        public static let corrupt = Code("corrupt")
        /// Another process is the store's writer.
        public static let locked = Code("locked")
        /// No store (or no input file) where one was named.
        public static let notFound = Code("notFound")
        /// Input lines broke the contract; nothing was appended.
        public static let invalidInput = Code("invalidInput")
        /// An argument is out of range or inconsistent.
        public static let invalidArgument = Code("invalidArgument")
        /// The writer stopped after a failed write or fsync.
        public static let writerFailed = Code("writerFailed")
        /// A change was asked of a store opened read-only.
        public static let readOnly = Code("readOnly")
        /// The store's format cannot do what was asked (erasure needs format 3).
        public static let unsupported = Code("unsupported")
        /// The change would break what the store holds (removing a segment other segments refer to).
        public static let conflict = Code("conflict")

        /// The code with this ``name`` (one process telling another what failed), or nil for a name it does not know.
        package init?(named name: String) {
            let known: [Code] = [
                .io, .corrupt, .locked, .notFound, .invalidInput, .invalidArgument, .writerFailed, .readOnly,
                .unsupported, .conflict,
            ]
            guard let code = known.first(where: { $0.name == name }) else { return nil }
            self = code
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// One sentence for a person: what failed and, where it helps, what to do.
    public var message: String
    /// For ``Code-swift.struct/invalidInput``: the first problems found (at most ``IngestOptions/maxProblems``).
    public var problems: [InputProblem] = []
    /// The underlying error, when there is one (a `StorageError` naming the file, block and byte).
    public var cause: (any Error & Sendable)?

    /// An error of `code` with `message`.
    public init(code: Code, message: String, problems: [InputProblem] = [], cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.problems = problems
        self.cause = cause
    }

    public var description: String { message }

    init(_ storage: StorageError) {
        let code: Code
        switch storage.code {
        case .corrupt, .unsupportedVersion: code = .corrupt
        case .locked: code = .locked
        case .notFound: code = .notFound
        case .invalidArgument: code = .invalidArgument
        case .writerFailed: code = .writerFailed
        default: code = .io
        }
        self.init(code: code, message: storage.description, cause: storage)
    }
}

extension TouchLogError {
    /// `error` as a ``TouchLogError``: itself when it is one, else an I/O error saying what failed.
    init(wrapping error: any Error, _ what: String) {
        if let error = error as? TouchLogError {
            self = error
        } else if let error = error as? StorageError {
            self.init(error)
        } else {
            self.init(code: .io, message: "\(what): \(error)", cause: error)
        }
    }
}

/// Runs `body`, turning storage errors into ``TouchLogError``.
func storage<T>(_ body: () throws(StorageError) -> T) throws(TouchLogError) -> T {
    do { return try body() } catch { throw TouchLogError(error) }
}
