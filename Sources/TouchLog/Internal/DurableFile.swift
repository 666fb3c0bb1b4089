import TouchLogStorage

/// Small files written atomically and checked when read: segment definitions (and later snapshots).
///
/// The file is `touchlog <kind> sha256=<64 hex digits>\n` followed by the body; the hash covers the body.
/// Writing goes to a temporary name, is synced, renamed into place, and the directory is synced.
package enum DurableFile {
    package static func write(_ body: [UInt8], kind: String, to path: String) throws(TouchLogError) {
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
    package static func read(_ path: String, kind: String) throws(TouchLogError) -> [UInt8] {
        let prefix = Array("touchlog \(kind) sha256=".utf8)
        let headerLength = prefix.count + 65
        let header: [UInt8]
        let body: [UInt8]
        let size: Int
        do {
            let file = try SystemFile.open(path, .readOnly)
            defer { file.close() }
            size = Int(try file.size())
            header = try file.read(at: 0, count: min(headerLength, size))
            body = try file.read(at: Int64(header.count), count: max(0, size - headerLength))
        } catch {
            throw TouchLogError(
                code: error.isNotFound ? .notFound : .io, message: "cannot read \(path): \(error.reason)")
        }
        guard header.count + body.count == size else {
            throw TouchLogError(code: .corrupt, message: "\(path): the file ends early (it shrank while being read)")
        }
        guard header.count == headerLength, header.starts(with: prefix), header[headerLength - 1] == 0x0A else {
            throw TouchLogError(code: .corrupt, message: "\(path): not a touchlog \(kind) file (bad header)")
        }
        guard
            String(decoding: header[prefix.count..<(headerLength - 1)], as: UTF8.self)
                == BlockHash.sha256(of: body).description
        else {
            throw TouchLogError(code: .corrupt, message: "\(path): checksum mismatch (the file was altered or damaged)")
        }
        return body
    }

    static func syncDirectory(_ path: String) throws(TouchLogError) {
        do { try SystemFile.syncDirectory(path.isEmpty ? "." : path) } catch {
            throw TouchLogError(code: .io, message: "cannot sync directory \(path): \(error)")
        }
    }
}
