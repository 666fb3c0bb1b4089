import TouchLogStorage

/// The two input formats of `append`.
public enum InputFormat: String, Sendable, CaseIterable {
    /// JSON Lines: one object per line, `{"time":…,"profile":…,"type":…,"touchpoint":…,"value":…}`.
    case jsonl
    /// CSV with the header `time,profile,type,touchpoint,value`.
    case csv

    /// The format of the input at `path`: by its extension (`.csv`; `.jsonl`, `.ndjson`, `.json`), else by its
    /// first non-blank byte (`{` means JSON Lines). Standard input (`-`) is JSON Lines unless told otherwise.
    static func detect(path: String) -> InputFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".csv") { return .csv }
        if lower.hasSuffix(".jsonl") || lower.hasSuffix(".ndjson") || lower.hasSuffix(".json") || path == "-" {
            return .jsonl
        }
        guard let file = try? SystemFile.open(path, .readOnly) else { return .jsonl }
        defer { file.close() }
        return detect(start: (try? file.read(at: 0, count: 4096)) ?? [])
    }

    /// The format of an input that starts with `start`: JSON Lines when its first non-blank byte is `{` (or it is
    /// blank), else CSV.
    static func detect(start: some Collection<UInt8>) -> InputFormat {
        let first = start.prefix(4096).drop(while: { [0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }).first
        return first == UInt8(ascii: "{") || first == nil ? .jsonl : .csv
    }
}
