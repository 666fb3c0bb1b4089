/// What a profile did: saw a touchpoint, clicked it, or converted.
public enum EventType: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The profile saw the touchpoint (an impression).
    case view = 0
    /// The profile clicked the touchpoint.
    case click = 1
    /// The profile converted (a purchase, a sign-up); a touchpoint is optional.
    case conversion = 2

    /// The name used in input, output and segment rules.
    public var name: String { staticName.description }

    /// ``name`` as a static string (written into output without building a `String`).
    var staticName: StaticString {
        switch self {
        case .view: return "view"
        case .click: return "click"
        case .conversion: return "conversion"
        }
    }

    public var description: String { name }

    /// The type named `name` exactly (`view`, `click`, `conversion`).
    public init?(name: String) {
        switch name {
        case "view": self = .view
        case "click": self = .click
        case "conversion": self = .conversion
        default: return nil
        }
    }
}

/// One interaction as a value: the form a service hands to ``TouchLogStore/append(_:)-([Event])``.
///
/// Strings are compared and sorted by their UTF-8 bytes everywhere in touchlog.
public struct Event: Sendable, Hashable {
    /// Event time in milliseconds since the Unix epoch (UTC).
    public var time: Int64
    /// The profile (person) the event belongs to: 1 to 256 bytes of UTF-8.
    public var profile: String
    /// View, click or conversion.
    public var type: EventType
    /// Required for views and clicks; optional (attribution) for conversions.
    public var touchpoint: String?
    /// Optional revenue of a conversion; must be finite.
    public var value: Double?

    /// An event at `time` (epoch milliseconds); see ``click(_:touchpoint:at:)`` and its neighbours for `Date`s.
    public init(time: Int64, profile: String, type: EventType, touchpoint: String? = nil, value: Double? = nil) {
        self.time = time
        self.profile = profile
        self.type = type
        self.touchpoint = touchpoint
        self.value = value
    }
}

/// An event as the log holds it: with its offset and the time the store recorded it.
public struct StoredEvent: Sendable, Hashable {
    /// Its position in the log: 0 for the first event ever appended, one more for each after it.
    public var offset: UInt64
    /// When the store committed the event, in milliseconds since the epoch.
    public var recorded: Int64
    /// The event as appended.
    public var event: Event

    /// A stored event (for tests and replays of a service's own).
    public init(offset: UInt64, recorded: Int64, event: Event) {
        self.offset = offset
        self.recorded = recorded
        self.event = event
    }
}

/// Limits on identifiers, from the product contract.
public enum EventLimits {
    /// Profiles and touchpoints are 1 to 256 bytes of UTF-8.
    public static let maxIdentifierBytes = 256
    /// The earliest and latest event times accepted: years 0000 through 9999.
    public static let minTime: Int64 = -62_167_219_200_000
    /// The last millisecond of the year 9999.
    public static let maxTime: Int64 = 253_402_300_799_999
}
