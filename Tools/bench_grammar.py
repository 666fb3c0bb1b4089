#!/usr/bin/env python3
"""The second part of the grammar and `touchlog history` against DuckDB and ClickHouse (chDB), on the same events.

Run through `Tools/bench --grammar [--events N] [--times K] [--seed S]` (which builds touchlog in release mode and
prepares the venv). The events are Tools/bench's (touchlog-generate, 1% late), appended in 20 commits to a format-3
store, with the segments of Tools/bench-grammar/ and one `snapshot create`, as an operator would leave it.

At K fresh past times (never asked before in that store) every segment is asked in-process through the library
(touchlog-bench query, one TouchLogStore) and by the CLI (a process per query): a plain interaction rule, a
sequence, a value sum, lifecycle (before + negated last), a calendar window in Amsterdam, segment references, and
the plain rules over the events the sequence and the value rule read (g2-plain-steps, g3-plain-converted). The
targets (issue 16): a sequence or value segment within 2x the plain segment's time at the same T (reported against
both the narrow plain segment g1 and the plain rules over the same events); `touchlog history` of 90 daily points
at most 3x one query's time (both a CLI process), for every segment. DuckDB and ClickHouse load the same 20 commits
and answer the same rules as SQL (sequences by self-join, values summed in millionths, calendar bounds computed
with Python's zoneinfo); every answer of every engine is compared, and every history point with a query.
"""
import argparse
import json
import os
import random
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

SEGMENTS = sorted(os.path.join(B.ROOT, "Tools", "bench-grammar", f) for f in os.listdir(os.path.join(B.ROOT, "Tools", "bench-grammar")))
DAY = B.DAY
# The plain segment over the same events as each new construct.
SAME_EVENTS = {"g2-sequence": "g2-plain-steps", "g3-value": "g3-plain-converted"}
HISTORIES = ("g1-plain", "g2-sequence", "g3-value", "g4-dormant", "g5-calendar", "g6-reference")


def definitions():
    return {d["name"]: d for d in (json.load(open(p)) for p in SEGMENTS)}


def calendar_start(calendar, as_of):
    """The first instant (ms) of the calendar window at as_of: the unit holding T in the zone, and count - 1 before."""
    zone = ZoneInfo(calendar.get("timeZone", "UTC"))
    local = datetime.fromtimestamp(as_of / 1000, tz=zone)
    unit, count = calendar["unit"], calendar.get("count", 1)
    day = local.date()
    if unit == "day":
        first = day - timedelta(days=count - 1)
    elif unit == "week":
        first = day - timedelta(days=day.weekday()) - timedelta(weeks=count - 1)
    else:
        months = day.year * 12 + day.month - 1 - (count - 1)
        first = day.replace(year=months // 12, month=months % 12 + 1, day=1)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    return int(start.astimezone(timezone.utc).timestamp() * 1000)


def sql_for(definition, as_of, known_at, dialect, all_definitions):
    """The members of `definition` as SQL for duckdb or clickhouse: one filtered GROUP BY (or self-join) per rule,
    combined with INTERSECT / EXCEPT, the universe of known profiles only under negation."""
    def lit(s):
        return "'" + s.replace("'", "''") + "'"

    visible = [f"time <= {as_of}"] + ([f"recorded <= {known_at}"] if known_at is not None else [])
    intersect, except_ = ("INTERSECT DISTINCT", "EXCEPT DISTINCT") if dialect == "clickhouse" else ("INTERSECT", "EXCEPT")
    universe = "SELECT DISTINCT profile FROM ev WHERE " + " AND ".join(visible)
    names = iter(range(1_000_000))

    def wrap(sql):
        return f"SELECT profile FROM ({sql}) AS s{next(names)}"

    def conditions(step, alias=""):
        a = alias + "." if alias else ""
        c = [f"{a}{v}" for v in visible]
        c.append({"view": f"{a}type = 0", "click": f"{a}type = 1", "any": f"{a}type IN (0, 1)", "conversion": f"{a}type = 2"}[step["interaction"]])
        if "touchpoint" in step:
            (op, arg), = step["touchpoint"].items()
            if op == "exactly":
                c.append(f"{a}tp = {lit(arg)}")
            elif op == "startsWith":
                c.append(f"startsWith({a}tp, {lit(arg)})" if dialect == "clickhouse" else f"starts_with({a}tp, {lit(arg)})")
            else:
                raise ValueError(op)
        return c

    def window(tf, alias=""):
        a = alias + "." if alias else ""
        if "last" in tf:
            return [f"{a}time >= {as_of - B.duration(tf['last'])}"]
        if "before" in tf:
            return [f"{a}time < {as_of - B.duration(tf['before'])}"]
        if "calendar" in tf:
            return [f"{a}time >= {calendar_start(tf['calendar'], as_of)}"]
        return ([f"{a}time >= {B.time_ms(tf['from'])}"] if "from" in tf else []) + ([f"{a}time <= {B.time_ms(tf['to'])}"] if "to" in tf else [])

    def rule(r):
        if "segment" in r:
            return node(all_definitions[r["segment"]])
        if "sequence" in r:
            steps = r["sequence"]
            tf = r.get("timeframe", {})
            c, tables = [], []
            for k, step in enumerate(steps):
                tables.append(f"ev AS e{k}")
                c += conditions(step, f"e{k}") + window(tf, f"e{k}")
                if k > 0:
                    c += [f"e{k}.profile = e0.profile", f"e{k}.time > e{k - 1}.time"]
            if "within" in r:
                c.append(f"e{len(steps) - 1}.time - e0.time <= {B.duration(r['within'])}")
            return "SELECT DISTINCT e0.profile AS profile FROM " + ", ".join(tables) + " WHERE " + " AND ".join(c)
        c = conditions(r) + window(r.get("timeframe", {}))
        having = []
        for aggregate, bounds in r.get("value", {}).items():
            column = {"sum": "sum(micros)", "min": "min(micros)", "max": "max(micros)", "avg": "sum(micros)"}[aggregate]
            scale = " * count(micros)" if aggregate == "avg" else ""
            having.append("count(micros) > 0")
            if "atLeast" in bounds:
                having.append(f"{column} >= {round(bounds['atLeast'] * 1_000_000)}{scale}")
            if "atMost" in bounds:
                having.append(f"{column} <= {round(bounds['atMost'] * 1_000_000)}{scale}")
        if not having:
            return "SELECT DISTINCT profile FROM ev WHERE " + " AND ".join(c)
        return "SELECT profile FROM ev WHERE " + " AND ".join(c) + " GROUP BY profile HAVING " + " AND ".join(having)

    def node(d):
        positive = [wrap(rule(x)) for x in d["rules"] if not x.get("negate")]
        negative = [wrap(rule(x)) for x in d["rules"] if x.get("negate")]
        assert d["match"] == "all"
        sql = f" {intersect} ".join(positive) if positive else universe
        return sql + "".join(f" {except_} {n}" for n in negative)

    return f"SELECT profile FROM ({node(definition)}) AS m ORDER BY profile"


def child(args):
    """One peer's queries in its own process (the load is Tools/bench's)."""
    queries = json.load(open(args.queries))
    every = definitions()
    if args.engine == "duckdb":
        import duckdb
        db = duckdb.connect(args.db)

        def rows(sql):
            return [r[0] for r in db.execute(sql).fetchall()]
        dialect = "duckdb"
    else:
        from chdb import session
        db = session.Session(args.db)

        def rows(sql):
            text = db.query(sql, "TabSeparatedRaw").bytes().decode()
            return text.split("\n")[:-1] if text else []
        dialect = "clickhouse"
    results = []
    for q in queries:
        sql = sql_for(every[q["segment"]], q["asOf"], q["knownAt"], dialect, every)
        start = time.perf_counter()
        members = rows(sql)
        results.append({"seconds": time.perf_counter() - start, "members": B.digest(members)})
    print(json.dumps(results))


def prepare_peer(engine, db):
    """Adds the values in millionths (as the contract compares them) to a loaded peer table."""
    if engine == "duckdb":
        import duckdb
        con = duckdb.connect(db)
        con.execute("ALTER TABLE ev ADD COLUMN IF NOT EXISTS micros BIGINT")
        con.execute("UPDATE ev SET micros = CAST(round(value * 1000000) AS BIGINT)")
        con.execute("CHECKPOINT")
    else:
        from chdb import session
        s = session.Session(db)
        s.query("ALTER TABLE ev ADD COLUMN IF NOT EXISTS micros Nullable(Int64) MATERIALIZED toInt64(round(value * 1000000))")
        s.query("ALTER TABLE ev MATERIALIZE COLUMN micros SETTINGS mutations_sync = 1")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grammar", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=1_000_000, help="how many events (default 1M)")
    parser.add_argument("--times", type=int, default=20, help="fresh past times (default 20)")
    parser.add_argument("--seed", type=int, help="seed of the query times (default: from the clock, printed)")
    parser.add_argument("--work", help="working directory (default /tmp/touchlog-bench-EVENTS, shared with Tools/bench)")
    for hidden in ("engine", "db", "queries", "task"):
        parser.add_argument("--" + hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        if args.task == "prepare":
            return prepare_peer(args.engine, args.db)
        return child(args)
    events = args.events
    seed = args.seed if args.seed is not None else int(time.time())
    work = args.work or f"/tmp/touchlog-bench-{events}"
    os.makedirs(work, exist_ok=True)
    print(f"query times drawn with seed {seed}", file=sys.stderr)
    chunks = B.generate(events, work)

    store = os.path.join(work, "touchlog-grammar")
    shutil.rmtree(store, ignore_errors=True)
    fmt = {"TOUCHLOG_NEW_STORE_FORMAT": "3"}
    for path in chunks:
        B.run([B.TOUCHLOG, "append", "--store", store, path], env=fmt)
    commits, offset = [], 0
    for path in chunks:
        first = json.loads(B.run([B.TOUCHLOG, "replay", "--store", store, "--from-offset", str(offset), "--to-offset", str(offset)])[2])
        commits.append({"path": path, "recorded": B.time_ms(first["recorded"])})
        with open(path, "rb") as f:
            offset += sum(1 for _ in f)
    chunk_file = os.path.join(work, "commits.json")
    json.dump(commits, open(chunk_file, "w"))
    for path in SEGMENTS:
        B.run([B.TOUCHLOG, "segment", "put", "--store", store, path])
    B.run([B.TOUCHLOG, "snapshot", "create", "--store", store])

    rng = random.Random(seed)
    start_ms = B.time_ms("2022-04-01T00:00:00.000Z")
    names = list(definitions())
    times = [start_ms + rng.randrange(100 * DAY, 175 * DAY) for _ in range(args.times)]
    queries = [{"segment": n, "asOf": t, "knownAt": None} for t in times for n in names]

    print("touchlog: library…", file=sys.stderr)
    library_store = os.path.join(work, "touchlog-grammar-library")
    shutil.rmtree(library_store, ignore_errors=True)
    shutil.copytree(store, library_store)
    library = B.query_library(library_store, queries, work)["queries"]
    print("touchlog: CLI…", file=sys.stderr)
    cli = B.query_cli(store, queries)["queries"]

    # History: 90 daily points up to each time, against one query at that time (both a CLI process), for the plain,
    # sequence and value segments; every point is checked against the library's answer at that time for one of them.
    print("touchlog: history…", file=sys.stderr)
    history = []
    for t in times[:3]:
        for name in HISTORIES:
            seconds, mb, out = B.run([B.TOUCHLOG, "history", name, "--from", str(t - 89 * DAY), "--to", str(t), "--step", "1d",
                                      "--format", "jsonl", "--store", store])
            points = [json.loads(line) for line in out.decode().splitlines()]
            one = B.run([B.TOUCHLOG, "query", name, "--as-of", str(t), "--count", "--store", store])
            history.append({"segment": name, "asOf": t, "seconds": seconds, "peakMB": mb, "querySeconds": one[0],
                            "last": points[-1]["count"], "queryCount": int(one[2])})
    check_t = times[0]
    check = [{"segment": "g2-sequence", "asOf": check_t - k * DAY, "knownAt": None} for k in (0, 30, 60, 89)]
    checked = B.query_cli(store, check)["queries"]
    out = B.run([B.TOUCHLOG, "history", "g2-sequence", "--from", str(check_t - 89 * DAY), "--to", str(check_t), "--step", "1d",
                 "--format", "jsonl", "--store", store])[2]
    points = [json.loads(line)["count"] for line in out.decode().splitlines()]
    history_matches = all(int(c["members"].split("/")[1]) == points[89 - k] for c, k in zip(checked, (0, 30, 60, 89)))

    peers = {}
    query_file = os.path.join(work, "grammar-queries.json")
    json.dump(queries, open(query_file, "w"))
    for engine in B.PEERS:
        db = os.path.join(work, f"grammar-{engine}.db")
        for suffix in ("", ".wal"):
            if os.path.isdir(db + suffix):
                shutil.rmtree(db + suffix)
            elif os.path.exists(db + suffix):
                os.remove(db + suffix)
        print(f"{engine}: loading…", file=sys.stderr)
        B.run([sys.executable, os.path.join(B.ROOT, "Tools", "bench.py"), "--engine", engine, "--task", "load", "--db", db, "--chunks", chunk_file])
        me = [sys.executable, os.path.abspath(__file__), "--engine", engine, "--db", db]
        B.run(me + ["--task", "prepare"])
        print(f"{engine}: querying…", file=sys.stderr)
        _, mb, out = B.run(me + ["--task", "query", "--queries", query_file])
        peers[engine] = json.loads(out)

    report(names, queries, library, cli, history, peers, history_matches, events, seed)


def report(names, queries, library, cli, history, peers, history_matches, events, seed):
    def p50(xs):
        return B.percentile(xs, 0.5) * 1000

    print(f"\n### The second grammar and history: {events:,} events, format 3, {len(queries) // len(names)} fresh past times "
          f"(seed {seed}; {B.machine()})\n")
    print("| segment | library p50 | × g1-plain | × same events | CLI p50 | × g1-plain | × same events | DuckDB p50 | ClickHouse p50 | answers equal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    lib_p50, cli_p50 = {}, {}
    mismatches = 0
    for name in names:
        idx = [i for i, q in enumerate(queries) if q["segment"] == name]
        lib_p50[name] = p50([library[i]["seconds"] for i in idx])
        cli_p50[name] = p50([cli[i]["seconds"] for i in idx])
    for name in names:
        idx = [i for i, q in enumerate(queries) if q["segment"] == name]
        lib, c = lib_p50[name], cli_p50[name]
        same = SAME_EVENTS.get(name)
        same_lib = f"{lib / lib_p50[same]:.2f}" if same else "–"
        same_cli = f"{c / cli_p50[same]:.2f}" if same else "–"
        equal = all(library[i]["members"] == cli[i]["members"] == peers[p][i]["members"] for i in idx for p in peers)
        mismatches += 0 if equal else 1
        peer = [f"{p50([peers[p][i]['seconds'] for i in idx]):.1f} ms" for p in B.PEERS]
        members = sorted(int(library[i]["members"].split("/")[1]) for i in idx)
        print(f"| {name} ({members[len(members) // 2]:,} members) | {lib:.1f} ms | {lib / lib_p50['g1-plain']:.2f} | {same_lib} | "
              f"{c:.1f} ms | {c / cli_p50['g1-plain']:.2f} | {same_cli} | " + " | ".join(peer) + f" | {'yes' if equal else 'NO'} |")
    print("\n| history of 90 daily points (CLI) | history | one query | ratio | last point = query |")
    print("|---|---|---|---|---|")
    for name in HISTORIES:
        rows = [h for h in history if h["segment"] == name]
        hs = p50([h["seconds"] for h in rows])
        qs = p50([h["querySeconds"] for h in rows])
        same = all(h["last"] == h["queryCount"] for h in rows)
        print(f"| {name} | {hs:.0f} ms | {qs:.0f} ms | {hs / qs:.2f} | {'yes' if same else 'NO'} |")
    print(f"\nhistory points equal to queries at 4 of the 90 times: {'yes' if history_matches else 'NO'}")
    if mismatches or not history_matches:
        sys.exit(1)


if __name__ == "__main__":
    main()
