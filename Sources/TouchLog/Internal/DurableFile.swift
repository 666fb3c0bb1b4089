import Glibc
import TouchLogStorage

/// Small files written atomically and checked when read: segment definitions (and later snapshots).
///
/// The file is `touchlog <kind> sha256=<64 hex digits>\n` followed by the body; the hash covers the body.
/// Writing goes to a temporary name, is synced, renamed into place, and the directory is synced.
enum DurableFile {
    static func write(_ body: [UInt8], kind: String, to path: String) throws(TouchLogError) {
        let header = "touchlog \(kind) sha256=\(BlockHash.sha256(of: body))\n"
        let bytes = Array(header.utf8) + body
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("create", temporary) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                close(fd)
                throw ioError("write", temporary)
            }
            done += n
        }
        guard fsync(fd) == 0 else { close(fd); throw ioError("sync", temporary) }
        close(fd)
        guard rename(temporary, path) == 0 else { throw ioError("rename", temporary) }
        try syncDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)]))
    }

    /// The body of a file written by ``write(_:kind:to:)``; throws `corrupt` when its hash or header is wrong.
    static func read(_ path: String, kind: String) throws(TouchLogError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw TouchLogError(code: errno == ENOENT ? .notFound : .io, message: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw ioError("read", path) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
        }
        let prefix = Array("touchlog \(kind) sha256=".utf8)
        guard let newline = bytes.firstIndex(of: 0x0A), bytes.starts(with: prefix), newline == prefix.count + 64 else {
            throw TouchLogError(code: .corrupt, message: "\(path): not a touchlog \(kind) file (bad header)")
        }
        let body = Array(bytes[(newline + 1)...])
        guard String(decoding: bytes[prefix.count..<newline], as: UTF8.self) == BlockHash.sha256(of: body).description else {
            throw TouchLogError(code: .corrupt, message: "\(path): checksum mismatch (the file was altered or damaged)")
        }
        return body
    }

    static func syncDirectory(_ path: String) throws(TouchLogError) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ioError("open", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ioError("sync", path) }
    }

    private static func ioError(_ what: String, _ path: String) -> TouchLogError {
        TouchLogError(code: .io, message: "cannot \(what) \(path): \(String(cString: strerror(errno)))")
    }
}
