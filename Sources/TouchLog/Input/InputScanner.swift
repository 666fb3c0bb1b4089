import TouchLogStorage

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

    /// The file or stream read; nil for an input in memory.
    let file: SystemFile?
    let name: String
    /// An input already in memory (a request body): read from here instead of `file`.
    var memory: [UInt8]? = nil
    var quoteAware = false
    var maxRecordBytes = 1 << 20
    var chunkBytes = 256 << 10

    /// Opens `path` for reading ("-" is standard input).
    static func open(_ path: String) throws(InputError) -> InputScanner {
        if path == "-" { return InputScanner(file: .standardInput, name: "-") }
        let file: SystemFile
        do throws(SystemCallError) { file = try SystemFile.open(path, .readOnly) } catch {
            throw InputError(
                kind: error.isNotFound ? .notFound : .unreadable, message: "cannot read \(path): \(error.reason)")
        }
        if (try? file.status().kind) == .directory {
            file.close()
            throw InputError(kind: .unreadable, message: "cannot read \(path): it is a directory")
        }
        return InputScanner(file: file, name: path)
    }

    /// An input already in memory.
    static func bytes(_ bytes: [UInt8], name: String) -> InputScanner {
        InputScanner(file: nil, name: name, memory: bytes)
    }

    func close() {
        file?.close()
    }

    /// True for a record of only spaces and tabs (skipped).
    private static func isBlank(_ record: UnsafeRawBufferPointer) -> Bool {
        guard let first = record.first, first == 0x20 || first == 0x09 else { return record.isEmpty }
        return record.allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// Calls `handler` for each record; `progress` gets the bytes read so far.
    ///
    /// The input is read in chunks (``ChunkReader``) into one buffer, records are found in it (``RecordSplitter``),
    /// and the unfinished record at a chunk's end is moved to the buffer's start before the next chunk is read.
    func forEachRecord(progress: (Int64) -> Void = { _ in }, _ handler: (Record) throws -> Void) throws {
        // A small file gets a buffer its size (plus one byte to see its end); the buffer grows to the full size if the
        // file turns out longer, so that it always has room for a chunk after a carried-over record.
        let fullSize = chunkBytes + maxRecordBytes
        var reader = ChunkReader(file: file, name: name, memory: memory)
        var buffer = [UInt8](repeating: 0, count: min(fullSize, max(1 << 16, (reader.knownSize ?? fullSize) + 1)))
        var splitter = RecordSplitter(quoteAware: quoteAware)
        var filled = 0
        var line = 1
        var skippingLongRecord = false
        var scanFrom = 0
        var firstRecord = true
        var atEOF = false
        while !atEOF {
            // Read more after the bytes carried over from the last chunk.
            if filled == buffer.count { buffer.append(contentsOf: repeatElement(0, count: fullSize - buffer.count)) }
            let got = try reader.read(into: &buffer, from: filled, upTo: chunkBytes)
            if got == 0 { atEOF = true }
            filled += got
            progress(reader.totalRead)
            var recordStart = 0
            try buffer.withUnsafeBytes { raw in
                var i = scanFrom
                while i < filled || (atEOF && recordStart < filled) {
                    let end = splitter.end(in: raw, from: i, to: filled)
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
                    splitter.startRecord()
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
                    raw.baseAddress!.copyMemory(from: raw.baseAddress! + recordStart, byteCount: carried)
                }
            }
            filled = carried
        }
    }
}

/// Reads an input's bytes in chunks: from a file or a stream (a pipe, standard input), or from bytes already in memory.
struct ChunkReader {
    let file: SystemFile?
    let name: String
    let memory: [UInt8]?
    /// How much of `memory` has been handed out.
    private var memoryRead = 0
    /// Bytes read so far.
    private(set) var totalRead: Int64 = 0

    init(file: SystemFile?, name: String, memory: [UInt8]?) {
        self.file = file
        self.name = name
        self.memory = memory
    }

    /// The input's size when it is known in advance (bytes in memory, a regular file).
    var knownSize: Int? {
        if let memory { return memory.count }
        guard let status = try? file?.status(), status.kind == .file else { return nil }
        return Int(status.size)
    }

    /// Reads into `buffer` from index `start`, at most `limit` bytes and up to its end; returns how many bytes came
    /// (0: the end of the input).
    mutating func read(into buffer: inout [UInt8], from start: Int, upTo limit: Int) throws(InputError) -> Int {
        let got: Int
        let end = start + min(limit, buffer.count - start)
        if let memory {
            got = min(end - start, memory.count - memoryRead)
            if got > 0 { buffer.replaceSubrange(start..<start + got, with: memory[memoryRead..<memoryRead + got]) }
            memoryRead += got
        } else {
            let result = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemCallError) in
                    try file!.readNext(into: UnsafeMutableRawBufferPointer(rebasing: raw[start..<end]))
                }
            }
            switch result {
            case .success(let n): got = n
            case .failure(let error):
                throw InputError(kind: .unreadable, message: "cannot read \(name): \(error.reason)")
            }
        }
        totalRead += Int64(got)
        return got
    }
}

/// Finds where records end: at a newline, or, for CSV (`quoteAware`), at a newline outside a quoted field.
///
/// CSV state is kept across calls (a record may span chunks): inside a quoted field; at the start of a field (only
/// there does a quote open one); just after a closing quote (where a second quote is an escaped quote, back inside).
/// A stray quote elsewhere is left to the parser to refuse, and does not swallow the lines that follow.
struct RecordSplitter {
    let quoteAware: Bool
    private var inQuotes = false
    private var atFieldStart = true
    private var justClosed = false

    init(quoteAware: Bool) { self.quoteAware = quoteAware }

    /// The index of the newline that ends the record being scanned, looking from `start` to `end` of `raw`; `end`
    /// when it does not end there.
    @inline(__always)
    mutating func end(in raw: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int {
        guard quoteAware else {
            guard let found = Memory.firstOffset(of: 0x0A, in: raw.baseAddress! + start, count: end - start) else {
                return end
            }
            return start + found
        }
        var i = start
        while i < end {
            let c = raw[i]
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
                if c == 0x0A { return i }
                atFieldStart = c == UInt8(ascii: ",")
                justClosed = false
            }
            i += 1
        }
        return end
    }

    /// Resets the CSV state for the next record.
    mutating func startRecord() {
        inQuotes = false
        atFieldStart = true
        justClosed = false
    }
}

/// A problem with an input as a whole (it cannot be opened or read), as opposed to a bad line.
public struct InputError: Error, Sendable, CustomStringConvertible {
    /// Why the input could not be read: it does not exist, reading it failed, or it is neither CSV nor JSON Lines.
    public enum Kind: Sendable {
        /// There is no such file.
        case notFound
        /// It could not be opened or read (permissions, a directory, an I/O error).
        case unreadable
        /// Its first bytes are neither CSV nor JSON Lines.
        case invalidFormat
    }
    /// What went wrong.
    public var kind: Kind
    /// One sentence naming the input.
    public var message: String
    public var description: String { message }
}
