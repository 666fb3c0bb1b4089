import CTouchLogSQLite

@testable import TouchLog

/// The same events in an SQLite table, and the segment rules translated to plain SQL: the independent reference
/// the engine's answers are checked against. Strings are BLOBs so that every comparison, `instr`, `substr` and
/// `ORDER BY` works on bytes, as the contract says.
final class SQLiteReference {
    private var db: OpaquePointer?

    init(events: [(event: Event, recorded: Int64)]) {
        precondition(sqlite3_open(":memory:", &db) == SQLITE_OK)
        // v: the event's value in millionths (rounded to the nearest, as the contract says values compare), or NULL.
        execute(
            "CREATE TABLE ev(profile BLOB NOT NULL, type INTEGER NOT NULL, tp BLOB, time INTEGER NOT NULL, recorded INTEGER NOT NULL, v INTEGER)"
        )
        execute("BEGIN")
        var insert: OpaquePointer?
        precondition(
            sqlite3_prepare_v2(
                db, "INSERT INTO ev VALUES (?, ?, ?, ?, ?, CAST(round(? * 1000000) AS INTEGER))", -1, &insert, nil)
                == SQLITE_OK)
        let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
        for (event, recorded) in events {
            let profile = Array(event.profile.utf8)
            profile.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 1, $0.baseAddress, Int32($0.count), transient) }
            sqlite3_bind_int64(insert, 2, Int64(event.type.rawValue))
            if let touchpoint = event.touchpoint {
                Array(touchpoint.utf8).withUnsafeBytes {
                    _ = sqlite3_bind_blob(insert, 3, $0.baseAddress, Int32($0.count), transient)
                }
            } else {
                sqlite3_bind_null(insert, 3)
            }
            sqlite3_bind_int64(insert, 4, event.time)
            sqlite3_bind_int64(insert, 5, recorded)
            if let value = event.value { sqlite3_bind_double(insert, 6, value) } else { sqlite3_bind_null(insert, 6) }
            precondition(sqlite3_step(insert) == SQLITE_DONE)
            sqlite3_reset(insert)
        }
        sqlite3_finalize(insert)
        execute("COMMIT")
        execute("CREATE INDEX ev_profile ON ev(profile, type, time)")
    }

    deinit { sqlite3_close(db) }

    private func execute(_ sql: String) {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &error)
        precondition(rc == SQLITE_OK, error.map { String(cString: $0) } ?? "sqlite error \(rc)")
    }

    /// The members by SQL, in SQLite's BLOB order (memcmp, then length). References are looked up in `segments`.
    func members(_ definition: SegmentDefinition, at time: QueryTime, segments: [String: SegmentDefinition] = [:])
        -> [String]
    {
        let sql = Self.sql(definition, at: time, segments: segments)
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            fatalError("bad SQL: \(String(cString: sqlite3_errmsg(db))): \(sql)")
        }
        defer { sqlite3_finalize(statement) }
        var result: [String] = []
        while sqlite3_step(statement) == SQLITE_ROW {
            let count = Int(sqlite3_column_bytes(statement, 0))
            let bytes = UnsafeRawBufferPointer(start: sqlite3_column_blob(statement, 0), count: count)
            result.append(String(decoding: bytes, as: UTF8.self))
        }
        return result
    }

    /// The offsets (row order, from 0) of the events recorded at or before `knownAt` with an event time at or after
    /// `since`: what a replay with `--known-at` prints.
    func offsets(recordedBy knownAt: Int64, since: Int64 = .min) -> [UInt64] {
        var statement: OpaquePointer?
        let sql = "SELECT rowid - 1 FROM ev WHERE recorded <= \(knownAt) AND time >= \(since) ORDER BY rowid"
        precondition(sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK)
        defer { sqlite3_finalize(statement) }
        var result: [UInt64] = []
        while sqlite3_step(statement) == SQLITE_ROW { result.append(UInt64(sqlite3_column_int64(statement, 0))) }
        return result
    }

    /// The UTC offset (ms) of a zone at the instant in SQL expression `t`, from the zone's rules written out for
    /// the years the tests use (2021–2023): the reference knows nothing of the tz database the engine reads.
    static func offset(_ zone: String, _ t: String) -> String {
        switch zone {
        case "Europe/Amsterdam":
            // Summer time from the last Sunday of March to the last Sunday of October, 01:00 UTC.
            return
                "(CASE WHEN \(t) >= 1698541200000 THEN 3600000 WHEN \(t) >= 1679792400000 THEN 7200000 WHEN \(t) >= 1667091600000 THEN 3600000 "
                + "WHEN \(t) >= 1648342800000 THEN 7200000 WHEN \(t) >= 1635642000000 THEN 3600000 WHEN \(t) >= 1616893200000 THEN 7200000 ELSE 3600000 END)"
        case "America/New_York":
            // Daylight time from the second Sunday of March, 07:00 UTC, to the first Sunday of November, 06:00 UTC.
            return
                "(CASE WHEN \(t) >= 1699164000000 THEN -18000000 WHEN \(t) >= 1678604400000 THEN -14400000 WHEN \(t) >= 1667714400000 THEN -18000000 "
                + "WHEN \(t) >= 1647154800000 THEN -14400000 WHEN \(t) >= 1636264800000 THEN -18000000 WHEN \(t) >= 1615705200000 THEN -14400000 ELSE -18000000 END)"
        case "Asia/Kolkata": return "19800000"
        case "UTC": return "0"
        default: fatalError("no rules written out for \(zone)")
        }
    }

    /// The number of the calendar unit (counted from 1970) holding instant `t` in `zone`: local days; weeks from
    /// Monday (1970-01-01 was a Thursday); months as year × 12 + month.
    static func unitNumber(_ calendar: CalendarWindow, _ t: String) -> String {
        let local = "(\(t) + \(offset(calendar.timeZone, t)))"
        switch calendar.unit {
        case .day: return "(\(local) / 86400000)"
        case .week: return "((\(local) / 86400000 + 3) / 7)"
        case .month:
            return
                "(CAST(strftime('%Y', \(local) / 1000, 'unixepoch') AS INTEGER) * 12 + CAST(strftime('%m', \(local) / 1000, 'unixepoch') AS INTEGER))"
        }
    }

    static func sql(_ definition: SegmentDefinition, at time: QueryTime, segments: [String: SegmentDefinition] = [:])
        -> String
    {
        let visible = "time <= \(time.asOf) AND recorded <= \(time.knownAt ?? Int64.max)"
        func node(_ rule: SegmentDefinition.Rule) -> String {
            switch rule {
            case .interaction(let r, let negate):
                let text = leaf(r)
                return negate ? "(NOT \(text))" : text
            case .group(let match, let rules, let negate):
                let text = "(" + rules.map(node).joined(separator: match == .all ? " AND " : " OR ") + ")"
                return negate ? "(NOT \(text))" : text
            case .sequence(let r, let negate):
                let text = sequence(r)
                return negate ? "(NOT \(text))" : text
            case .segment(let name, let negate):
                let text =
                    "k.profile IN ("
                    + sql(segments[name]!, at: time, segments: segments).replacingOccurrences(
                        of: " ORDER BY k.profile", with: "") + ")"
                return negate ? "(NOT \(text))" : text
            }
        }
        func typeCondition(_ interaction: InteractionRule.Interaction, _ e: String) -> String {
            switch interaction {
            case .view: return "\(e)type = 0"
            case .click: return "\(e)type = 1"
            case .any: return "\(e)type IN (0, 1)"
            case .conversion: return "\(e)type = 2"
            }
        }
        func touchpointCondition(_ touchpoint: InteractionRule.TouchpointMatch, _ e: String) -> String {
            let tp = e + "tp"
            switch touchpoint {
            case .exactly(let s): return "\(tp) = \(blob(s))"
            case .contains(let s): return "\(tp) IS NOT NULL AND instr(\(tp), \(blob(s))) > 0"
            case .startsWith(let s):
                return "\(tp) IS NOT NULL AND length(\(tp)) >= \(s.count) AND substr(\(tp), 1, \(s.count)) = \(blob(s))"
            case .endsWith(let s):
                return
                    "\(tp) IS NOT NULL AND length(\(tp)) >= \(s.count) AND substr(\(tp), length(\(tp)) - \(s.count - 1)) = \(blob(s))"
            case .oneOf(let list): return "\(tp) IN (" + list.map(blob).joined(separator: ", ") + ")"
            }
        }
        func timeframeConditions(_ timeframe: InteractionRule.Timeframe, _ e: String) -> [String] {
            let t = e + "time"
            switch timeframe {
            case .allTime: return []
            case .last(let d): return ["\(t) >= \(time.asOf - d)"]
            case .before(let d): return ["\(t) < \(time.asOf - d)"]
            case .between(let from, let to):
                return [from.map { "\(t) >= \($0)" }, to.map { "\(t) <= \($0)" }].compactMap { $0 }
            case .calendar(let c):
                return ["\(unitNumber(c, t)) >= \(unitNumber(c, String(time.asOf))) - \(c.count - 1)"]
            }
        }
        func leaf(_ r: InteractionRule) -> String {
            var conditions = [visible, typeCondition(r.interaction, "")]
            if let touchpoint = r.touchpoint { conditions.append(touchpointCondition(touchpoint, "")) }
            conditions += timeframeConditions(r.timeframe, "")
            var having = ["q.n >= \(r.atLeast)"]
            if let atMost = r.atMost { having.append("q.n <= \(atMost)") }
            if let conversion = r.conversion {
                let exists =
                    "EXISTS (SELECT 1 FROM ev c WHERE c.profile = q.profile AND c.type = 2 AND c.time >= q.f AND c.time <= \(time.asOf) AND c.recorded <= \(time.knownAt ?? Int64.max))"
                having.append(conversion == .converted ? exists : "NOT " + exists)
            }
            if let value = r.value {
                having.append("q.vn > 0")
                let micros = { (x: Double) in Int64((x * 1_000_000).rounded()) }
                let column = ["sum": "q.vs", "min": "q.vmin", "max": "q.vmax", "avg": "q.vs"][value.aggregate.rawValue]!
                let scale = value.aggregate == .avg ? " * q.vn" : ""
                if let low = value.atLeast { having.append("\(column) >= \(micros(low))\(scale)") }
                if let high = value.atMost { having.append("\(column) <= \(micros(high))\(scale)") }
            }
            return
                "k.profile IN (SELECT q.profile FROM (SELECT profile, COUNT(*) AS n, MIN(time) AS f, COUNT(v) AS vn, SUM(v) AS vs, MIN(v) AS vmin, "
                + "MAX(v) AS vmax FROM ev WHERE " + conditions.joined(separator: " AND ")
                + " GROUP BY profile) AS q WHERE " + having.joined(separator: " AND ") + ")"
        }
        // A sequence by self-join: e1 … en of the profile, each qualifying for its step, in increasing (time, rowid)
        // order (rows are inserted in log order), the last within `within` of the first.
        func sequence(_ r: SequenceRule) -> String {
            var from: [String] = []
            var conditions: [String] = []
            for (k, step) in r.steps.enumerated() {
                let e = "e\(k)."
                from.append("ev e\(k)")
                conditions.append("e\(k).profile = k.profile")
                conditions.append("e\(k).time <= \(time.asOf) AND e\(k).recorded <= \(time.knownAt ?? Int64.max)")
                conditions.append(typeCondition(step.interaction, e))
                if let touchpoint = step.touchpoint { conditions.append(touchpointCondition(touchpoint, e)) }
                conditions += timeframeConditions(r.timeframe, e)
                if k > 0 {
                    conditions.append(
                        "(e\(k).time > e\(k - 1).time OR (e\(k).time = e\(k - 1).time AND e\(k).rowid > e\(k - 1).rowid))"
                    )
                }
            }
            if let within = r.within { conditions.append("e\(r.steps.count - 1).time - e0.time <= \(within)") }
            return "EXISTS (SELECT 1 FROM " + from.joined(separator: ", ") + " WHERE "
                + conditions.joined(separator: " AND ") + ")"
        }
        let top = "(" + definition.rules.map(node).joined(separator: definition.match == .all ? " AND " : " OR ") + ")"
        return
            "SELECT k.profile FROM (SELECT DISTINCT profile FROM ev WHERE \(visible)) AS k WHERE \(top) ORDER BY k.profile"
    }

    static func blob(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF")
        return "X'" + String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }) + "'"
    }
}
