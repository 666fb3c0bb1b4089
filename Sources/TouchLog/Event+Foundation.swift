import Foundation

// What a Swift service expects of the values it hands to touchlog and gets back: `Date` wherever a time goes in,
// events whose kind says what they need, and `Codable` values in the same JSON shape the CLI and the HTTP API use.

extension Timestamp {
    /// `date` in milliseconds since the epoch, rounded down (a date 0.9 ms after a millisecond is in that millisecond).
    public static func milliseconds(_ date: Date) -> Int64 {
        // Through whole microseconds first, so that a date made from milliseconds comes back as exactly them.
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        return Int64(micros).floorDivided(by: 1000)
    }

    /// The date of `milliseconds` since the epoch.
    public static func date(_ milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// Parses `text` as ``parse(_:)-(String)`` does, or throws an error that says what was expected.
    public static func milliseconds(_ text: String) throws(TouchLogError) -> Int64 {
        guard let milliseconds = parse(text) else {
            throw TouchLogError(
                code: .invalidInput,
                message: "bad time \"\(text)\": expected RFC 3339 (2022-06-01T10:21:14.250Z) or epoch milliseconds"
                    + " within years 0000-9999")
        }
        return milliseconds
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (times before 1970 round down too).
    fileprivate func floorDivided(by d: Int64) -> Int64 {
        let (q, r) = quotientAndRemainder(dividingBy: d)
        return r < 0 ? q - 1 : q
    }
}

extension Event {
    /// An event at `time` (rounded down to the millisecond).
    public init(time: Date, profile: String, type: EventType, touchpoint: String? = nil, value: Double? = nil) {
        self.init(
            time: Timestamp.milliseconds(time), profile: profile, type: type, touchpoint: touchpoint, value: value)
    }

    /// A view of `touchpoint` by `profile` at `time`.
    public static func view(_ profile: String, touchpoint: String, at time: Date) -> Event {
        Event(time: time, profile: profile, type: .view, touchpoint: touchpoint)
    }

    /// A click on `touchpoint` by `profile` at `time`.
    public static func click(_ profile: String, touchpoint: String, at time: Date) -> Event {
        Event(time: time, profile: profile, type: .click, touchpoint: touchpoint)
    }

    /// A conversion of `profile` at `time`, optionally attributed to a touchpoint and with a value (revenue).
    public static func conversion(_ profile: String, touchpoint: String? = nil, value: Double? = nil, at time: Date)
        -> Event
    {
        Event(time: time, profile: profile, type: .conversion, touchpoint: touchpoint, value: value)
    }

    /// ``time`` as a date.
    public var date: Date { Timestamp.date(time) }

    /// Why a store would refuse this event (an identifier empty or over 256 bytes, a view or click without a
    /// touchpoint, a time outside years 0000-9999, a value that is not finite); nil when it would accept it.
    public var problem: String? {
        EventBatch.problem(
            time: time, type: type, profileLength: profile.utf8.count, touchpointLength: touchpoint?.utf8.count,
            value: value)
    }
}

extension QueryTime {
    /// As of `asOf`, by what the store knew at `knownAt` (nil: everything recorded); both rounded down to the
    /// millisecond.
    public init(asOf: Date, knownAt: Date? = nil) {
        self.init(asOf: Timestamp.milliseconds(asOf), knownAt: knownAt.map(Timestamp.milliseconds))
    }

    /// As of `asOf`, by what the store knew at `knownAt`, each RFC 3339 or epoch milliseconds as on the command
    /// line; throws ``TouchLogError/Code-swift.struct/invalidInput`` naming a time that is neither.
    public init(asOf: String, knownAt: String? = nil) throws(TouchLogError) {
        self.init(
            asOf: try Timestamp.milliseconds(asOf),
            knownAt: try knownAt.map { text throws(TouchLogError) in try Timestamp.milliseconds(text) })
    }
}

extension InteractionRule.TouchpointMatch {
    /// The touchpoint is exactly `touchpoint` (compared by UTF-8 bytes).
    public static func exactly(_ touchpoint: String) -> Self { .exactly(Array(touchpoint.utf8)) }
    /// The touchpoint contains `text`.
    public static func contains(_ text: String) -> Self { .contains(Array(text.utf8)) }
    /// The touchpoint starts with `prefix`.
    public static func startsWith(_ prefix: String) -> Self { .startsWith(Array(prefix.utf8)) }
    /// The touchpoint ends with `suffix`.
    public static func endsWith(_ suffix: String) -> Self { .endsWith(Array(suffix.utf8)) }
    /// The touchpoint is one of `touchpoints`.
    public static func oneOf(_ touchpoints: [String]) -> Self { .oneOf(touchpoints.map { Array($0.utf8) }) }
}

/// An event encodes as a line of the store's JSON input: `{"time":"2022-06-01T10:21:14.250Z","profile":"p-123",
/// "type":"click","touchpoint":"summer-2022-collection"}`, with `value` when it has one. It decodes from the same
/// shape, its time RFC 3339 or epoch milliseconds (a string or a number); an event a store would refuse (see
/// ``problem``) does not decode.
extension Event: Codable {
    private enum CodingKeys: String, CodingKey {
        case time, profile, type, touchpoint, value
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let time: Int64
        if let text = try? c.decode(String.self, forKey: .time) {
            time = try c.time(text, forKey: .time)
        } else {
            time = try c.decode(Int64.self, forKey: .time)
        }
        let name = try c.decode(String.self, forKey: .type)
        guard let type = EventType(name: name) else {
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c, debugDescription: "unknown type \"\(name)\": expected view, click or conversion")
        }
        self.init(
            time: time, profile: try c.decode(String.self, forKey: .profile), type: type,
            touchpoint: try c.decodeIfPresent(String.self, forKey: .touchpoint),
            value: try c.decodeIfPresent(Double.self, forKey: .value))
        if let problem {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: problem))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Timestamp.format(time), forKey: .time)
        try c.encode(profile, forKey: .profile)
        try c.encode(type.name, forKey: .type)
        try c.encodeIfPresent(touchpoint, forKey: .touchpoint)
        try c.encodeIfPresent(value, forKey: .value)
    }
}

extension KeyedDecodingContainer {
    /// `text` (at `key`), RFC 3339 or epoch milliseconds, in milliseconds; refused, saying what was expected, when it
    /// is neither.
    fileprivate func time(_ text: String, forKey key: Key) throws -> Int64 {
        do { return try Timestamp.milliseconds(text) } catch {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: error.message)
        }
    }
}

/// A stored event encodes as a line of `touchlog replay`: the event's fields with `offset` and `recorded` (RFC 3339)
/// added, which is also valid input for appending.
extension StoredEvent: Codable {
    private enum CodingKeys: String, CodingKey {
        case offset, recorded
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let recorded = try c.time(try c.decode(String.self, forKey: .recorded), forKey: .recorded)
        self.init(
            offset: try c.decode(UInt64.self, forKey: .offset), recorded: recorded, event: try Event(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(offset, forKey: .offset)
        try c.encode(Timestamp.format(recorded), forKey: .recorded)
        try event.encode(to: encoder)
    }
}

/// A definition encodes as its JSON document (the canonical form of ``SegmentDefinition/json``) and decodes from
/// one, refused with the same path-naming message as ``SegmentDefinition/init(json:)``.
extension SegmentDefinition: Codable {
    public init(from decoder: any Decoder) throws {
        let document = try JSONValue(from: decoder)
        do { try self.init(json: document.text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        try encoded().encode(to: encoder)
    }
}

extension JSONValue: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    package init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            // (Decoders do not keep members in order; a definition's meaning does not depend on it.)
            self = .object(
                try object.allKeys.sorted { $0.stringValue < $1.stringValue }.map { key in
                    (key.stringValue, try object.decode(JSONValue.self, forKey: key))
                })
        } else if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self)) }
            self = .array(elements)
        } else {
            let value = try decoder.singleValueContainer()
            if value.decodeNil() {
                self = .null
            } else if let bool = try? value.decode(Bool.self) {
                self = .bool(bool)
            } else if let integer = try? value.decode(Int64.self) {
                self = .number(String(integer))
            } else if let double = try? value.decode(Double.self) {
                self = .number("\(double)")
            } else {
                self = .string(try value.decode(String.self))
            }
        }
    }

    package func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let b):
            var c = encoder.singleValueContainer()
            try c.encode(b)
        case .number(let text):
            var c = encoder.singleValueContainer()
            if let integer = Int64(text) { try c.encode(integer) } else { try c.encode(Double(text) ?? .nan) }
        case .string(let s):
            var c = encoder.singleValueContainer()
            try c.encode(s)
        case .array(let elements):
            var c = encoder.unkeyedContainer()
            for element in elements { try c.encode(element) }
        case .object(let members):
            var c = encoder.container(keyedBy: Key.self)
            for (key, value) in members { try c.encode(value, forKey: Key(stringValue: key)) }
        }
    }
}
