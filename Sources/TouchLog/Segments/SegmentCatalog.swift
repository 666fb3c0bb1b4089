import TouchLogStorage

/// The segment definitions of a store, every version kept.
///
/// `STORE/segments/NAME/000001.json`, `000002.json`, …: each version as a checksummed file
/// (see `DurableFile`). Removing a segment writes a `NNNNNN.removed` marker as its next version: the
/// earlier versions stay for audit, and putting the name again continues the numbering.
public struct SegmentCatalog: Sendable {
    let directory: String

    /// One version of a segment.
    public struct Version: Sendable, Equatable {
        /// The version number: 1 for the first, one more for each change or removal.
        public var number: Int
        /// Nil for a removal marker.
        public var definition: SegmentDefinition?
    }

    init(layout: StoreLayout) { directory = layout.segments }

    /// Every version of `name`, oldest first (empty when it was never defined).
    public func history(_ name: String) throws(TouchLogError) -> [Version] {
        guard SegmentDefinition.isValidName(name) else {
            throw TouchLogError(code: .notFound, message: "no segment named \"\(name)\"")
        }
        let folder = directory + "/" + name
        guard let names = try? SystemFile.list(folder) else { return [] }
        var versions: [Version] = []
        for file in names.sorted() {
            let parts = file.split(separator: ".")
            guard parts.count == 2, let number = Int(parts[0]), parts[0].count == 6 else { continue }
            if parts[1] == "removed" {
                versions.append(Version(number: number, definition: nil))
            } else if parts[1] == "json" {
                let body = try DurableFile.read(folder + "/" + file, kind: "segment")
                do {
                    versions.append(
                        Version(
                            number: number,
                            definition: try SegmentDefinition(json: String(decoding: body, as: UTF8.self))))
                } catch {
                    throw TouchLogError(
                        code: .corrupt, message: "segments/\(name)/\(file): stored definition is invalid: \(error)")
                }
            }
        }
        return versions.sorted { $0.number < $1.number }
    }

    /// The current definition of `name` and its version, its references resolved (``SegmentDefinition/referenced``);
    /// `notFound` when never defined or removed.
    public func current(_ name: String) throws(TouchLogError) -> (version: Int, definition: SegmentDefinition) {
        let (version, definition) = try stored(name)
        return (version, try resolve(definition))
    }

    /// The current definition of `name` as stored, its references not resolved.
    private func stored(_ name: String) throws(TouchLogError) -> (version: Int, definition: SegmentDefinition) {
        guard let last = try history(name).last, let definition = last.definition else {
            throw TouchLogError(code: .notFound, message: "no segment named \"\(name)\" (see `touchlog segment list`)")
        }
        return (last.number, definition)
    }

    /// `definition` with the segments it refers to resolved to their current versions here (those it already holds
    /// in ``SegmentDefinition/referenced`` are kept); `invalidInput`, naming the rule, when one is missing, the
    /// references form a cycle or nest too deep.
    public func resolve(_ definition: SegmentDefinition) throws(TouchLogError) -> SegmentDefinition {
        guard !definition.references.isEmpty else { return definition }
        return try definition.resolving { name throws(TouchLogError) in
            do throws(TouchLogError) { return try stored(name).definition } catch  where error.code == .notFound {
                return nil
            }
        }
    }

    /// Version `number` of `name`.
    public func version(_ name: String, _ number: Int) throws(TouchLogError) -> SegmentDefinition {
        let all = try history(name)
        guard let found = all.first(where: { $0.number == number }) else {
            throw TouchLogError(
                code: .notFound,
                message: "segment \"\(name)\" has no version \(number)"
                    + (all.isEmpty ? "" : " (it has 1–\(all.last!.number))"))
        }
        guard let definition = found.definition else {
            throw TouchLogError(code: .notFound, message: "version \(number) of segment \"\(name)\" is its removal")
        }
        return definition
    }

    /// The current segments: name, version and definition (references resolved), sorted by name.
    public func list() throws(TouchLogError) -> [(name: String, version: Int, definition: SegmentDefinition)] {
        let names = ((try? SystemFile.list(directory)) ?? []).filter { SegmentDefinition.isValidName($0) }.sorted()
        var result: [(name: String, version: Int, definition: SegmentDefinition)] = []
        for name in names {
            if let last = try history(name).last, let definition = last.definition {
                result.append((name, last.number, (try? resolve(definition)) ?? definition))
            }
        }
        return result
    }

    /// Stores `definition` as the next version of its name; returns the version and whether anything changed
    /// (putting the current definition again stores nothing).
    func put(_ definition: SegmentDefinition) throws(TouchLogError) -> (version: Int, changed: Bool) {
        // With every other segment as it is now: refuses missing segments, cycles and deep chains.
        var fresh = definition
        fresh.referenced = [:]
        _ = try resolve(fresh)
        let history = try history(definition.name)
        if let last = history.last, last.definition == definition { return (last.number, false) }
        let number = (history.last?.number ?? 0) + 1
        let folder = directory + "/" + definition.name
        if (try? SystemFile.makeDirectory(folder)) == true { try DurableFile.syncDirectory(directory) }
        try DurableFile.write(
            Array((definition.json + "\n").utf8), kind: "segment", to: folder + "/" + Self.fileName(number, "json"))
        return (number, true)
    }

    /// Marks `name` removed; returns the marker's version.
    func remove(_ name: String) throws(TouchLogError) -> Int {
        let (version, _) = try stored(name)
        let referrers = try list().filter { $0.name != name && $0.definition.referencedNames.contains(name) }.map(
            \.name)
        guard referrers.isEmpty else {
            throw TouchLogError(
                code: .conflict,
                message: "segment \"\(name)\" is referred to by "
                    + referrers.map { "\"\($0)\"" }.joined(separator: ", ")
                    + ": change or remove \(referrers.count == 1 ? "it" : "them") first")
        }
        let path = directory + "/" + name + "/" + Self.fileName(version + 1, "removed")
        try DurableFile.write([], kind: "segment-removed", to: path)
        return version + 1
    }

    static func fileName(_ number: Int, _ suffix: String) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits + "." + suffix
    }
}

extension StoreReader {
    /// The store's segment definitions.
    package var segments: SegmentCatalog { SegmentCatalog(layout: StoreLayout(root: directory)) }
}
