/// Events held column by column, with profiles and touchpoints interned as 32-bit ids.
///
/// This is the shape events have between the parser and the log, and again after a block is decoded:
/// no per-event allocation, and a predicate on a touchpoint or profile is checked once per distinct string.
public struct EventBatch: Sendable {
    /// Event times, ms since the epoch.
    package internal(set) var times: [Int64] = []
    /// ``EventType`` raw values.
    var types: [UInt8] = []
    /// Index into ``profiles`` of each event's profile.
    var profileIDs: [UInt32] = []
    /// Index + 1 into ``touchpoints`` of each event's touchpoint; 0 when it has none.
    var touchpointIDs: [UInt32] = []
    /// Each event's value; NaN when it has none (inputs must be finite, so NaN never means a value).
    var values: [Double] = []
    /// The distinct profiles (in a decoded block: sorted by bytes). Batches the library builds only for its block
    /// encoder skip interning and may repeat a profile.
    package internal(set) var profiles = StringTable()
    /// The distinct touchpoints (in a decoded block: sorted by bytes).
    package internal(set) var touchpoints = StringTable()
    /// When false, each appended event's profile is added as a string of its own, without looking for an equal
    /// one: for a batch that only goes to the block encoder, which merges equal strings as it sorts them (a
    /// block has tens of thousands of distinct profiles, and finding each in a hash index costs more than that).
    var internsProfiles = true

    /// An empty batch.
    public init() {}

    /// An empty batch that does not intern profiles (see ``internsProfiles``), for events on their way to blocks.
    static func forEncoding() -> EventBatch {
        var batch = EventBatch()
        batch.internsProfiles = false
        return batch
    }

    /// A batch holding `events`, in order. Validates each as ``append(_:)`` does.
    public init(_ events: some Sequence<Event>) throws(EventValidationError) {
        for (index, event) in events.enumerated() {
            do throws(EventValidationError) { try append(event) } catch {
                var error = error
                error.index = index
                throw error
            }
        }
    }

    /// The number of events.
    public var count: Int { times.count }
    /// True when the batch holds no events.
    public var isEmpty: Bool { times.isEmpty }

    /// Adds an event after checking it against the contract (identifier lengths, UTF-8, required touchpoint,
    /// time range, finite value).
    public mutating func append(_ event: Event) throws(EventValidationError) {
        var profile = event.profile
        var touchpoint = event.touchpoint
        if let reason = EventBatch.problem(
            time: event.time, type: event.type, profileLength: profile.utf8.count,
            touchpointLength: touchpoint?.utf8.count, value: event.value)
        {
            throw EventValidationError(index: nil, reason: reason)
        }
        profile.withUTF8 { p in
            if touchpoint != nil {
                touchpoint!.withUTF8 { t in
                    append(
                        time: event.time, type: event.type, profile: UnsafeRawBufferPointer(p),
                        touchpoint: UnsafeRawBufferPointer(t), value: event.value)
                }
            } else {
                append(
                    time: event.time, type: event.type, profile: UnsafeRawBufferPointer(p), touchpoint: nil,
                    value: event.value)
            }
        }
    }

    /// Adds an event whose fields were already checked.
    mutating func append(
        time: Int64, type: EventType, profile: UnsafeRawBufferPointer, touchpoint: UnsafeRawBufferPointer?,
        value: Double?
    ) {
        times.append(time)
        types.append(type.rawValue)
        if internsProfiles {
            profileIDs.append(profiles.intern(profile))
        } else {
            profiles.append(profile)
            profileIDs.append(UInt32(profiles.count - 1))
        }
        touchpointIDs.append(touchpoint.map { touchpoints.intern($0) + 1 } ?? 0)
        values.append(value ?? .nan)
    }

    /// Why fields break the contract, or nil when they are fine.
    static func problem(time: Int64, type: EventType, profileLength: Int, touchpointLength: Int?, value: Double?)
        -> String?
    {
        if time < EventLimits.minTime || time > EventLimits.maxTime { return "time \(time) is outside years 0000-9999" }
        if profileLength == 0 { return "profile is empty" }
        if profileLength > EventLimits.maxIdentifierBytes {
            return "profile is \(profileLength) bytes, over the 256-byte limit"
        }
        if let touchpointLength {
            if touchpointLength == 0 { return "touchpoint is empty" }
            if touchpointLength > EventLimits.maxIdentifierBytes {
                return "touchpoint is \(touchpointLength) bytes, over the 256-byte limit"
            }
        } else if type != .conversion {
            return "touchpoint is required for a \(type.name)"
        }
        if let value, !value.isFinite { return "value must be a finite number" }
        return nil
    }

    /// The time of event `index`, in milliseconds since the epoch.
    public func time(at index: Int) -> Int64 { times[index] }

    /// The type of event `index`.
    public func type(at index: Int) -> EventType { EventType(rawValue: types[index])! }

    /// The profile of event `index`.
    public func profile(at index: Int) -> String { profiles.string(Int(profileIDs[index])) }

    /// The touchpoint of event `index`, or nil (a conversion may have none).
    public func touchpoint(at index: Int) -> String? {
        let id = touchpointIDs[index]
        return id == 0 ? nil : touchpoints.string(Int(id - 1))
    }

    /// The bytes of event `index`'s profile.
    package func profileBytes(at index: Int) -> ArraySlice<UInt8> { profiles[Int(profileIDs[index])] }

    /// The bytes of event `index`'s touchpoint, or nil.
    package func touchpointBytes(at index: Int) -> ArraySlice<UInt8>? {
        let id = touchpointIDs[index]
        return id == 0 ? nil : touchpoints[Int(id - 1)]
    }

    /// The value of event `index`, or nil when it has none.
    public func value(at index: Int) -> Double? {
        let v = values[index]
        return v.isNaN ? nil : v
    }

    /// Event `index` as a value.
    public func event(at index: Int) -> Event {
        Event(
            time: times[index], profile: profile(at: index), type: type(at: index), touchpoint: touchpoint(at: index),
            value: value(at: index))
    }

    /// Removes every event and string, keeping capacity (and the string index's size) for the next batch of a
    /// similar size.
    mutating func removeAll() {
        times.removeAll(keepingCapacity: true)
        types.removeAll(keepingCapacity: true)
        profileIDs.removeAll(keepingCapacity: true)
        touchpointIDs.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        profiles.removeAll(keepingIndex: true)
        touchpoints.removeAll(keepingIndex: true)
    }
}

/// An event that breaks the contract, from the library API.
public struct EventValidationError: Error, CustomStringConvertible, Sendable {
    /// The event's position in the batch, when known.
    public var index: Int?
    /// What is wrong with the event.
    public var reason: String

    public var description: String {
        index.map { "event \($0): \(reason)" } ?? reason
    }
}
