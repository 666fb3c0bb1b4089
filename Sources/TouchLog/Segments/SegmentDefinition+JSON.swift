extension SegmentDefinition {
    /// Parses and checks a definition. Unknown fields are refused (a misspelt field would otherwise be silently
    /// ignored and change who is targeted).
    public init(json text: String) throws(DefinitionError) {
        try self.init(value: try JSONValue.parse(text))
    }

    /// Checks a definition already parsed as JSON (one inside a larger document, such as a cluster request).
    package init(value root: JSONValue) throws(DefinitionError) {
        var reader = DefinitionReader()
        self = try reader.definition(root)
    }

    /// The definition as compact JSON, in the grammar's field order (what the store keeps for each version).
    public var json: String { encoded().text }

    package func encoded() -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("name", .string(name))]
        if let description { members.append(("description", .string(description))) }
        members.append(("match", .string(match.rawValue)))
        members.append(("rules", .array(rules.map { $0.encoded() })))
        return .object(members)
    }
}

extension SegmentDefinition.Rule {
    func encoded() -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        switch self {
        case .group(let match, let rules, _):
            members.append(("match", .string(match.rawValue)))
            members.append(("rules", .array(rules.map { $0.encoded() })))
        case .interaction(let rule, _):
            members.append(("interaction", .string(rule.interaction.rawValue)))
            if let touchpoint = rule.touchpoint {
                let text = { (bytes: [UInt8]) in JSONValue.string(String(decoding: bytes, as: UTF8.self)) }
                switch touchpoint {
                case .exactly(let s): members.append(("touchpoint", .object([("exactly", text(s))])))
                case .contains(let s): members.append(("touchpoint", .object([("contains", text(s))])))
                case .startsWith(let s): members.append(("touchpoint", .object([("startsWith", text(s))])))
                case .endsWith(let s): members.append(("touchpoint", .object([("endsWith", text(s))])))
                case .oneOf(let list): members.append(("touchpoint", .object([("oneOf", .array(list.map(text)))])))
                }
            }
            switch rule.timeframe {
            case .allTime: break
            case .last(let ms): members.append(("timeframe", .object([("last", .string(RuleDuration.format(ms)))])))
            case .between(let from, let to):
                var range: [(key: String, value: JSONValue)] = []
                if let from { range.append(("from", .string(Timestamp.format(from)))) }
                if let to { range.append(("to", .string(Timestamp.format(to)))) }
                members.append(("timeframe", .object(range)))
            }
            if rule.atLeast != 1 || rule.atMost != nil {
                var count: [(key: String, value: JSONValue)] = []
                if rule.atLeast != 1 { count.append(("atLeast", .number(String(rule.atLeast)))) }
                if let atMost = rule.atMost { count.append(("atMost", .number(String(atMost)))) }
                members.append(("count", .object(count)))
            }
            if let conversion = rule.conversion { members.append(("conversion", .string(conversion.rawValue))) }
        }
        if isNegated { members.append(("negate", .bool(true))) }
        return .object(members)
    }
}

/// Durations of the rule language: a positive integer and a unit (`ms s m h d w`), exact (`1d` = 86,400,000 ms).
public enum RuleDuration {
    static let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000)]

    /// Milliseconds of `text`, or nil when it is not a duration.
    public static func parse(_ text: String) -> Int64? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit = text.dropFirst(digits.count)
        guard !digits.isEmpty, digits.count <= 15, let n = Int64(digits), n > 0,
            let factor = units.first(where: { $0.0 == unit })?.1
        else { return nil }
        let (ms, overflow) = n.multipliedReportingOverflow(by: factor)
        return overflow || ms > EventLimits.maxTime - EventLimits.minTime ? nil : ms
    }

    /// The shortest exact text for `ms` (`30d`, `90m`, `1500ms`).
    public static func format(_ ms: Int64) -> String {
        for (unit, factor) in units.reversed() where ms % factor == 0 { return "\(ms / factor)\(unit)" }
        return "\(ms)ms"
    }
}

/// Walks a parsed definition, checking it and tracking the JSON path for messages.
private struct DefinitionReader {
    static let maxDepth = 32

    func fail(_ path: String, _ message: String) -> DefinitionError { DefinitionError(path: path, message: message) }

    func object(_ value: JSONValue, _ path: String, allowed: Set<String>) throws(DefinitionError) -> [String: JSONValue] {
        guard case .object(let members) = value else { throw fail(path, "expected an object, found \(value.kind)") }
        var result: [String: JSONValue] = [:]
        for member in members {
            guard allowed.contains(member.key) else {
                throw fail(join(path, member.key), "unknown field (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            result[member.key] = member.value
        }
        return result
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }

    func string(_ value: JSONValue?, _ path: String) throws(DefinitionError) -> String {
        guard let value else { throw fail(path, "is required") }
        guard case .string(let s) = value else { throw fail(path, "expected a string, found \(value.kind)") }
        return s
    }

    func choice<T: RawRepresentable>(_ value: JSONValue?, _ path: String, _ type: T.Type) throws(DefinitionError) -> T where T.RawValue == String {
        let s = try string(value, path)
        guard let v = T(rawValue: s) else { throw fail(path, "unknown value \"\(s)\"") }
        return v
    }

    func bool(_ value: JSONValue?, _ path: String) throws(DefinitionError) -> Bool {
        guard let value else { return false }
        guard case .bool(let b) = value else { throw fail(path, "expected true or false, found \(value.kind)") }
        return b
    }

    func positiveInteger(_ value: JSONValue, _ path: String) throws(DefinitionError) -> Int {
        guard case .number(let text) = value, let n = Int(text) else { throw fail(path, "expected a whole number, found \(value.kind == "a number" ? value.text : value.kind)") }
        guard n >= 1 else { throw fail(path, "must be at least 1 (use \"negate\": true for profiles without such events)") }
        return n
    }

    func time(_ value: JSONValue, _ path: String) throws(DefinitionError) -> Int64 {
        switch value {
        case .string(let s):
            guard let ms = Timestamp.parse(s) else { throw fail(path, "bad time \"\(s)\": expected RFC 3339 or epoch milliseconds") }
            return ms
        case .number(let n):
            guard let ms = Timestamp.parse(n) else { throw fail(path, "bad time \(n): expected integer epoch milliseconds") }
            return ms
        default:
            throw fail(path, "expected a time, found \(value.kind)")
        }
    }

    func identifier(_ value: JSONValue, _ path: String) throws(DefinitionError) -> [UInt8] {
        let s = try string(value, path)
        let bytes = Array(s.utf8)
        guard !bytes.isEmpty else { throw fail(path, "is empty") }
        guard bytes.count <= EventLimits.maxIdentifierBytes else { throw fail(path, "is \(bytes.count) bytes, over the 256-byte limit") }
        return bytes
    }

    mutating func definition(_ root: JSONValue) throws(DefinitionError) -> SegmentDefinition {
        let fields = try object(root, "", allowed: ["name", "description", "match", "rules"])
        let name = try string(fields["name"], "name")
        guard SegmentDefinition.isValidName(name) else {
            throw fail("name", "\"\(name)\" is not a valid name (1–128 of A-Z a-z 0-9 . _ -, not . or ..)")
        }
        let description = try fields["description"].map { v throws(DefinitionError) in try string(v, "description") }
        let match = try choice(fields["match"], "match", SegmentDefinition.Match.self)
        let rules = try ruleList(fields["rules"], "rules", depth: 1)
        return SegmentDefinition(name: name, description: description, match: match, rules: rules)
    }

    func ruleList(_ value: JSONValue?, _ path: String, depth: Int) throws(DefinitionError) -> [SegmentDefinition.Rule] {
        guard let value else { throw fail(path, "is required") }
        guard case .array(let items) = value else { throw fail(path, "expected an array of rules, found \(value.kind)") }
        guard !items.isEmpty else { throw fail(path, "needs at least one rule") }
        var rules: [SegmentDefinition.Rule] = []
        for (index, item) in items.enumerated() {
            rules.append(try rule(item, "\(path)[\(index)]", depth: depth))
        }
        return rules
    }

    func rule(_ value: JSONValue, _ path: String, depth: Int) throws(DefinitionError) -> SegmentDefinition.Rule {
        guard depth <= Self.maxDepth else { throw fail(path, "rules nested more than \(Self.maxDepth) deep") }
        guard case .object(let members) = value else { throw fail(path, "expected a rule object, found \(value.kind)") }
        if members.contains(where: { $0.key == "rules" }) {
            let fields = try object(value, path, allowed: ["match", "rules", "negate"])
            return .group(try choice(fields["match"], join(path, "match"), SegmentDefinition.Match.self),
                          try ruleList(fields["rules"], join(path, "rules"), depth: depth + 1),
                          negate: try bool(fields["negate"], join(path, "negate")))
        }
        let fields = try object(value, path, allowed: ["interaction", "touchpoint", "timeframe", "count", "conversion", "negate"])
        guard fields["interaction"] != nil else {
            throw fail(join(path, "interaction"), "is required (or give \"rules\" for a group)")
        }
        var rule = InteractionRule(interaction: try choice(fields["interaction"], join(path, "interaction"), InteractionRule.Interaction.self))
        if let touchpoint = fields["touchpoint"] {
            rule.touchpoint = try touchpointMatch(touchpoint, join(path, "touchpoint"))
        } else if rule.interaction != .conversion {
            throw fail(join(path, "touchpoint"), "is required for a \(rule.interaction.rawValue) rule")
        }
        if let timeframe = fields["timeframe"] { rule.timeframe = try self.timeframe(timeframe, join(path, "timeframe")) }
        if let count = fields["count"] {
            let countPath = join(path, "count")
            let bounds = try object(count, countPath, allowed: ["atLeast", "atMost"])
            guard !bounds.isEmpty else { throw fail(countPath, "needs atLeast, atMost or both") }
            if let v = bounds["atLeast"] { rule.atLeast = try positiveInteger(v, join(countPath, "atLeast")) }
            if let v = bounds["atMost"] { rule.atMost = try positiveInteger(v, join(countPath, "atMost")) }
            if let atMost = rule.atMost, atMost < rule.atLeast {
                throw fail(countPath, "atMost \(atMost) is less than atLeast \(rule.atLeast)")
            }
        }
        if let conversion = fields["conversion"] {
            if rule.interaction == .conversion { throw fail(join(path, "conversion"), "does not go with \"interaction\": \"conversion\"") }
            rule.conversion = try choice(conversion, join(path, "conversion"), InteractionRule.Conversion.self)
        }
        return .interaction(rule, negate: try bool(fields["negate"], join(path, "negate")))
    }

    func touchpointMatch(_ value: JSONValue, _ path: String) throws(DefinitionError) -> InteractionRule.TouchpointMatch {
        let fields = try object(value, path, allowed: ["exactly", "contains", "startsWith", "endsWith", "oneOf"])
        guard fields.count == 1, let (key, operand) = fields.first else {
            throw fail(path, "needs exactly one of exactly, contains, startsWith, endsWith, oneOf")
        }
        let operandPath = join(path, key)
        switch key {
        case "exactly": return .exactly(try identifier(operand, operandPath))
        case "contains": return .contains(try identifier(operand, operandPath))
        case "startsWith": return .startsWith(try identifier(operand, operandPath))
        case "endsWith": return .endsWith(try identifier(operand, operandPath))
        default:
            guard case .array(let items) = operand else { throw fail(operandPath, "expected an array of touchpoints, found \(operand.kind)") }
            guard !items.isEmpty else { throw fail(operandPath, "needs at least one touchpoint") }
            var list: [[UInt8]] = []
            for (index, item) in items.enumerated() { list.append(try identifier(item, "\(operandPath)[\(index)]")) }
            return .oneOf(list)
        }
    }

    func timeframe(_ value: JSONValue, _ path: String) throws(DefinitionError) -> InteractionRule.Timeframe {
        let fields = try object(value, path, allowed: ["last", "from", "to"])
        if let last = fields["last"] {
            guard fields.count == 1 else { throw fail(path, "give either last or from/to, not both") }
            let text = try string(last, join(path, "last"))
            guard let ms = RuleDuration.parse(text) else {
                throw fail(join(path, "last"), "bad duration \"\(text)\" (a whole number and ms, s, m, h, d or w, such as 30d)")
            }
            return .last(milliseconds: ms)
        }
        guard !fields.isEmpty else { throw fail(path, "needs last, or from and/or to") }
        let from = try fields["from"].map { v throws(DefinitionError) in try time(v, join(path, "from")) }
        let to = try fields["to"].map { v throws(DefinitionError) in try time(v, join(path, "to")) }
        if let from, let to, from > to { throw fail(path, "from is after to") }
        return .between(from: from, to: to)
    }
}
