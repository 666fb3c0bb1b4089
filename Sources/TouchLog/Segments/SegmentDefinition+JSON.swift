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
            if let touchpoint = rule.touchpoint { members.append(("touchpoint", touchpoint.encoded())) }
            if let timeframe = rule.timeframe.encoded() { members.append(("timeframe", timeframe)) }
            if rule.atLeast != 1 || rule.atMost != nil {
                var count: [(key: String, value: JSONValue)] = []
                if rule.atLeast != 1 { count.append(("atLeast", .number(String(rule.atLeast)))) }
                if let atMost = rule.atMost { count.append(("atMost", .number(String(atMost)))) }
                members.append(("count", .object(count)))
            }
            if let conversion = rule.conversion { members.append(("conversion", .string(conversion.rawValue))) }
            if let value = rule.value {
                var bounds: [(key: String, value: JSONValue)] = []
                if let low = value.atLeast { bounds.append(("atLeast", .number(EventJSON.formatNumber(low)))) }
                if let high = value.atMost { bounds.append(("atMost", .number(EventJSON.formatNumber(high)))) }
                members.append(("value", .object([(value.aggregate.rawValue, .object(bounds))])))
            }
        case .sequence(let rule, _):
            members.append(
                (
                    "sequence",
                    .array(
                        rule.steps.map { step in
                            var fields: [(key: String, value: JSONValue)] = [
                                ("interaction", .string(step.interaction.rawValue))
                            ]
                            if let touchpoint = step.touchpoint { fields.append(("touchpoint", touchpoint.encoded())) }
                            return .object(fields)
                        })
                ))
            if let within = rule.within { members.append(("within", .string(RuleDuration.format(within)))) }
            if let timeframe = rule.timeframe.encoded() { members.append(("timeframe", timeframe)) }
        case .segment(let name, _):
            members.append(("segment", .string(name)))
        }
        if isNegated { members.append(("negate", .bool(true))) }
        return .object(members)
    }
}

extension InteractionRule.TouchpointMatch {
    func encoded() -> JSONValue {
        let text = { (bytes: [UInt8]) in JSONValue.string(String(decoding: bytes, as: UTF8.self)) }
        switch self {
        case .exactly(let s): return .object([("exactly", text(s))])
        case .contains(let s): return .object([("contains", text(s))])
        case .startsWith(let s): return .object([("startsWith", text(s))])
        case .endsWith(let s): return .object([("endsWith", text(s))])
        case .oneOf(let list): return .object([("oneOf", .array(list.map(text)))])
        }
    }
}

extension InteractionRule.Timeframe {
    /// The timeframe as JSON; nil for all time (no field).
    func encoded() -> JSONValue? {
        switch self {
        case .allTime: return nil
        case .last(let ms): return .object([("last", .string(RuleDuration.format(ms)))])
        case .before(let ms): return .object([("before", .string(RuleDuration.format(ms)))])
        case .between(let from, let to):
            var range: [(key: String, value: JSONValue)] = []
            if let from { range.append(("from", .string(Timestamp.format(from)))) }
            if let to { range.append(("to", .string(Timestamp.format(to)))) }
            return .object(range)
        case .calendar(let calendar):
            return .object([
                (
                    "calendar",
                    .object([
                        ("unit", .string(calendar.unit.rawValue)), ("count", .number(String(calendar.count))),
                        ("timeZone", .string(calendar.timeZone)),
                    ])
                )
            ])
        }
    }
}

/// Durations of the rule language: a positive integer and a unit (`ms s m h d w`), exact (`1d` = 86,400,000 ms).
public enum RuleDuration {
    static let units: [(String, Int64)] = [
        ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000),
    ]

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

    func object(_ value: JSONValue, _ path: String, allowed: Set<String>) throws(DefinitionError) -> [String: JSONValue]
    {
        guard case .object(let members) = value else { throw fail(path, "expected an object, found \(value.kind)") }
        var result: [String: JSONValue] = [:]
        for member in members {
            guard allowed.contains(member.key) else {
                throw fail(
                    join(path, member.key),
                    "unknown field (expected one of: \(allowed.sorted().joined(separator: ", ")))")
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

    func choice<T: RawRepresentable>(_ value: JSONValue?, _ path: String, _ type: T.Type) throws(DefinitionError) -> T
    where T.RawValue == String {
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
        guard case .number(let text) = value, let n = Int(text) else {
            throw fail(path, "expected a whole number, found \(value.kind == "a number" ? value.text : value.kind)")
        }
        guard n >= 1 else {
            throw fail(path, "must be at least 1 (use \"negate\": true for profiles without such events)")
        }
        return n
    }

    func time(_ value: JSONValue, _ path: String) throws(DefinitionError) -> Int64 {
        switch value {
        case .string(let s):
            guard let ms = Timestamp.parse(s) else {
                throw fail(path, "bad time \"\(s)\": expected RFC 3339 or epoch milliseconds")
            }
            return ms
        case .number(let n):
            guard let ms = Timestamp.parse(n) else {
                throw fail(path, "bad time \(n): expected integer epoch milliseconds")
            }
            return ms
        default:
            throw fail(path, "expected a time, found \(value.kind)")
        }
    }

    func identifier(_ value: JSONValue, _ path: String) throws(DefinitionError) -> [UInt8] {
        let s = try string(value, path)
        let bytes = Array(s.utf8)
        guard !bytes.isEmpty else { throw fail(path, "is empty") }
        guard bytes.count <= EventLimits.maxIdentifierBytes else {
            throw fail(path, "is \(bytes.count) bytes, over the 256-byte limit")
        }
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
        guard case .array(let items) = value else {
            throw fail(path, "expected an array of rules, found \(value.kind)")
        }
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
        if members.contains(where: { $0.key == "sequence" }) { return try sequence(value, path) }
        if members.contains(where: { $0.key == "segment" }) {
            let fields = try object(value, path, allowed: ["segment", "negate"])
            let name = try string(fields["segment"], join(path, "segment"))
            guard SegmentDefinition.isValidName(name) else {
                throw fail(join(path, "segment"), "\"\(name)\" is not a valid segment name")
            }
            return .segment(name, negate: try bool(fields["negate"], join(path, "negate")))
        }
        if members.contains(where: { $0.key == "rules" }) {
            let fields = try object(value, path, allowed: ["match", "rules", "negate"])
            return .group(
                try choice(fields["match"], join(path, "match"), SegmentDefinition.Match.self),
                try ruleList(fields["rules"], join(path, "rules"), depth: depth + 1),
                negate: try bool(fields["negate"], join(path, "negate")))
        }
        let fields = try object(
            value, path, allowed: ["interaction", "touchpoint", "timeframe", "count", "conversion", "value", "negate"])
        guard fields["interaction"] != nil else {
            throw fail(join(path, "interaction"), "is required (or give \"rules\" for a group)")
        }
        var rule = InteractionRule(
            interaction: try choice(fields["interaction"], join(path, "interaction"), InteractionRule.Interaction.self))
        if let touchpoint = fields["touchpoint"] {
            rule.touchpoint = try touchpointMatch(touchpoint, join(path, "touchpoint"))
        } else if rule.interaction != .conversion {
            throw fail(join(path, "touchpoint"), "is required for a \(rule.interaction.rawValue) rule")
        }
        if let timeframe = fields["timeframe"] {
            rule.timeframe = try self.timeframe(timeframe, join(path, "timeframe"))
        }
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
            if rule.interaction == .conversion {
                throw fail(join(path, "conversion"), "does not go with \"interaction\": \"conversion\"")
            }
            rule.conversion = try choice(conversion, join(path, "conversion"), InteractionRule.Conversion.self)
        }
        if let value = fields["value"] { rule.value = try valueCondition(value, join(path, "value")) }
        return .interaction(rule, negate: try bool(fields["negate"], join(path, "negate")))
    }

    func valueCondition(_ value: JSONValue, _ path: String) throws(DefinitionError) -> InteractionRule.ValueCondition {
        let names = InteractionRule.ValueCondition.Aggregate.allCases.map(\.rawValue)
        let fields = try object(value, path, allowed: Set(names))
        guard fields.count == 1, let (key, operand) = fields.first,
            let aggregate = InteractionRule.ValueCondition.Aggregate(rawValue: key)
        else {
            throw fail(path, "needs exactly one of \(names.joined(separator: ", "))")
        }
        let boundsPath = join(path, key)
        let bounds = try object(operand, boundsPath, allowed: ["atLeast", "atMost"])
        guard !bounds.isEmpty else { throw fail(boundsPath, "needs atLeast, atMost or both") }
        func number(_ name: String) throws(DefinitionError) -> Double? {
            guard let v = bounds[name] else { return nil }
            guard case .number(let text) = v, let x = Double(text), x.isFinite else {
                throw fail(join(boundsPath, name), "expected a number, found \(v.kind == "a number" ? v.text : v.kind)")
            }
            guard abs(x) <= 9e12 else {
                throw fail(join(boundsPath, name), "\(text) is out of range (at most 9e12 either way)")
            }
            return x
        }
        let condition = InteractionRule.ValueCondition(
            aggregate, atLeast: try number("atLeast"), atMost: try number("atMost"))
        if let low = condition.atLeast, let high = condition.atMost, high < low {
            throw fail(
                boundsPath, "atMost \(EventJSON.formatNumber(high)) is less than atLeast \(EventJSON.formatNumber(low))"
            )
        }
        return condition
    }

    func sequence(_ value: JSONValue, _ path: String) throws(DefinitionError) -> SegmentDefinition.Rule {
        let fields = try object(value, path, allowed: ["sequence", "within", "timeframe", "negate"])
        let stepsPath = join(path, "sequence")
        guard case .array(let items)? = fields["sequence"] else {
            throw fail(stepsPath, "expected an array of steps, found \(fields["sequence"]!.kind)")
        }
        guard SequenceRule.stepLimit.contains(items.count) else {
            throw fail(stepsPath, "has \(items.count) step\(items.count == 1 ? "" : "s"); a sequence has 2 to 8")
        }
        var steps: [SequenceRule.Step] = []
        for (index, item) in items.enumerated() {
            let stepPath = "\(stepsPath)[\(index)]"
            let step = try object(item, stepPath, allowed: ["interaction", "touchpoint"])
            let interaction = try choice(
                step["interaction"], join(stepPath, "interaction"), InteractionRule.Interaction.self)
            var touchpoint: InteractionRule.TouchpointMatch?
            if let t = step["touchpoint"] {
                touchpoint = try touchpointMatch(t, join(stepPath, "touchpoint"))
            } else if interaction != .conversion {
                throw fail(join(stepPath, "touchpoint"), "is required for a \(interaction.rawValue) step")
            }
            steps.append(SequenceRule.Step(interaction: interaction, touchpoint: touchpoint))
        }
        var rule = SequenceRule(steps: steps)
        if let within = fields["within"] {
            let text = try string(within, join(path, "within"))
            guard let ms = RuleDuration.parse(text) else {
                throw fail(
                    join(path, "within"),
                    "bad duration \"\(text)\" (a whole number and ms, s, m, h, d or w, such as 1d)")
            }
            rule.within = ms
        }
        if let timeframe = fields["timeframe"] {
            rule.timeframe = try self.timeframe(timeframe, join(path, "timeframe"))
        }
        return .sequence(rule, negate: try bool(fields["negate"], join(path, "negate")))
    }

    func touchpointMatch(_ value: JSONValue, _ path: String) throws(DefinitionError) -> InteractionRule.TouchpointMatch
    {
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
            guard case .array(let items) = operand else {
                throw fail(operandPath, "expected an array of touchpoints, found \(operand.kind)")
            }
            guard !items.isEmpty else { throw fail(operandPath, "needs at least one touchpoint") }
            var list: [[UInt8]] = []
            for (index, item) in items.enumerated() { list.append(try identifier(item, "\(operandPath)[\(index)]")) }
            return .oneOf(list)
        }
    }

    func timeframe(_ value: JSONValue, _ path: String) throws(DefinitionError) -> InteractionRule.Timeframe {
        let fields = try object(value, path, allowed: ["last", "from", "to", "before", "calendar"])
        func duration(_ key: String) throws(DefinitionError) -> Int64 {
            guard fields.count == 1 else { throw fail(path, "give one of last, before, calendar or from/to") }
            let text = try string(fields[key], join(path, key))
            guard let ms = RuleDuration.parse(text) else {
                throw fail(
                    join(path, key), "bad duration \"\(text)\" (a whole number and ms, s, m, h, d or w, such as 30d)")
            }
            return ms
        }
        if fields["last"] != nil { return .last(milliseconds: try duration("last")) }
        if fields["before"] != nil { return .before(milliseconds: try duration("before")) }
        if let calendar = fields["calendar"] {
            guard fields.count == 1 else { throw fail(path, "give one of last, before, calendar or from/to") }
            return .calendar(try calendarWindow(calendar, join(path, "calendar")))
        }
        guard !fields.isEmpty else { throw fail(path, "needs last, before, calendar, or from and/or to") }
        let from = try fields["from"].map { v throws(DefinitionError) in try time(v, join(path, "from")) }
        let to = try fields["to"].map { v throws(DefinitionError) in try time(v, join(path, "to")) }
        if let from, let to, from > to { throw fail(path, "from is after to") }
        return .between(from: from, to: to)
    }

    func calendarWindow(_ value: JSONValue, _ path: String) throws(DefinitionError) -> CalendarWindow {
        let fields = try object(value, path, allowed: ["unit", "count", "timeZone"])
        let unit = try choice(fields["unit"], join(path, "unit"), CalendarWindow.Unit.self)
        var window = CalendarWindow(unit: unit)
        if let count = fields["count"] {
            window.count = try positiveInteger(count, join(path, "count"))
            guard CalendarWindow.countLimit.contains(window.count) else {
                throw fail(
                    join(path, "count"),
                    "\(window.count) is over the limit of \(CalendarWindow.countLimit.upperBound) units")
            }
        }
        if let zone = fields["timeZone"] {
            window.timeZone = try string(zone, join(path, "timeZone"))
            guard CalendarWindow.isKnownTimeZone(window.timeZone) else {
                throw fail(
                    join(path, "timeZone"),
                    "unknown time zone \"\(window.timeZone)\" (a tz database name, such as Europe/Amsterdam)")
            }
        }
        return window
    }
}
