/// Segment references (`{"segment": NAME}`): resolving a definition's references to the definitions they name,
/// refusing missing segments, cycles and chains deeper than ``SegmentDefinition/referenceDepthLimit``.
extension SegmentDefinition {
    /// How deep references may nest (a segment referring to one that refers to another … counts each step).
    public static let referenceDepthLimit = 8

    /// Each reference of the rules, with its JSON path (`rules[1].rules[0].segment`), in rule order.
    public var references: [(path: String, name: String)] {
        var found: [(path: String, name: String)] = []
        func walk(_ rule: Rule, _ path: String) {
            switch rule {
            case .segment(let name, _): found.append((path + ".segment", name))
            case .group(_, let rules, _): for (i, r) in rules.enumerated() { walk(r, "\(path).rules[\(i)]") }
            case .interaction, .sequence: break
            }
        }
        for (i, r) in rules.enumerated() { walk(r, "rules[\(i)]") }
        return found
    }

    /// The names this definition's rules refer to directly, in rule order, without repeats.
    public var referencedNames: [String] {
        var names: [String] = []
        for (_, name) in references where !names.contains(name) { names.append(name) }
        return names
    }

    /// This definition with ``referenced`` holding every segment it refers to, directly or not: those it already
    /// holds, else what `lookup` gives (nil: no such segment). Fails, naming the JSON path, on a missing segment, a
    /// cycle (naming its members) or references nested deeper than ``referenceDepthLimit``.
    package func resolving(_ lookup: (String) throws(TouchLogError) -> SegmentDefinition?) throws(TouchLogError)
        -> SegmentDefinition
    {
        var resolved = self
        var table: [String: SegmentDefinition] = [:]
        func definition(_ name: String) throws(TouchLogError) -> SegmentDefinition? {
            if name == self.name { return self }
            if let known = table[name] ?? referenced[name] { return known }
            guard let found = try lookup(name) else { return nil }
            table[name] = found
            return found
        }
        // Depth first from each reference, with the chain that led there.
        func visit(_ name: String, chain: [String], path: String) throws(TouchLogError) {
            if let at = chain.firstIndex(of: name) {
                let cycle = (chain[at...] + [name]).map { "\"\($0)\"" }.joined(separator: " → ")
                throw Self.refusal(path, "refers back to itself: \(cycle) is a cycle")
            }
            guard chain.count <= Self.referenceDepthLimit else {
                throw Self.refusal(
                    path,
                    "references nest more than \(Self.referenceDepthLimit) deep: "
                        + (chain + [name]).joined(separator: " → "))
            }
            guard let found = try definition(name) else {
                throw Self.refusal(
                    path,
                    "no segment named \"\(name)\"" + (chain.count > 1 ? " (referred to by \"\(chain.last!)\")" : ""))
            }
            if name != self.name { table[name] = found }
            for next in found.referencedNames { try visit(next, chain: chain + [name], path: path) }
        }
        for (path, name) in references { try visit(name, chain: [self.name], path: path) }
        resolved.referenced = table
        return resolved
    }

    static func refusal(_ path: String, _ message: String) -> TouchLogError {
        let problem = DefinitionError(path: path, message: message)
        return TouchLogError(code: .invalidInput, message: problem.description, cause: problem)
    }
}

extension SegmentDefinition {
    /// The definition with each reference replaced by a group of the referenced definition's rules (from
    /// ``referenced``), recursively: what the engine evaluates and what snapshots are keyed by, so a snapshot of a
    /// referrer is of the referenced definitions it was computed with. (Within known profiles, which every answer
    /// is restricted to, a referenced segment's rule tree holds exactly for its members.)
    package var expanded: SegmentDefinition {
        guard !references.isEmpty else { return self }
        func expand(_ rule: Rule, depth: Int) -> Rule {
            switch rule {
            case .interaction, .sequence: return rule
            case .group(let match, let rules, let negate):
                return .group(match, rules.map { expand($0, depth: depth) }, negate: negate)
            case .segment(let name, let negate):
                guard let target = referenced[name], depth < Self.referenceDepthLimit else { return rule }
                return .group(target.match, target.rules.map { expand($0, depth: depth + 1) }, negate: negate)
            }
        }
        var result = SegmentDefinition(
            name: name, description: description, match: match, rules: rules.map { expand($0, depth: 0) })
        result.referenced = referenced
        return result
    }
}
