/// Why a profile is, or is not, in a segment at a time: the auditor's answer to "why was this person targeted?".
public struct Explanation: Sendable {
    /// The profile explained.
    public var profile: String
    /// The time it was explained at.
    public var time: QueryTime
    /// The profile has an event visible at the time (members are always known profiles).
    public var isKnown: Bool
    /// Whether the profile is a member at that time.
    public var isMember: Bool
    /// The verdict of each top-level rule, with its sub-rules.
    public var rules: [RuleVerdict]

    /// One rule's verdict and the events that decided it.
    public struct RuleVerdict: Sendable {
        /// JSON path of the rule, such as `rules[1].rules[0]`.
        public var path: String
        /// The rule in words.
        public var summary: String
        /// Whether the rule holds for the profile (after its negation, if any).
        public var holds: Bool
        /// Whether the rule is negated.
        public var negated: Bool
        /// For an interaction rule: its qualifying events, in log order; for a sequence: the events that could take
        /// one of its steps, in (time, offset) order.
        public var qualifying: [StoredEvent] = []
        /// The rule's `conversion` condition, if it has one.
        public var conversion: InteractionRule.Conversion?
        /// For a `converted`/`not_converted` rule: the conversions between the first qualifying event and T.
        public var conversions: [StoredEvent] = []
        /// For a rule with a `value` condition: the aggregate of its qualifying events' values (nil: none carries one).
        public var aggregate: Double?
        /// For a sequence that holds: the events that took its steps, first to last.
        public var matchedSequence: [StoredEvent] = []
        /// Whether the rule is a sequence (its ``qualifying`` events are those that could take a step).
        public var isSequence = false
        /// For a segment reference: the referenced segment (its rules' verdicts are the ``children``).
        public var referencedSegment: String?
        /// For a group or a segment reference: its rules' verdicts.
        public var children: [RuleVerdict] = []
    }
}

extension StoreReader {
    /// Explains `profile`'s membership of `definition` at `time`. Reads only blocks holding the profile.
    package func explain(_ definition: SegmentDefinition, profile: String, at time: QueryTime) throws -> Explanation {
        let definition = try segments.resolve(definition)
        var events: [StoredEvent] = []
        let filter = ReplayFilter(until: time.asOf, profiles: [profile])
        // The blocks recorded by K whose events start at or before T; in format 2 only those holding the profile are
        // decoded, in format 1 the filter resolves the profile once per block dictionary.
        try forEachBlock(matching: filter, recordedBy: time.knownAt) { block in
            for i in filter.matches(in: block) { events.append(block.storedEvent(at: i)) }
        }
        return Explanation(profile: profile, definition: definition, time: time, events: events)
    }
}

extension Explanation {
    /// The explanation of `definition` (references resolved) at `time` for a profile with `events` (visible at K,
    /// in log order; those after T do not count).
    package init(profile: String, definition: SegmentDefinition, time: QueryTime, events allEvents: [StoredEvent]) {
        let events = allEvents.filter { $0.event.time <= time.asOf }
        let segment = CompiledSegment(definition, at: time)
        var builder = ProfileEventBuilder()
        let profileEvents = events.map { builder.event($0) }
        let evaluation = ProfileEvaluation(
            segment: segment, matchers: RuleMatchers(segment, touchpoints: builder.touchpoints))
        let found = evaluation.findings(profileEvents).leaves
        let atoms = evaluation.atoms(profileEvents)
        var leafIndex = 0
        var sequenceIndex = 0
        func verdict(_ rule: SegmentDefinition.Rule, _ path: String, depth: Int) -> RuleVerdict {
            switch rule {
            case .interaction(let interaction, let negate):
                let l = leafIndex
                leafIndex += 1
                var v = RuleVerdict(
                    path: path, summary: interaction.summary, holds: atoms[l] != negate, negated: negate)
                v.qualifying = found[l].qualifying.map { events[$0] }
                v.conversion = interaction.conversion
                if interaction.conversion != nil, found[l].first != .max {
                    v.conversions = events.filter { $0.event.type == .conversion && $0.event.time >= found[l].first }
                }
                if let value = interaction.value, found[l].values.count > 0 {
                    let totals = found[l].values
                    switch value.aggregate {
                    case .sum: v.aggregate = Double(totals.sum) / 1_000_000
                    case .avg: v.aggregate = Double(totals.sum) / Double(totals.count) / 1_000_000
                    case .min: v.aggregate = Double(totals.least) / 1_000_000
                    case .max: v.aggregate = Double(totals.greatest) / 1_000_000
                    }
                }
                return v
            case .sequence(let sequence, let negate):
                let s = sequenceIndex
                sequenceIndex += 1
                var v = RuleVerdict(
                    path: path, summary: sequence.summary, holds: atoms[segment.leaves.count + s] != negate,
                    negated: negate)
                v.isSequence = true
                v.qualifying = evaluation.sequenceCandidates(profileEvents, s).map { events[$0.index] }
                v.matchedSequence = evaluation.sequenceChain(profileEvents, s)?.map { events[$0] } ?? []
                return v
            case .group(let match, let rules, let negate):
                let children = rules.enumerated().map { verdict($1, "\(path).rules[\($0)]", depth: depth) }
                let value = match == .all ? children.allSatisfy { $0.holds } : children.contains { $0.holds }
                var v = RuleVerdict(
                    path: path, summary: "\(match.rawValue) of \(rules.count) rule\(rules.count == 1 ? "" : "s")",
                    holds: value != negate, negated: negate)
                v.children = children
                return v
            case .segment(let name, let negate):
                // Compiled in place as the referenced definition's rules (see ``CompiledSegment``).
                guard let referenced = definition.referenced[name], depth < SegmentDefinition.referenceDepthLimit else {
                    return RuleVerdict(
                        path: path, summary: "member of segment \"\(name)\" (not found)", holds: negate, negated: negate
                    )
                }
                let children = referenced.rules.enumerated().map {
                    verdict($1, "\(path)→\(name).rules[\($0)]", depth: depth + 1)
                }
                let value = referenced.match == .all ? children.allSatisfy { $0.holds } : children.contains { $0.holds }
                var v = RuleVerdict(
                    path: path,
                    summary:
                        "member of segment \"\(name)\" (match \(referenced.match.rawValue) of \(referenced.rules.count) rule\(referenced.rules.count == 1 ? "" : "s"))",
                    holds: value != negate, negated: negate)
                v.referencedSegment = name
                v.children = children
                return v
            }
        }
        let verdicts = definition.rules.enumerated().map { verdict($1, "rules[\($0)]", depth: 0) }
        let isKnown = !events.isEmpty
        let matched = definition.match == .all ? verdicts.allSatisfy(\.holds) : verdicts.contains(where: \.holds)
        self.init(profile: profile, time: time, isKnown: isKnown, isMember: isKnown && matched, rules: verdicts)
    }
}

extension InteractionRule {
    /// The rule in words: `click on touchpoint exactly "x", in the last 30d, at least 1 event, not converted`.
    public var summary: String {
        var parts = [(interaction == .any ? "view or click" : interaction.rawValue) + Self.describe(touchpoint)]
        if let window = timeframe.summary { parts.append(window) }
        if let atMost {
            parts.append(atLeast == atMost ? "exactly \(atMost) times" : "\(atLeast) to \(atMost) times")
        } else if atLeast > 1 {
            parts.append("at least \(atLeast) times")
        }
        if let conversion { parts.append(conversion == .converted ? "then converted" : "not converted since") }
        if let value {
            let bounds = [
                value.atLeast.map { "at least \(EventJSON.formatNumber($0))" },
                value.atMost.map { "at most \(EventJSON.formatNumber($0))" },
            ]
            parts.append("\(value.aggregate.rawValue) of values " + bounds.compactMap { $0 }.joined(separator: " and "))
        }
        return parts.joined(separator: ", ")
    }

    /// How a touchpoint matcher reads in words (` on touchpoint exactly "x"`).
    static func describe(_ touchpoint: TouchpointMatch?) -> String {
        guard let touchpoint else { return "" }
        let quote = { (b: [UInt8]) in "\"\(String(decoding: b, as: UTF8.self))\"" }
        switch touchpoint {
        case .exactly(let s): return " on touchpoint exactly \(quote(s))"
        case .contains(let s): return " on a touchpoint containing \(quote(s))"
        case .startsWith(let s): return " on a touchpoint starting with \(quote(s))"
        case .endsWith(let s): return " on a touchpoint ending with \(quote(s))"
        case .oneOf(let list): return " on one of \(list.map(quote).joined(separator: ", "))"
        }
    }
}

extension InteractionRule.Timeframe {
    /// The window in words (`in the last 30d`); nil for all time.
    var summary: String? {
        switch self {
        case .allTime: return nil
        case .last(let ms): return "in the last \(RuleDuration.format(ms))"
        case .before(let ms): return "before the last \(RuleDuration.format(ms))"
        case .between(let from, let to):
            return [from.map { "from \(Timestamp.format($0))" }, to.map { "to \(Timestamp.format($0))" }].compactMap {
                $0
            }.joined(separator: " ")
        case .calendar(let c):
            let unit =
                c.count == 1 ? "this \(c.unit.rawValue)" : "this \(c.unit.rawValue) and the \(c.count - 1) before it"
            return "\(unit) in \(c.timeZone)"
        }
    }
}

extension SequenceRule {
    /// The sequence in words: `click on touchpoint exactly "a", then view …, within 1d`.
    public var summary: String {
        var text =
            "sequence: "
            + steps.map {
                ($0.interaction == .any ? "view or click" : $0.interaction.rawValue)
                    + InteractionRule.describe($0.touchpoint)
            }
            .joined(separator: ", then ")
        if let within { text += ", within \(RuleDuration.format(within))" }
        if let window = timeframe.summary { text += ", \(window)" }
        return text
    }
}

extension Explanation {
    /// The explanation as `touchlog explain` prints it: the verdict, then each rule's verdict with the events that
    /// decided it. `version` names the definition's version ("version 2").
    package func report(segment name: String, version: String, definition: SegmentDefinition) -> String {
        var out = ""
        let when =
            "as of \(Timestamp.format(time.asOf))" + (time.knownAt.map { ", known at \(Timestamp.format($0))" } ?? "")
        if !isKnown {
            out +=
                "\(profile) is NOT a member of \(name) (\(version)) \(when): the store knows no events of this profile then "
                + "(unknown: never appended by then, or erased)\n"
        } else {
            out += "\(profile) is \(isMember ? "a member" : "NOT a member") of \(name) (\(version)) \(when)\n"
            out +=
                "match \(definition.match.rawValue) of \(definition.rules.count) rule\(definition.rules.count == 1 ? "" : "s"):\n"
            for verdict in rules { Self.write(verdict, indent: "  ", to: &out) }
        }
        return out
    }

    private static func write(_ verdict: RuleVerdict, indent: String, to out: inout String) {
        out +=
            "\(indent)\(verdict.path) \(verdict.holds ? "holds" : "does not hold"): \(verdict.negated ? "NOT " : "")\(verdict.summary)\n"
        if let aggregate = verdict.aggregate {
            out += "\(indent)  aggregate of values: \(EventJSON.formatNumber(aggregate))\n"
        }
        if !verdict.matchedSequence.isEmpty {
            out += "\(indent)  matched by:\n"
            for event in verdict.matchedSequence { out += "\(indent)    \(describe(event))\n" }
        }
        if verdict.children.isEmpty {
            let n = verdict.qualifying.count
            let what =
                verdict.isSequence
                ? "event\(n == 1 ? "" : "s") that can take a step" : "qualifying event\(n == 1 ? "" : "s")"
            out += "\(indent)  \(n) \(what)\(n == 0 ? "" : ":")\n"
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
        return "offset \(stored.offset)  \(Timestamp.format(e.time))  \(e.type.name)"
            + (e.touchpoint.map { "  \($0)" } ?? "")
            + (e.value.map { "  value \(EventJSON.formatNumber($0))" } ?? "")
            + "  (recorded \(Timestamp.format(stored.recorded)))"
    }
}
