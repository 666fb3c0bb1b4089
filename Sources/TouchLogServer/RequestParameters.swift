import Hummingbird
import TouchLog

/// A request's query parameters, checked against the ones its route accepts: an unknown or repeated parameter, or
/// a value that does not parse, is a 400 naming it (a typo such as `asof` must not silently mean "now").
struct RequestParameters {
    private let pairs: [(key: String, value: String)]

    init(_ request: Request, allowed: Set<String>, repeatable: Set<String> = []) throws(APIError) {
        pairs = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
        var seen = Set<String>()
        for (key, _) in pairs {
            guard allowed.contains(key) || repeatable.contains(key) else {
                let known = allowed.union(repeatable).sorted().joined(separator: ", ")
                throw .badRequest(
                    "unknown query parameter '\(key)'"
                        + (known.isEmpty ? " (this route takes none)" : " (this route takes: \(known))"))
            }
            guard seen.insert(key).inserted || repeatable.contains(key) else {
                throw .badRequest("query parameter '\(key)' is given twice")
            }
        }
    }

    func string(_ key: String) -> String? { pairs.first { $0.key == key }?.value }

    func strings(_ key: String) -> [String] { pairs.filter { $0.key == key }.map(\.value) }

    /// A time: RFC 3339 (`+` in an offset must be sent as `%2B`) or epoch milliseconds.
    func time(_ key: String) throws(APIError) -> Int64? {
        guard let text = string(key) else { return nil }
        guard let ms = Timestamp.parse(text) else {
            throw .badRequest(
                "\(key): bad time \"\(text)\": expected RFC 3339 (2022-06-01T10:21:14.250Z; send '+' as %2B) or epoch milliseconds"
            )
        }
        return ms
    }

    func offset(_ key: String) throws(APIError) -> UInt64? {
        guard let text = string(key) else { return nil }
        guard let value = UInt64(text) else { throw .badRequest("\(key): \"\(text)\" is not an offset (0, 1, 2, …)") }
        return value
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let text = string(key) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw .badRequest("\(key): \"\(text)\" is not an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return value
    }

    func bool(_ key: String) throws(APIError) -> Bool? {
        switch string(key) {
        case nil: return nil
        case "true", "1", "": return true
        case "false", "0": return false
        case let text?: throw .badRequest("\(key): \"\(text)\" is not true or false")
        }
    }

    /// A duration of the rule language (`500ms`, `1s`, `5m`).
    func duration(_ key: String) throws(APIError) -> Duration? {
        guard let text = string(key) else { return nil }
        guard let ms = RuleDuration.parse(text) else {
            throw .badRequest("\(key): bad duration \"\(text)\" (a positive integer and ms, s, m, h, d or w)")
        }
        return .milliseconds(ms)
    }

    /// `asOf` (default now) and `knownAt` (default everything recorded).
    func queryTime() throws(APIError) -> QueryTime {
        QueryTime(asOf: try time("asOf") ?? Timestamp.now(), knownAt: try time("knownAt"))
    }

    /// ``queryTime()``, or nil when neither `asOf` nor `knownAt` is given: "now, by everything recorded", which the
    /// store answers at a time of its own.
    func queryTimeUnlessNow() throws(APIError) -> QueryTime? {
        string("asOf") == nil && string("knownAt") == nil ? nil : try queryTime()
    }
}
