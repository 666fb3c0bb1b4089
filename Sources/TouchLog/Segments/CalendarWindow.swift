import Foundation

/// A `calendar` timeframe: the calendar unit (day, week from Monday, month) that contains T in a time zone, from its
/// start up to T, plus the `count − 1` whole units before it. Unit edges come from the system's tz database through
/// Foundation's `Calendar`, so a day of 23 or 25 hours (a daylight-saving change) is one day.
public struct CalendarWindow: Sendable, Equatable {
    /// A calendar unit: a day, a week (starting on Monday) or a month.
    public enum Unit: String, Sendable, Equatable, CaseIterable {
        /// A calendar day, from midnight in the window's time zone.
        case day
        /// A week, from Monday's midnight.
        case week
        /// A calendar month, from midnight on its first day.
        case month
    }

    /// The unit that contains T.
    public var unit: Unit
    /// How many units, the one containing T included (1–10,000).
    public var count: Int
    /// An identifier of the tz database, such as `Europe/Amsterdam`.
    public var timeZone: String

    /// The counts the grammar accepts.
    public static let countLimit = 1...10_000

    /// A window of `count` units up to T in `timeZone`.
    public init(unit: Unit, count: Int = 1, timeZone: String = "UTC") {
        self.unit = unit
        self.count = count
        self.timeZone = timeZone
    }

    /// Whether `identifier` names a zone of the system's tz database.
    public static func isKnownTimeZone(_ identifier: String) -> Bool { TimeZone(identifier: identifier) != nil }

    /// The window's first instant (ms) at `asOf`.
    public func start(asOf time: Int64) -> Int64 {
        let asOf = min(max(time, EventLimits.minTime), EventLimits.maxTime)
        // (An unknown zone is refused when the definition is read.)
        guard let zone = TimeZone(identifier: timeZone) else { return asOf &+ 1 }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        calendar.firstWeekday = 2  // Monday
        calendar.minimumDaysInFirstWeek = 4
        let component: Calendar.Component = unit == .day ? .day : unit == .week ? .weekOfYear : .month
        func unitStart(containing ms: Int64) -> Int64? {
            let date = Date(timeIntervalSince1970: Double(ms) / 1000)
            guard let interval = calendar.dateInterval(of: component, for: date) else { return nil }
            return Int64((interval.start.timeIntervalSince1970 * 1000).rounded())
        }
        guard var start = unitStart(containing: asOf) else { return asOf &+ 1 }
        // Each earlier unit is the one containing the instant before the later one's start.
        for _ in 1..<max(1, count) {
            guard let earlier = unitStart(containing: start - 1), earlier < start else { return .min }
            start = earlier
        }
        return start
    }
}
