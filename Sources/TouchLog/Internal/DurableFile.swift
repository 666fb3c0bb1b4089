import Glibc
import TouchLogStorage

/// Small files written atomically and checked when read: segment definitions (and later snapshots).
///
/// The file is `touchlog <kind> sha256=<64 hex digits>\n` followed by the body; the hash covers the body.
/// Writing goes to a temporary name, is synced, renamed into place, and the directory is synced.
enum DurableFile {
    static func write(_ body: [UInt8], kind: String, to path: String) throws(TouchLogError) {
        let header = "touchlog \(kind) sha256=\(BlockHash.sha256(of: body))\n"
        let temporary = path + ".tmp"
        do {
            let file = try SystemFile.open(temporary, .createReadWrite)
            defer { file.close() }
            try file.truncate(to: 0)
            try file.write(Array(header.utf8) + body, at: 0)
            try file.sync()
            try SystemFile.rename(temporary, path)
            try SystemFile.syncDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]))
        } catch {
            throw TouchLogError(code: .io, message: "cannot write \(path): \(error)")
        }
    }

    /// The body of a file written by ``write(_:kind:to:)``; throws `corrupt` when its hash or header is wrong.
    static func read(_ path: String, kind: String) throws(TouchLogError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw TouchLogError(code: errno == ENOENT ? .notFound : .io, message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw ioError("stat", path) }
        let prefix = Array("touchlog \(kind) sha256=".utf8)
        let headerLength = prefix.count + 65
        var header = [UInt8](repeating: 0, count: min(headerLength, Int(status.st_size)))
        var body = [UInt8](repeating: 0, count: max(0, Int(status.st_size) - headerLength))
        guard try readFully(fd, &header, at: 0, path) == header.count, try readFully(fd, &body, at: header.count, path) == body.count else {
            throw TouchLogError(code: .corrupt, message: "\(path): the file ends early (it shrank while being read)")
        }
        guard header.count == headerLength, header.starts(with: prefix), header[headerLength - 1] == 0x0A else {
            throw TouchLogError(code: .corrupt, message: "\(path): not a touchlog \(kind) file (bad header)")
        }
        guard String(decoding: header[prefix.count..<(headerLength - 1)], as: UTF8.self) == BlockHash.sha256(of: body).description else {
            throw TouchLogError(code: .corrupt, message: "\(path): checksum mismatch (the file was altered or damaged)")
        }
        return body
    }

    /// Fills `buffer` from `offset`; returns how many bytes there were (fewer only at the end of the file).
    private static func readFully(_ fd: Int32, _ buffer: inout [UInt8], at offset: Int, _ path: String) throws(TouchLogError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func syncDirectory(_ path: String) throws(TouchLogError) {
        do { try SystemFile.syncDirectory(path.isEmpty ? "." : path) } catch {
            throw TouchLogError(code: .io, message: "cannot sync directory \(path): \(error)")
        }
    }

    private static func ioError(_ what: String, _ path: String) -> TouchLogError {
        TouchLogError(code: .io, message: "cannot \(what) \(path): \(String(cString: strerror(errno)))")
    }
}
