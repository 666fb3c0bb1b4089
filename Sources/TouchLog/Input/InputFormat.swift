import Glibc

/// The two input formats of `append`.
public enum InputFormat: String, Sendable, CaseIterable {
    case jsonl
    case csv

    /// The format of the input at `path`: by its extension (`.csv`; `.jsonl`, `.ndjson`, `.json`), else by its
    /// first non-blank byte (`{` means JSON Lines). Standard input (`-`) is JSON Lines unless told otherwise.
    static func detect(path: String) -> InputFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") { return .csv }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") || lower.hasSuffix(".json") || path == "-" {
            return .jsonl
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .jsonl }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress!, 4096) }
        return detect(start: bytes.prefix(max(0, n)))
    }

    /// The format of an input that starts with `start`: JSON Lines when its first non-blank byte is `{` (or it is
    /// blank), else CSV.
    static func detect(start: some Collection<UInt8>) -> InputFormat {
        let first = start.prefix(4096).drop(while: { [0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }).first
        return first == UInt8(ascii: "{") || first == nil ? .jsonl : .csv
    }
}
