#!/usr/bin/env python3
"""touchlog against SQLite and DuckDB on the same generated events, in the same run.

Run through Tools/bench (which builds touchlog in release mode and prepares the DuckDB venv).
Every engine step runs in its own process so that its peak memory (ru_maxrss) is its own.
The segment set is Tools/bench-segments/*.json; the same rules are translated to SQL for SQLite and
DuckDB, and the three engines' members are compared for every (segment, time).
"""
import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
TOUCHLOG = os.path.join(RELEASE, "touchlog")
GENERATE = os.path.join(RELEASE, "touchlog-generate")
BENCH = os.path.join(RELEASE, "touchlog-bench")
SEGMENTS = sorted(glob.glob(os.path.join(ROOT, "Tools", "bench-segments", "*.json")))


def run(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS in MB, stdout bytes). Raises on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def median_run(cmd, times=3):
    """run() `times` times; the (seconds, peak MB) of the median run by time."""
    return sorted((run(cmd)[:2] for _ in range(times)), key=lambda r: r[0])[times // 2]


def digest(members):
    return hashlib.sha256("\n".join(members).encode()).hexdigest()[:16] + f"/{len(members)}"


# ---------------------------------------------------------------- the rules as SQL (SQLite and DuckDB)

def sql_for(definition, as_of, dialect):
    visible = f"time <= {as_of}"

    def lit(s):
        return "'" + s.replace("'", "''") + "'"

    def touchpoint(m):
        (op, arg), = m.items()
        if op == "exactly":
            return f"tp = {lit(arg)}"
        if op == "oneOf":
            return "tp IN (" + ", ".join(lit(a) for a in arg) + ")"
        if dialect == "duckdb":
            fn = {"contains": "contains", "startsWith": "starts_with", "endsWith": "ends_with"}[op]
            return f"{fn}(tp, {lit(arg)})"
        n = f"length({lit(arg)})"
        return {"contains": f"instr(tp, {lit(arg)}) > 0",
                "startsWith": f"substr(tp, 1, {n}) = {lit(arg)}",
                "endsWith": f"length(tp) >= {n} AND substr(tp, length(tp) - {n} + 1) = {lit(arg)}"}[op]

    def duration(text):
        units = [("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000), ("d", 86400000), ("w", 604800000)]
        for unit, factor in units:
            if text.endswith(unit) and text[:-len(unit)].isdigit():
                return int(text[:-len(unit)]) * factor
        raise ValueError(text)

    def leaf(r):
        c = [visible]
        c.append({"view": "type = 0", "click": "type = 1", "any": "type IN (0, 1)", "conversion": "type = 2"}[r["interaction"]])
        if "touchpoint" in r:
            c.append("tp IS NOT NULL AND " + touchpoint(r["touchpoint"]))
        tf = r.get("timeframe", {})
        if "last" in tf:
            c.append(f"time >= {as_of - duration(tf['last'])}")
        if "from" in tf:
            c.append(f"time >= {time_ms(tf['from'])}")
        if "to" in tf:
            c.append(f"time <= {time_ms(tf['to'])}")
        count = r.get("count", {})
        having = [f"q.n >= {count.get('atLeast', 1)}"]
        if "atMost" in count:
            having.append(f"q.n <= {count['atMost']}")
        if "conversion" in r:
            exists = (f"EXISTS (SELECT 1 FROM ev c WHERE c.profile = q.profile AND c.type = 2 "
                      f"AND c.time >= q.f AND c.time <= {as_of})")
            having.append(exists if r["conversion"] == "converted" else "NOT " + exists)
        return ("k.profile IN (SELECT q.profile FROM (SELECT profile, COUNT(*) AS n, MIN(time) AS f FROM ev WHERE "
                + " AND ".join(c) + " GROUP BY profile) AS q WHERE " + " AND ".join(having) + ")")

    def node(r):
        if "rules" in r:
            text = "(" + (" AND " if r["match"] == "all" else " OR ").join(node(x) for x in r["rules"]) + ")"
        else:
            text = leaf(r)
        return f"(NOT {text})" if r.get("negate") else text

    top = "(" + (" AND " if definition["match"] == "all" else " OR ").join(node(r) for r in definition["rules"]) + ")"
    return f"SELECT k.profile FROM (SELECT DISTINCT profile FROM ev WHERE {visible}) AS k WHERE {top} ORDER BY k.profile"


def time_ms(text):
    """RFC 3339 (as the generator and the bench definitions write it) to epoch milliseconds, exactly."""
    from datetime import datetime, timedelta, timezone
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)


# ---------------------------------------------------------------- child processes for SQLite and DuckDB

def child(args):
    """One engine step in its own process; prints JSON."""
    if args.engine == "sqlite":
        db = sqlite3.connect(args.db)
        if args.task == "load":
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE ev(profile TEXT NOT NULL, type INTEGER NOT NULL, tp TEXT, time INTEGER NOT NULL, value REAL)")
            types = {"view": 0, "click": 1, "conversion": 2}

            def rows():
                with open(args.jsonl, "rb") as f:
                    for line in f:
                        e = json.loads(line)
                        yield (e["profile"], types[e["type"]], e.get("touchpoint"), time_ms(e["time"]), e.get("value"))
            with db:
                db.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?)", rows())
            db.execute("CREATE INDEX ev_profile ON ev(profile, type, time)")
            db.execute("CREATE INDEX ev_time ON ev(time)")
            db.commit()
        elif args.task == "scan":
            # total(): SQLite's sum() of 10M epoch-ms times overflows 64-bit integers.
            db.execute("SELECT total(length(profile)), total(type), total(length(tp)), total(time), total(value) FROM ev").fetchall()
        elif args.task == "verify":
            db.execute("PRAGMA integrity_check").fetchall()
        elif args.task == "query":
            print(json.dumps(run_queries(lambda sql: [r[0] for r in db.execute(sql)], "sqlite", args)))
        return
    import duckdb
    db = duckdb.connect(args.db)
    if args.task == "load":
        db.execute(f"""CREATE TABLE ev AS SELECT profile,
              CASE type WHEN 'view' THEN 0 WHEN 'click' THEN 1 ELSE 2 END AS type, touchpoint AS tp,
              epoch_ms(CAST(time AS TIMESTAMPTZ)) AS time, value
            FROM read_json('{args.jsonl}', format='newline_delimited',
              columns={{time:'VARCHAR', profile:'VARCHAR', type:'VARCHAR', touchpoint:'VARCHAR', value:'DOUBLE'}})""")
        db.execute("CHECKPOINT")
    elif args.task == "scan":
        db.execute("SELECT sum(length(profile)), sum(type), sum(length(tp)), sum(time), sum(value) FROM ev").fetchall()
    elif args.task == "query":
        print(json.dumps(run_queries(lambda sql: [r[0] for r in db.execute(sql).fetchall()], "duckdb", args)))


def run_queries(execute, dialect, args):
    results = []
    for path in SEGMENTS:
        definition = json.load(open(path))
        for as_of in json.loads(args.times):
            start = time.perf_counter()
            members = execute(sql_for(definition, as_of, dialect))
            results.append({"segment": definition["name"], "asOf": as_of, "seconds": time.perf_counter() - start,
                            "members": digest(members)})
    return results


# ---------------------------------------------------------------- the benchmark

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1M events, 100k profiles, 5 past times")
    parser.add_argument("--events", type=int)
    parser.add_argument("--past-times", type=int)
    parser.add_argument("--work", help="working directory (default /tmp/touchlog-bench-EVENTS)")
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "bench-results.json"))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--jsonl", help=argparse.SUPPRESS)
    parser.add_argument("--times", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        return child(args)

    events = args.events or (1_000_000 if args.quick else 10_000_000)
    profiles = max(1, events // 10)
    past_count = args.past_times if args.past_times is not None else (5 if args.quick else 20)
    work = args.work or f"/tmp/touchlog-bench-{events}"
    os.makedirs(work, exist_ok=True)
    jsonl = os.path.join(work, "events.jsonl")
    config = dict(events=events, profiles=profiles, touchpoints=200, days=180, late=0.01, seed=1)
    stamp = os.path.join(work, "events.config")
    if not os.path.exists(jsonl) or not os.path.exists(stamp) or json.load(open(stamp)) != config:
        print(f"generating {events:,} events…", file=sys.stderr)
        run([GENERATE, "--events", str(events), "--profiles", str(profiles), "--touchpoints", "200", "--days", "180",
             "--late", "0.01", "--seed", "1", "-o", jsonl])
        json.dump(config, open(stamp, "w"))
    input_bytes = os.path.getsize(jsonl)

    # Times: the last day of the data, then seeded random past times.
    start_ms = time_ms("2022-04-01T00:00:00.000Z")
    latest = start_ms + 180 * 86_400_000
    rng = random.Random(7)
    past = sorted(start_ms + rng.randrange(30 * 86_400_000, 175 * 86_400_000) for _ in range(past_count))
    times = [latest] + past
    results = {"config": config, "inputBytes": input_bytes, "machine": machine(), "engines": {}}

    # touchlog
    store = os.path.join(work, "touchlog-store")
    shutil.rmtree(store, ignore_errors=True)
    t = {}
    t["ingest"] = run([TOUCHLOG, "append", "--store", store, jsonl])[:2]
    t["bytes"] = sum(os.path.getsize(p) for p in glob.glob(os.path.join(store, "log", "*.tlog")))
    # Steps under a second vary by ±20% from run to run on a shared machine: take the median of three.
    t["scan"] = median_run([TOUCHLOG, "replay", "--store", store, "--profile", "nobody"])
    t["verify"] = median_run([TOUCHLOG, "verify", "--store", store])
    t["logBytes"] = t["bytes"]
    # In-process: decoding every field on one thread, and the library's append of already-parsed events.
    t["decode"] = sorted((json.loads(run([BENCH, "scan", store])[2]) for _ in range(3)), key=lambda d: d["seconds"])[1]
    t["libraryAppend"] = json.loads(run([BENCH, "append", store, os.path.join(work, "library-append")])[2])
    for path in SEGMENTS:
        run([TOUCHLOG, "segment", "put", "--store", store, path])
    t["queries"] = {"cold": [], "warm": []}
    for kind, env in (("cold", {"TOUCHLOG_SNAPSHOT_EVERY": "0"}), ("warm", {})):
        if kind == "warm":  # snapshots at the end of the log, and one query at each time to leave its own
            run([TOUCHLOG, "snapshot", "create", "--store", store])
            for path in SEGMENTS:
                name = json.load(open(path))["name"]
                for as_of in times:
                    run([TOUCHLOG, "query", name, "--as-of", str(as_of), "--count", "--store", store])
        for path in SEGMENTS:
            name = json.load(open(path))["name"]
            for as_of in times:
                seconds, mb, out = run([TOUCHLOG, "query", name, "--as-of", str(as_of), "--store", store], env)
                members = out.decode().splitlines()
                t["queries"][kind].append({"segment": name, "asOf": as_of, "seconds": seconds, "mb": mb, "members": digest(members)})
    results["engines"]["touchlog"] = t

    for engine in ("duckdb", "sqlite"):
        db = os.path.join(work, f"{engine}.db")
        for suffix in ("", "-wal", "-shm", ".wal"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        me = [sys.executable, os.path.abspath(__file__), "--engine", engine, "--db", db, "--jsonl", jsonl]
        e = {}
        print(f"{engine}: loading…", file=sys.stderr)
        e["ingest"] = run(me + ["--task", "load"])[:2]
        e["bytes"] = sum(os.path.getsize(db + s) for s in ("", "-wal", ".wal") if os.path.exists(db + s))
        e["scan"] = run(me + ["--task", "scan"])[:2]
        if engine == "sqlite":
            e["verify"] = run(me + ["--task", "verify"])[:2]
        print(f"{engine}: querying…", file=sys.stderr)
        seconds, mb, out = run(me + ["--task", "query", "--times", json.dumps(times)])
        e["queries"] = json.loads(out)
        e["queryPeakMB"] = mb
        results["engines"][engine] = e

    report(results, times)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    json.dump(results, open(args.out, "w"), indent=1)
    print(f"\nresults written to {args.out}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores, {cpu}, {mem} GiB"


def report(r, times):
    n = r["config"]["events"]
    tl, dk, sq = (r["engines"][k] for k in ("touchlog", "duckdb", "sqlite"))

    def mean(qs, latest):
        sel = [q["seconds"] for q in qs if (q["asOf"] == times[0]) == latest]
        return sum(sel) / len(sel) if sel else float("nan")

    agree = all(a["members"] == b["members"] == c["members"]
                for a, b, c in zip(tl["queries"]["warm"], dk["queries"], sq["queries"]))
    agree = agree and all(a["members"] == b["members"] for a, b in zip(tl["queries"]["cold"], dk["queries"]))
    rows = []

    def row(name, a, b, c, unit, better_low=True):
        def cell(x, with_ratio):
            if x is None:
                return "n/a"
            text = (f"{x:,.0f}" if x >= 1000 else f"{x:.3g}") + (f" {unit}" if unit else "")
            if with_ratio and a:
                text += f" ({(x / a if better_low else a / x):.2f}×)"
            return text
        rows.append(f"| {name} | {cell(a, False)} | {cell(b, True)} | {cell(c, True)} |")

    row("ingest JSONL (s)", tl["ingest"][0], dk["ingest"][0], sq["ingest"][0], "s")
    row("ingest rate (events/s)", n / tl["ingest"][0], n / dk["ingest"][0], n / sq["ingest"][0], "", better_low=False)
    row("bytes on disk per event", tl["bytes"] / n, dk["bytes"] / n, sq["bytes"] / n, "B")
    row("full scan, every field (s; touchlog: median of 3)", tl["scan"][0], dk["scan"][0], sq["scan"][0], "s")
    row("verify (s; touchlog: median of 3)", tl["verify"][0], None, sq["verify"][0], "s")
    rows.append(f"| verify rate (MB of log per s) | {tl['logBytes'] / 1e6 / tl['verify'][0]:.0f} | n/a | n/a |")
    rows.append(f"| full decode in-process, one thread, median of 3 (events/s) | {tl['decode']['eventsPerSecond'] / 1e6:.1f}M | n/a | n/a |")
    rows.append(f"| library append, built EventBatch, 1M per durable append (events/s) | {tl['libraryAppend']['batch']['eventsPerSecond'] / 1e6:.2f}M | n/a | n/a |")
    rows.append(f"| library append, [Event], 1M per durable append (events/s) | {tl['libraryAppend']['events']['eventsPerSecond'] / 1e6:.2f}M | n/a | n/a |")
    row("query at latest time, no snapshots (s)", mean(tl["queries"]["cold"], True), mean(dk["queries"], True), mean(sq["queries"], True), "s")
    row("query at latest time, with snapshots (s)", mean(tl["queries"]["warm"], True), mean(dk["queries"], True), mean(sq["queries"], True), "s")
    row("query at a past time, no snapshots (s)", mean(tl["queries"]["cold"], False), mean(dk["queries"], False), mean(sq["queries"], False), "s")
    row("query at a past time, with snapshots (s)", mean(tl["queries"]["warm"], False), mean(dk["queries"], False), mean(sq["queries"], False), "s")
    row("peak memory, ingest (MB)", tl["ingest"][1], dk["ingest"][1], sq["ingest"][1], "MB")
    row("peak memory, query (MB)", max(q["mb"] for q in tl["queries"]["warm"] + tl["queries"]["cold"]), dk["queryPeakMB"], sq["queryPeakMB"], "MB")
    print(f"\n{n:,} events, {r['config']['profiles']:,} profiles, {len(SEGMENTS)} segments × {len(times)} times; {r['machine']}")
    print("(×: how many times touchlog is better; >1 means touchlog wins. touchlog query times include starting the CLI")
    print(" process; DuckDB's and SQLite's are measured inside one already-open connection.)")
    print("| measure | touchlog | DuckDB | SQLite |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nall three engines give the same members for every (segment, time): {'yes' if agree else 'NO'}")
    r["membersAgree"] = agree
    if not agree:
        for a, b, c in zip(tl["queries"]["warm"], dk["queries"], sq["queries"]):
            if not (a["members"] == b["members"] == c["members"]):
                print(f"  differ: {a['segment']} as of {a['asOf']}: touchlog {a['members']} duckdb {b['members']} sqlite {c['members']}")


if __name__ == "__main__":
    main()
