/// Why a profile is, or is not, in a segment at a time: the auditor's answer to "why was this person targeted?".
public struct Explanation: Sendable {
    public var profile: String
    public var time: QueryTime
    /// The profile has an event visible at the time (members are always known profiles).
    public var isKnown: Bool
    public var isMember: Bool
    /// The verdict of each top-level rule, with its sub-rules.
    public var rules: [RuleVerdict]

    /// One rule's verdict and the events that decided it.
    public struct RuleVerdict: Sendable {
        /// JSON path of the rule, such as `rules[1].rules[0]`.
        public var path: String
        /// The rule in words.
        public var summary: String
        public var holds: Bool
        public var negated: Bool
        /// For an interaction rule: its qualifying events, in log order.
        public var qualifying: [StoredEvent] = []
        /// The rule's `conversion` condition, if it has one.
        public var conversion: InteractionRule.Conversion?
        /// For a `converted`/`not_converted` rule: the conversions between the first qualifying event and T.
        public var conversions: [StoredEvent] = []
        /// For a group: its rules' verdicts.
        public var children: [RuleVerdict] = []
    }
}

extension StoreReader {
    /// Explains `profile`'s membership of `definition` at `time`. Reads only blocks holding the profile.
    public func explain(_ definition: SegmentDefinition, profile: String, at time: QueryTime) throws -> Explanation {
        let segment = CompiledSegment(definition, at: time)
        var events: [StoredEvent] = []
        let filter = ReplayFilter(until: time.asOf, profiles: [profile])
        // The blocks recorded by K whose events start at or before T; in format 2 only those holding the profile are
        // decoded, in format 1 the filter resolves the profile once per block dictionary.
        try forEachBlock(matching: filter, recordedBy: time.knownAt) { block in
            for i in filter.matches(in: block) { events.append(block.storedEvent(at: i)) }
        }
        let lastConversion = events.filter { $0.event.type == .conversion }.map(\.event.time).max() ?? .min
        let qualifying = segment.leaves.map { leaf in
            events.filter { e in
                leaf.qualifies(type: e.event.type.rawValue, touchpoint: e.event.touchpoint.map { Array($0.utf8)[...] }, time: e.event.time)
            }
        }
        func leafHolds(_ l: Int) -> Bool {
            segment.leaves[l].holds(count: qualifying[l].count, first: qualifying[l].map(\.event.time).min() ?? .max, lastConversion: lastConversion)
        }
        var leafIndex = 0
        func verdict(_ rule: SegmentDefinition.Rule, _ path: String) -> Explanation.RuleVerdict {
            switch rule {
            case .interaction(let interaction, let negate):
                let l = leafIndex
                leafIndex += 1
                var v = Explanation.RuleVerdict(path: path, summary: interaction.summary, holds: leafHolds(l) != negate, negated: negate)
                v.qualifying = qualifying[l]
                v.conversion = interaction.conversion
                if interaction.conversion != nil, let first = qualifying[l].map(\.event.time).min() {
                    v.conversions = events.filter { $0.event.type == .conversion && $0.event.time >= first }
                }
                return v
            case .group(let match, let rules, let negate):
                let children = rules.enumerated().map { verdict($1, "\(path).rules[\($0)]") }
                let value = match == .all ? children.allSatisfy { $0.holds } : children.contains { $0.holds }
                var v = Explanation.RuleVerdict(path: path, summary: "\(match.rawValue) of \(rules.count) rules", holds: value != negate, negated: negate)
                v.children = children
                return v
            }
        }
        let verdicts = definition.rules.enumerated().map { verdict($1, "rules[\($0)]") }
        let isKnown = !events.isEmpty
        let matched = definition.match == .all ? verdicts.allSatisfy(\.holds) : verdicts.contains(where: \.holds)
        return Explanation(profile: profile, time: time, isKnown: isKnown, isMember: isKnown && matched, rules: verdicts)
    }
}

extension InteractionRule {
    /// The rule in words: `click on touchpoint exactly "x", in the last 30d, at least 1 event, not converted`.
    public var summary: String {
        var parts = [interaction == .any ? "view or click" : interaction.rawValue]
        if let touchpoint {
            let quote = { (b: [UInt8]) in "\"\(String(decoding: b, as: UTF8.self))\"" }
            switch touchpoint {
            case .exactly(let s): parts[0] += " on touchpoint exactly \(quote(s))"
            case .contains(let s): parts[0] += " on a touchpoint containing \(quote(s))"
            case .startsWith(let s): parts[0] += " on a touchpoint starting with \(quote(s))"
            case .endsWith(let s): parts[0] += " on a touchpoint ending with \(quote(s))"
            case .oneOf(let list): parts[0] += " on one of \(list.map(quote).joined(separator: ", "))"
            }
        }
        switch timeframe {
        case .allTime: break
        case .last(let ms): parts.append("in the last \(RuleDuration.format(ms))")
        case .between(let from, let to):
            parts.append([from.map { "from \(Timestamp.format($0))" }, to.map { "to \(Timestamp.format($0))" }].compactMap { $0 }.joined(separator: " "))
        }
        if let atMost { parts.append(atLeast == atMost ? "exactly \(atMost) times" : "\(atLeast) to \(atMost) times") } else if atLeast > 1 { parts.append("at least \(atLeast) times") }
        if let conversion { parts.append(conversion == .converted ? "then converted" : "not converted since") }
        return parts.joined(separator: ", ")
    }
}

extension Explanation {
    /// The explanation as `touchlog explain` prints it: the verdict, then each rule's verdict with the events that
    /// decided it. `version` names the definition's version ("version 2").
    package func report(segment name: String, version: String, definition: SegmentDefinition) -> String {
        var out = ""
        let when = "as of \(Timestamp.format(time.asOf))" + (time.knownAt.map { ", known at \(Timestamp.format($0))" } ?? "")
        if !isKnown {
            out += "\(profile) is NOT a member of \(name) (\(version)) \(when): the store knows no events of this profile then "
                + "(unknown: never appended by then, or erased)\n"
        } else {
            out += "\(profile) is \(isMember ? "a member" : "NOT a member") of \(name) (\(version)) \(when)\n"
            out += "match \(definition.match.rawValue) of \(definition.rules.count) rule\(definition.rules.count == 1 ? "" : "s"):\n"
            for verdict in rules { Self.write(verdict, indent: "  ", to: &out) }
        }
        return out
    }

    private static func write(_ verdict: RuleVerdict, indent: String, to out: inout String) {
        out += "\(indent)\(verdict.path) \(verdict.holds ? "holds" : "does not hold"): \(verdict.negated ? "NOT " : "")\(verdict.summary)\n"
        if verdict.children.isEmpty {
            out += "\(indent)  \(verdict.qualifying.count) qualifying event\(verdict.qualifying.count == 1 ? "" : "s")\(verdict.qualifying.isEmpty ? "" : ":")\n"
            for event in verdict.qualifying { out += "\(indent)    \(describe(event))\n" }
            if verdict.conversion != nil && !verdict.qualifying.isEmpty {
                if verdict.conversions.isEmpty {
                    out += "\(indent)  no conversion from the first qualifying event to T\n"
                } else {
                    out += "\(indent)  conversions from the first qualifying event to T:\n"
                    for event in verdict.conversions { out += "\(indent)    \(describe(event))\n" }
                }
            }
        }
        for child in verdict.children { write(child, indent: indent + "  ", to: &out) }
    }

    private static func describe(_ stored: StoredEvent) -> String {
        let e = stored.event
        return "offset \(stored.offset)  \(Timestamp.format(e.time))  \(e.type.name)" + (e.touchpoint.map { "  \($0)" } ?? "")
            + (e.value.map { "  value \(EventJSON.formatNumber($0))" } ?? "") + "  (recorded \(Timestamp.format(stored.recorded)))"
    }
}
