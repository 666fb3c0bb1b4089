import TouchLogStorage

/// Small files written atomically and checked when read: segment definitions, snapshots.
///
/// The file is `touchlog <kind> sha256=<64 hex digits>\n` followed by the body, or, for files that only save work
/// (snapshots), `touchlog <kind> xxh3=<16 hex digits>\n` (the XXH3 64-bit hash, seed 0): such a file is read on a
/// query's path, and at a few MB SHA-256 took as long as decoding it. Either hash covers the body; a reader accepts
/// both. Writing goes to a temporary name, is synced, renamed into place, and the directory is synced.
package enum DurableFile {
    /// How a file's body is checked.
    package enum Checksum: Sendable {
        /// SHA-256: what an audit may rely on (definitions).
        case sha256
        /// XXH3 64-bit: damage detection for derived state that can always be rebuilt (snapshots).
        case xxh3

        var name: String {
            switch self {
            case .sha256: "sha256"
            case .xxh3: "xxh3"
            }
        }

        /// The lowercase hex digest of `body`.
        func digest(_ body: [UInt8]) -> String {
            switch self {
            case .sha256: return BlockHash.sha256(of: body).description
            case .xxh3:
                let hex = String(body.withUnsafeBytes { XXH3.hash($0) }, radix: 16)
                return String(repeating: "0", count: 16 - hex.count) + hex
            }
        }

        /// Hex digits of the digest.
        var digits: Int {
            switch self {
            case .sha256: 64
            case .xxh3: 16
            }
        }
    }

    package static func write(
        _ body: [UInt8], kind: String, to path: String, checksum: Checksum = .sha256
    ) throws(TouchLogError) {
        let header = "touchlog \(kind) \(checksum.name)=\(checksum.digest(body))\n"
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

    /// The body of a file written by ``write(_:kind:to:checksum:)`` with either checksum; throws `corrupt` when its
    /// hash or header is wrong.
    package static func read(_ path: String, kind: String) throws(TouchLogError) -> [UInt8] {
        let longest = "touchlog \(kind) sha256=".utf8.count + 65
        let head: [UInt8]
        let body: [UInt8]
        let size: Int
        do {
            let file = try SystemFile.open(path, .readOnly)
            defer { file.close() }
            size = Int(try file.size())
            let read = try file.read(at: 0, count: min(longest, size))
            // The header is the first line; the body is read on its own, straight into its array.
            head = Array(read[..<(read.firstIndex(of: 0x0A).map { $0 + 1 } ?? read.count)])
            body = try file.read(at: Int64(head.count), count: max(0, size - head.count))
        } catch {
            throw TouchLogError(
                code: error.isNotFound ? .notFound : .io, message: "cannot read \(path): \(error.reason)")
        }
        guard head.count + body.count == size else {
            throw TouchLogError(code: .corrupt, message: "\(path): the file ends early (it shrank while being read)")
        }
        let bad = TouchLogError(code: .corrupt, message: "\(path): not a touchlog \(kind) file (bad header)")
        guard head.last == 0x0A else { throw bad }
        let header = String(decoding: head.dropLast(), as: UTF8.self)
        for checksum in [Checksum.sha256, .xxh3] {
            let prefix = "touchlog \(kind) \(checksum.name)="
            guard header.hasPrefix(prefix) else { continue }
            let digest = header.dropFirst(prefix.count)
            guard digest.count == checksum.digits else { throw bad }
            guard digest == checksum.digest(body) else {
                throw TouchLogError(
                    code: .corrupt, message: "\(path): checksum mismatch (the file was altered or damaged)")
            }
            return body
        }
        throw bad
    }

    static func syncDirectory(_ path: String) throws(TouchLogError) {
        do { try SystemFile.syncDirectory(path.isEmpty ? "." : path) } catch {
            throw TouchLogError(code: .io, message: "cannot sync directory \(path): \(error)")
        }
    }
}
