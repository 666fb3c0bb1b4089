/// A named audience: a rule tree over a profile's events, evaluated at a point in time.
///
/// Built from JSON by ``init(json:)``, which checks the whole grammar of the product contract and names the JSON
/// path of the first problem (`rules[1].timeframe.last: bad duration "30x"`).
public struct SegmentDefinition: Sendable, Equatable {
    /// 1–128 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
    public var name: String
    /// What the segment is for, in words (optional).
    public var description: String?
    /// Whether all rules or any rule must hold.
    public var match: Match
    /// At least one.
    public var rules: [Rule]
    /// The definitions of the segments its rules refer to, directly or through others, by name: filled in when the
    /// definition is read from a store's catalog (their current versions then), or by ``SegmentCatalog/resolve(_:)``.
    /// Not part of the definition's JSON or of its equality.
    public var referenced: [String: SegmentDefinition] = [:]

    /// Whether every rule (`all`) or at least one (`any`) must hold.
    public enum Match: String, Sendable, Equatable {
        /// Every rule must hold.
        case all
        /// At least one rule must hold.
        case any
    }

    /// An interaction rule, a group of rules, a sequence of steps or a reference to another segment, possibly negated.
    public indirect enum Rule: Sendable, Equatable {
        /// Holds when the profile's events meet the rule (or, negated, when they do not).
        case interaction(InteractionRule, negate: Bool)
        /// Holds when all or any of the nested rules hold, as `Match` says.
        case group(Match, [Rule], negate: Bool)
        /// Holds when the profile did the steps in order, each within its gap of the one before.
        case sequence(SequenceRule, negate: Bool)
        /// Holds for the members of the named segment's current version at the same T and K.
        case segment(String, negate: Bool)

        /// Whether the rule holds for profiles that do not meet it.
        public var isNegated: Bool {
            switch self {
            case .interaction(_, let negate), .group(_, _, let negate), .sequence(_, let negate),
                .segment(_, let negate):
                return negate
            }
        }
    }

    /// Definitions are equal when their JSON says the same (``referenced`` is left out).
    public static func == (a: SegmentDefinition, b: SegmentDefinition) -> Bool {
        a.name == b.name && a.description == b.description && a.match == b.match && a.rules == b.rules
    }

    /// A definition; ``init(json:)`` also checks the grammar.
    public init(name: String, description: String? = nil, match: Match, rules: [Rule]) {
        self.name = name
        self.description = description
        self.match = match
        self.rules = rules
    }

    /// True when `name` is a valid segment name.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return (1...128).contains(bytes.count) && name != "." && name != ".."
            && bytes.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E
                    || $0 == 0x5F || $0 == 0x2D
            }
    }
}

/// What a profile must have done for an interaction rule to hold.
public struct InteractionRule: Sendable, Equatable {
    /// `view`, `click`, `any` (a view or a click) or `conversion`.
    public enum Interaction: String, Sendable, Equatable {
        /// Views only.
        case view
        /// Clicks only.
        case click
        /// Views and clicks.
        case any
        /// Conversions only.
        case conversion

        func matches(_ type: UInt8) -> Bool {
            switch self {
            case .view: return type == EventType.view.rawValue
            case .click: return type == EventType.click.rawValue
            case .any: return type != EventType.conversion.rawValue
            case .conversion: return type == EventType.conversion.rawValue
            }
        }
    }

    /// How a touchpoint is matched: on bytes, case-sensitive.
    public enum TouchpointMatch: Sendable, Equatable {
        /// The touchpoint equals these bytes.
        case exactly([UInt8])
        /// The touchpoint contains these bytes.
        case contains([UInt8])
        /// The touchpoint starts with these bytes.
        case startsWith([UInt8])
        /// The touchpoint ends with these bytes.
        case endsWith([UInt8])
        /// The touchpoint equals one of these.
        case oneOf([[UInt8]])

        /// True when `touchpoint` matches.
        public func matches(_ touchpoint: some Collection<UInt8>) -> Bool {
            let t = Array(touchpoint)
            switch self {
            case .exactly(let s): return t == s
            case .startsWith(let s): return t.starts(with: s)
            case .endsWith(let s): return t.count >= s.count && Array(t.suffix(s.count)) == s
            case .contains(let s):
                guard s.count <= t.count else { return false }
                if s.isEmpty { return true }
                for start in 0...(t.count - s.count) where t[start] == s[0] && Array(t[start..<(start + s.count)]) == s
                { return true }
                return false
            case .oneOf(let list): return list.contains(t)
            }
        }
    }

    /// Which event times count, always capped at the as-of time T.
    public enum Timeframe: Sendable, Equatable {
        /// Everything up to T.
        case allTime
        /// `T − duration ≤ t ≤ T`.
        case last(milliseconds: Int64)
        /// `from ≤ t ≤ min(to, T)`, either end optional.
        case between(from: Int64?, to: Int64?)
        /// `t < T − duration`: everything older than the last-duration window.
        case before(milliseconds: Int64)
        /// The calendar unit containing T in a time zone, from its start up to T, and the whole units before it.
        case calendar(CalendarWindow)

        /// The inclusive window of event times at `asOf`; nil when empty.
        public func window(asOf: Int64) -> ClosedRange<Int64>? {
            var low: Int64 = .min
            var high = asOf
            switch self {
            case .allTime: break
            case .last(let d): low = asOf &- d
            case .between(let from, let to):
                low = from ?? .min
                if let to { high = min(to, asOf) }
            case .before(let d): high = asOf &- d &- 1
            case .calendar(let calendar): low = calendar.start(asOf: asOf)
            }
            return low <= high ? low...high : nil
        }

        /// Whether the window stays put as T moves (all time, `from`/`to`), so the counts of a prefix of the log
        /// serve every later T.
        var isFixed: Bool {
            switch self {
            case .allTime, .between: return true
            case .last, .before, .calendar: return false
            }
        }
    }

    /// A condition on the values of a rule's qualifying events that carry one.
    ///
    /// Values are compared in millionths: each is rounded to the nearest 10⁻⁶ before it is summed, so sums are exact
    /// and do not depend on the order events are read in (150.10 + 49.90 is at least 200). Sums saturate at
    /// ±9.2 × 10¹².
    public struct ValueCondition: Sendable, Equatable {
        /// How the qualifying events' values are combined.
        public enum Aggregate: String, Sendable, Equatable, CaseIterable {
            /// The sum of the values.
            case sum
            /// Their mean.
            case avg
            /// The smallest.
            case min
            /// The largest.
            case max
        }

        /// How the values are combined.
        public var aggregate: Aggregate
        /// The combined value must be at least this, when given.
        public var atLeast: Double?
        /// …and at most this, when given.
        public var atMost: Double?

        /// A condition on the combined values.
        public init(_ aggregate: Aggregate, atLeast: Double? = nil, atMost: Double? = nil) {
            self.aggregate = aggregate
            self.atLeast = atLeast
            self.atMost = atMost
        }

        /// `value` in millionths, rounded to the nearest (saturating).
        @inline(__always)
        static func micros(_ value: Double) -> Int64 {
            let scaled = (value * 1_000_000).rounded()
            if scaled >= 9.2e18 { return .max }
            if scaled <= -9.2e18 { return .min }
            return Int64(scaled)
        }

        /// `a + b`, saturating.
        @inline(__always)
        static func add(_ a: Int64, _ b: Int64) -> Int64 {
            let (sum, overflow) = a.addingReportingOverflow(b)
            return overflow ? (b > 0 ? .max : .min) : sum
        }

        /// Whether the aggregate of `count` values (≥ 1) with sum `sum`, least `least` and greatest `greatest`
        /// (all in millionths) lies within the bounds.
        func holds(count: Int, sum: Int64, least: Int64, greatest: Int64) -> Bool {
            guard count > 0 else { return false }
            let low = atLeast.map(Self.micros)
            let high = atMost.map(Self.micros)
            switch aggregate {
            case .sum: return (low.map { sum >= $0 } ?? true) && (high.map { sum <= $0 } ?? true)
            case .min: return (low.map { least >= $0 } ?? true) && (high.map { least <= $0 } ?? true)
            case .max: return (low.map { greatest >= $0 } ?? true) && (high.map { greatest <= $0 } ?? true)
            case .avg:
                // sum / count against a bound b, as sum against b × count in 128 bits (exact).
                return (low.map { Self.compare(sum, $0, times: count) >= 0 } ?? true)
                    && (high.map { Self.compare(sum, $0, times: count) <= 0 } ?? true)
            }
        }

        /// The sign of `sum − bound × count`, computed exactly.
        static func compare(_ sum: Int64, _ bound: Int64, times count: Int) -> Int {
            let product = bound.multipliedFullWidth(by: Int64(count))
            let left = (high: sum < 0 ? Int64(-1) : 0, low: UInt64(bitPattern: sum))
            if left.high != product.high { return left.high < product.high ? -1 : 1 }
            return left.low == product.low ? 0 : left.low < product.low ? -1 : 1
        }
    }

    /// Whether the profile converted after its first qualifying event.
    public enum Conversion: String, Sendable, Equatable {
        /// It converted after its first qualifying event.
        case converted
        /// It has not converted after its first qualifying event.
        case notConverted = "not_converted"
    }

    /// Which event types qualify.
    public var interaction: Interaction
    /// Required unless `interaction` is `conversion`.
    public var touchpoint: TouchpointMatch?
    /// Which event times qualify, relative to T.
    public var timeframe: Timeframe = .allTime
    /// Qualifying events needed: at least this many (≥ 1; default 1).
    public var atLeast: Int = 1
    /// …and at most this many, when given.
    public var atMost: Int?
    /// Whether the profile must (or must not) have converted after its first qualifying event.
    public var conversion: Conversion?
    /// A condition on the values of the qualifying events (with a count, both must hold).
    public var value: ValueCondition?

    /// An interaction rule; ``SegmentDefinition/init(json:)`` also checks the grammar.
    public init(
        interaction: Interaction, touchpoint: TouchpointMatch? = nil, timeframe: Timeframe = .allTime,
        atLeast: Int = 1, atMost: Int? = nil, conversion: Conversion? = nil, value: ValueCondition? = nil
    ) {
        self.interaction = interaction
        self.touchpoint = touchpoint
        self.timeframe = timeframe
        self.atLeast = atLeast
        self.atMost = atMost
        self.conversion = conversion
        self.value = value
    }
}

/// Steps a profile took in order: events e1…en, each qualifying for its step (type, touchpoint, inside the rule's
/// timeframe, ≤ T, recorded ≤ K), in strictly increasing (time, offset) order, with en.time − e1.time ≤ `within`.
public struct SequenceRule: Sendable, Equatable {
    /// One step: an event type and touchpoint, as in an interaction rule.
    public struct Step: Sendable, Equatable {
        /// Which event type the step takes.
        public var interaction: InteractionRule.Interaction
        /// Required unless `interaction` is `conversion`.
        public var touchpoint: InteractionRule.TouchpointMatch?

        /// A step.
        public init(interaction: InteractionRule.Interaction, touchpoint: InteractionRule.TouchpointMatch? = nil) {
            self.interaction = interaction
            self.touchpoint = touchpoint
        }

        /// The step as an interaction rule (all time, at least one event), for matching events.
        var rule: InteractionRule { InteractionRule(interaction: interaction, touchpoint: touchpoint) }
    }

    /// 2–8 steps.
    public var steps: [Step]
    /// The longest time from the first step's event to the last's; nil: unbounded.
    public var within: Int64?
    /// Which event times every step's event must be in, relative to T.
    public var timeframe: InteractionRule.Timeframe

    /// How many steps a sequence may have.
    public static let stepLimit = 2...8

    /// A sequence rule.
    public init(steps: [Step], within: Int64? = nil, timeframe: InteractionRule.Timeframe = .allTime) {
        self.steps = steps
        self.within = within
        self.timeframe = timeframe
    }
}

/// A segment definition that breaks the grammar: the JSON path of the problem and what is wrong.
public struct DefinitionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Such as `rules[1].timeframe.last`; empty for the document as a whole.
    public var path: String
    /// What is wrong.
    public var message: String

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
