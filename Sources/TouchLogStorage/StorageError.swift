/// The one error type of the storage module.
///
/// Shaped like swift-nio's `FileSystemError`: a ``Code`` that can grow without breaking callers, a
/// message a user can act on (it names the file, block and byte where it can), an optional
/// ``location`` for programs, and the underlying `cause` when there is one.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name (`corrupt`).
        public let name: String
        private init(_ name: String) { self.name = name }
        /// The name.
        public var description: String { name }

        /// An operating-system call failed (read, write, fsync, open, …).
        public static let io = Code("io")
        /// Stored bytes fail a check: a checksum, the hash chain, an offset sequence, a format rule.
        public static let corrupt = Code("corrupt")
        /// Another process holds the store's writer lock.
        public static let locked = Code("locked")
        /// The store directory or a file it needs does not exist.
        public static let notFound = Code("notFound")
        /// A caller passed something the storage layer cannot accept (an empty block, a too-large payload).
        public static let invalidArgument = Code("invalidArgument")
        /// The writer stopped after an earlier write or fsync failed; it must be reopened.
        public static let writerFailed = Code("writerFailed")
        /// The store was written by a newer format version.
        public static let unsupportedVersion = Code("unsupportedVersion")
    }

    /// Where in the log a problem was found.
    public struct Location: Hashable, Sendable, CustomStringConvertible {
        /// The log file's path relative to the store directory, such as `log/00000000000000000000.tlog`.
        public var file: String
        /// The 0-based index of the block inside that file, when known.
        public var block: Int?
        /// The byte position inside that file.
        public var byte: Int64?

        /// A location in `file`.
        public init(file: String, block: Int? = nil, byte: Int64? = nil) {
            self.file = file
            self.block = block
            self.byte = byte
        }

        /// The location as words: `log/… block 3 at byte 4096`.
        public var description: String {
            var text = file
            if let block { text += " block \(block)" }
            if let byte { text += " at byte \(byte)" }
            return text
        }
    }

    /// What kind of failure this is.
    public var code: Code
    /// One sentence for a person, naming the file, block and byte where it can.
    public var message: String
    /// Where in the log, for programs.
    public var location: Location?
    /// The underlying error (a ``SystemCallError``), when there is one.
    public var cause: (any Error & Sendable)?

    /// An error of `code` with `message`.
    public init(code: Code, message: String, location: Location? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.cause = cause
    }

    /// The message.
    public var description: String {
        var text = location.map { "\($0): \(message)" } ?? message
        if let cause { text += " (\(cause))" }
        return text
    }
}

/// An `errno` value with the name of the call that returned it.
public struct SystemCallError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The system call that failed (`fsync`).
    public var call: String
    /// The `errno` it set.
    public var errno: Int32

    /// The failure of `call` with `errno`.
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// The call and the operating system's words for the error.
    public var description: String {
        "\(call): \(Platform.errorText(errno))"
    }
}
