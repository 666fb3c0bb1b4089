import CTouchLogSQLite
@testable import TouchLog

/// The same events in an SQLite table, and the segment rules translated to plain SQL: the independent reference
/// the engine's answers are checked against. Strings are BLOBs so that every comparison, `instr`, `substr` and
/// `ORDER BY` works on bytes, as the contract says.
final class SQLiteReference {
    private var db: OpaquePointer?

    init(events: [(event: Event, recorded: Int64)]) {
        precondition(sqlite3_open(":memory:", &db) == SQLITE_OK)
        execute("CREATE TABLE ev(profile BLOB NOT NULL, type INTEGER NOT NULL, tp BLOB, time INTEGER NOT NULL, recorded INTEGER NOT NULL)")
        execute("BEGIN")
        var insert: OpaquePointer?
        precondition(sqlite3_prepare_v2(db, "INSERT INTO ev VALUES (?, ?, ?, ?, ?)", -1, &insert, nil) == SQLITE_OK)
        let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
        for (event, recorded) in events {
            let profile = Array(event.profile.utf8)
            profile.withUnsafeBytes { _ = sqlite3_bind_blob(insert, 1, $0.baseAddress, Int32($0.count), transient) }
            sqlite3_bind_int64(insert, 2, Int64(event.type.rawValue))
            if let touchpoint = event.touchpoint {
                Array(touchpoint.utf8).withUnsafeBytes { _ = sqlite3_bind_blob(insert, 3, $0.baseAddress, Int32($0.count), transient) }
            } else {
                sqlite3_bind_null(insert, 3)
            }
            sqlite3_bind_int64(insert, 4, event.time)
            sqlite3_bind_int64(insert, 5, recorded)
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

    /// The members by SQL, in SQLite's BLOB order (memcmp, then length).
    func members(_ definition: SegmentDefinition, at time: QueryTime) -> [String] {
        let sql = Self.sql(definition, at: time)
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

    static func sql(_ definition: SegmentDefinition, at time: QueryTime) -> String {
        let visible = "time <= \(time.asOf) AND recorded <= \(time.knownAt ?? Int64.max)"
        func node(_ rule: SegmentDefinition.Rule) -> String {
            switch rule {
            case .interaction(let r, let negate):
                let text = leaf(r)
                return negate ? "(NOT \(text))" : text
            case .group(let match, let rules, let negate):
                let text = "(" + rules.map(node).joined(separator: match == .all ? " AND " : " OR ") + ")"
                return negate ? "(NOT \(text))" : text
            }
        }
        func leaf(_ r: InteractionRule) -> String {
            var conditions = [visible]
            switch r.interaction {
            case .view: conditions.append("type = 0")
            case .click: conditions.append("type = 1")
            case .any: conditions.append("type IN (0, 1)")
            case .conversion: conditions.append("type = 2")
            }
            if let touchpoint = r.touchpoint {
                switch touchpoint {
                case .exactly(let s): conditions.append("tp = \(blob(s))")
                case .contains(let s): conditions.append("tp IS NOT NULL AND instr(tp, \(blob(s))) > 0")
                case .startsWith(let s): conditions.append("tp IS NOT NULL AND length(tp) >= \(s.count) AND substr(tp, 1, \(s.count)) = \(blob(s))")
                case .endsWith(let s): conditions.append("tp IS NOT NULL AND length(tp) >= \(s.count) AND substr(tp, length(tp) - \(s.count - 1)) = \(blob(s))")
                case .oneOf(let list): conditions.append("tp IN (" + list.map(blob).joined(separator: ", ") + ")")
                }
            }
            switch r.timeframe {
            case .allTime: break
            case .last(let d): conditions.append("time >= \(time.asOf - d)")
            case .between(let from, let to):
                if let from { conditions.append("time >= \(from)") }
                if let to { conditions.append("time <= \(to)") }
            }
            var having = ["q.n >= \(r.atLeast)"]
            if let atMost = r.atMost { having.append("q.n <= \(atMost)") }
            if let conversion = r.conversion {
                let exists = "EXISTS (SELECT 1 FROM ev c WHERE c.profile = q.profile AND c.type = 2 AND c.time >= q.f AND c.time <= \(time.asOf) AND c.recorded <= \(time.knownAt ?? Int64.max))"
                having.append(conversion == .converted ? exists : "NOT " + exists)
            }
            return "k.profile IN (SELECT q.profile FROM (SELECT profile, COUNT(*) AS n, MIN(time) AS f FROM ev WHERE "
                + conditions.joined(separator: " AND ") + " GROUP BY profile) AS q WHERE " + having.joined(separator: " AND ") + ")"
        }
        let top = "(" + definition.rules.map(node).joined(separator: definition.match == .all ? " AND " : " OR ") + ")"
        return "SELECT k.profile FROM (SELECT DISTINCT profile FROM ev WHERE \(visible)) AS k WHERE \(top) ORDER BY k.profile"
    }

    static func blob(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF")
        return "X'" + String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }) + "'"
    }
}
