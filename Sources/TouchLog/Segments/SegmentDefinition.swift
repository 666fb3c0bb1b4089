/// A named audience: a rule tree over a profile's events, evaluated at a point in time.
///
/// Built from JSON by ``init(json:)``, which checks the whole grammar of the product contract and names the JSON
/// path of the first problem (`rules[1].timeframe.last: bad duration "30x"`).
public struct SegmentDefinition: Sendable, Equatable {
    /// 1–128 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
    public var name: String
    public var description: String?
    public var match: Match
    /// At least one.
    public var rules: [Rule]

    /// Whether every rule (`all`) or at least one (`any`) must hold.
    public enum Match: String, Sendable, Equatable {
        case all
        case any
    }

    /// An interaction rule or a group of rules, possibly negated.
    public indirect enum Rule: Sendable, Equatable {
        case interaction(InteractionRule, negate: Bool)
        case group(Match, [Rule], negate: Bool)

        public var isNegated: Bool {
            switch self {
            case .interaction(_, let negate), .group(_, _, let negate): return negate
            }
        }
    }

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
            && bytes.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }
}

/// What a profile must have done for an interaction rule to hold.
public struct InteractionRule: Sendable, Equatable {
    /// `view`, `click`, `any` (a view or a click) or `conversion`.
    public enum Interaction: String, Sendable, Equatable {
        case view, click, any, conversion

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
        case exactly([UInt8])
        case contains([UInt8])
        case startsWith([UInt8])
        case endsWith([UInt8])
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
                for start in 0...(t.count - s.count) where t[start] == s[0] && Array(t[start..<(start + s.count)]) == s { return true }
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

        /// The inclusive window of event times at `asOf`; nil when empty.
        public func window(asOf: Int64) -> ClosedRange<Int64>? {
            let low: Int64
            var high = asOf
            switch self {
            case .allTime: low = .min
            case .last(let d): low = asOf &- d
            case .between(let from, let to):
                low = from ?? .min
                if let to { high = min(to, asOf) }
            }
            return low <= high ? low...high : nil
        }
    }

    /// Whether the profile converted after its first qualifying event.
    public enum Conversion: String, Sendable, Equatable {
        case converted
        case notConverted = "not_converted"
    }

    public var interaction: Interaction
    /// Required unless `interaction` is `conversion`.
    public var touchpoint: TouchpointMatch?
    public var timeframe: Timeframe = .allTime
    /// Qualifying events needed: at least this many (≥ 1; default 1).
    public var atLeast: Int = 1
    /// …and at most this many, when given.
    public var atMost: Int?
    public var conversion: Conversion?

    public init(interaction: Interaction, touchpoint: TouchpointMatch? = nil, timeframe: Timeframe = .allTime,
                atLeast: Int = 1, atMost: Int? = nil, conversion: Conversion? = nil) {
        self.interaction = interaction
        self.touchpoint = touchpoint
        self.timeframe = timeframe
        self.atLeast = atLeast
        self.atMost = atMost
        self.conversion = conversion
    }
}

/// A segment definition that breaks the grammar: the JSON path of the problem and what is wrong.
public struct DefinitionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Such as `rules[1].timeframe.last`; empty for the document as a whole.
    public var path: String
    public var message: String

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
