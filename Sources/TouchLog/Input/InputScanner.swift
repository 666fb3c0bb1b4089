import Glibc

/// Reads an input (a file, standard input, or bytes in memory) in large chunks and hands out its records with line numbers.
///
/// A record is a line (its `\n` and any `\r` before it removed); with `quoteAware`, a newline inside
/// double quotes does not end it (CSV). Blank records are skipped. A record longer than `maxRecordBytes`
/// is not buffered: the handler gets it as ``Record/tooLong(line:)``.
struct InputScanner {
    enum Record {
        case text(UnsafeRawBufferPointer, line: Int)
        case tooLong(line: Int)

        /// The record's bytes (none for a record too long to keep).
        var bytes: UnsafeRawBufferPointer {
            if case .text(let bytes, _) = self { return bytes }
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
    }

    let descriptor: Int32
    let name: String
    /// An input already in memory (a request body): read from here instead of `descriptor`.
    var memory: [UInt8]? = nil
    var quoteAware = false
    var maxRecordBytes = 1 << 20
    var chunkBytes = 4 << 20

    /// Opens `path` for reading ("-" is standard input).
    static func open(_ path: String) throws(InputError) -> InputScanner {
        if path == "-" { return InputScanner(descriptor: 0, name: "-") }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw InputError(
                kind: code == ENOENT ? .notFound : .unreadable,
                message: "cannot read \(path): \(String(cString: strerror(code)))")
        }
        var info = stat()
        if fstat(fd, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            Glibc.close(fd)
            throw InputError(kind: .unreadable, message: "cannot read \(path): it is a directory")
        }
        return InputScanner(descriptor: fd, name: path)
    }

    /// An input already in memory.
    static func bytes(_ bytes: [UInt8], name: String) -> InputScanner {
        InputScanner(descriptor: -1, name: name, memory: bytes)
    }

    func close() {
        if descriptor > 0 { Glibc.close(descriptor) }
    }

    /// True for a record of only spaces and tabs (skipped).
    private static func isBlank(_ record: UnsafeRawBufferPointer) -> Bool {
        guard let first = record.first, first == 0x20 || first == 0x09 else { return record.isEmpty }
        return record.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// Calls `handler` for each record; `progress` gets the bytes read so far.
    func forEachRecord(progress: (Int64) -> Void = { _ in }, _ handler: (Record) throws -> Void) throws {
        // A small file gets a buffer its size (plus one byte to see its end); the buffer grows to the full size if the
        // file turns out longer, so that it always has room for a chunk after a carried-over record.
        let fullSize = chunkBytes + maxRecordBytes
        var info = stat()
        let knownSize =
            memory?.count
            ?? (fstat(descriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG ? Int(info.st_size) : fullSize)
        var memoryRead = 0
        var buffer = [UInt8](repeating: 0, count: min(fullSize, max(1 << 16, knownSize + 1)))
        var filled = 0
        var line = 1
        var totalRead: Int64 = 0
        var skippingLongRecord = false
        // CSV state: inside a quoted field; at the start of a field (only there does a quote open one); just after
        // a closing quote (where a second quote is an escaped quote, back inside). A stray quote elsewhere is left to
        // the parser to refuse, and does not swallow the lines that follow.
        var inQuotes = false
        var atFieldStart = true
        var justClosed = false
        var scanFrom = 0
        var firstRecord = true
        var atEOF = false
        while !atEOF {
            // Read more after the bytes carried over from the last chunk.
            if filled == buffer.count { buffer.append(contentsOf: repeatElement(0, count: fullSize - buffer.count)) }
            let got = buffer.withUnsafeMutableBytes { raw in
                guard let memory else { return Glibc.read(descriptor, raw.baseAddress! + filled, raw.count - filled) }
                let n = min(raw.count - filled, memory.count - memoryRead)
                guard n > 0 else { return 0 }
                // Copies the next n bytes of the in-memory input after the bytes already in the buffer.
                memory.withUnsafeBytes { source in
                    _ = memcpy(raw.baseAddress! + filled, source.baseAddress! + memoryRead, n)
                }
                memoryRead += n
                return n
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw InputError(kind: .unreadable, message: "cannot read \(name): \(String(cString: strerror(errno)))")
            }
            if got == 0 { atEOF = true }
            filled += got
            totalRead += Int64(got)
            progress(totalRead)
            var recordStart = 0
            try buffer.withUnsafeBytes { raw in
                var i = scanFrom
                while i < filled || (atEOF && recordStart < filled) {
                    var end: Int
                    if quoteAware {
                        end = i
                        while end < filled {
                            let c = raw[end]
                            if c == UInt8(ascii: "\"") {
                                if inQuotes {
                                    inQuotes = false
                                    justClosed = true
                                } else if atFieldStart || justClosed {
                                    inQuotes = true
                                    justClosed = false
                                }
                                atFieldStart = false
                            } else if !inQuotes {
                                if c == 0x0A { break }
                                atFieldStart = c == UInt8(ascii: ",")
                                justClosed = false
                            }
                            end += 1
                        }
                    } else if let found = memchr(raw.baseAddress! + i, 0x0A, filled - i) {
                        end = raw.baseAddress!.distance(to: UnsafeRawPointer(found))
                    } else {
                        end = filled
                    }
                    if end == filled && !atEOF {
                        i = end
                        break
                    }
                    let recordLine = line
                    // Only a quoted CSV field can hold a newline inside a record.
                    line += 1 + (quoteAware ? raw[recordStart..<end].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } : 0)
                    if skippingLongRecord {
                        skippingLongRecord = false
                    } else {
                        var slice = UnsafeRawBufferPointer(rebasing: raw[recordStart..<end])
                        if firstRecord && slice.starts(with: [0xEF, 0xBB, 0xBF]) {
                            slice = UnsafeRawBufferPointer(rebasing: slice.dropFirst(3))
                        }
                        if slice.last == 0x0D { slice = UnsafeRawBufferPointer(rebasing: slice.dropLast()) }
                        if slice.count > maxRecordBytes {
                            try handler(.tooLong(line: recordLine))
                        } else if !Self.isBlank(slice) {
                            try handler(.text(slice, line: recordLine))
                        }
                    }
                    firstRecord = false
                    inQuotes = false
                    atFieldStart = true
                    justClosed = false
                    recordStart = min(end + 1, filled)
                    i = recordStart
                    if end == filled { break }
                }
                scanFrom = i - recordStart
            }
            // Keep the unfinished record; if it alone fills the space allowed for one, report and drop it.
            let carried = filled - recordStart
            if carried > maxRecordBytes || (skippingLongRecord && carried > 0 && !atEOF) {
                if !skippingLongRecord {
                    try handler(.tooLong(line: line))
                    skippingLongRecord = true
                }
                line += buffer[recordStart..<filled].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                filled = 0
                scanFrom = 0
                firstRecord = false
                continue
            }
            if recordStart > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + recordStart, carried)
                }
            }
            filled = carried
        }
    }
}

/// A problem with an input as a whole (it cannot be opened or read), as opposed to a bad line.
public struct InputError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case notFound, unreadable, invalidFormat }
    public var kind: Kind
    public var message: String
    public var description: String { message }
}
