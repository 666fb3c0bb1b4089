#!/usr/bin/env python3
"""touchlog against DuckDB, ClickHouse (chDB) and SQLite on the same generated events, in the same run.

Run through Tools/bench (which builds touchlog in release mode and prepares the venv with DuckDB and chDB).

Queries are asked as a user asks them: at times drawn fresh for every run (never asked before in that store),
with only the snapshots normal operation leaves (`touchlog snapshot create` after loading, and the ones queries
save on their own), three ways: the library in-process (touchlog-bench query, one TouchLogStore for all queries),
`touchlog serve` over HTTP (one running server), and the CLI (a process per query, so every query is the first
after opening the store). Each way starts from its own copy of the same store, and has its own fresh times.

Three kinds of query: at the latest time ("now": just after the last event), at a past time, and at a past time
by what the store knew at an earlier recorded time (known-at). The events are appended in 20 commits (20 files
of the generated data, in order), so recorded times differ along the log; every peer loads the same 20 files
with the same recorded times.

The peers run in-process (Python bindings) with the SQL a skilled engineer would write for each: one filtered
GROUP BY per rule, combined with INTERSECT / UNION / EXCEPT, the universe of known profiles only where a rule is
negated, conversions as a join on each profile's latest conversion. Every engine step runs in its own process so
its peak memory (ru_maxrss) is its own. Answers of every engine are compared for every (segment, time).
"""
import argparse
import glob
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
TOUCHLOG = os.path.join(RELEASE, "touchlog")
GENERATE = os.path.join(RELEASE, "touchlog-generate")
BENCH = os.path.join(RELEASE, "touchlog-bench")
SEGMENTS = sorted(glob.glob(os.path.join(ROOT, "Tools", "bench-segments", "*.json")))
COMMITS = 20
DAY = 86_400_000
KINDS = ("latest", "past", "knownAt")
WAYS = ("library", "server", "cli")
PEERS = ("duckdb", "clickhouse")
FIRST_SAMPLES = 5



def segment_definitions():
    """The benchmark's segment definitions by name, in file order."""
    return {d["name"]: d for d in (json.load(open(p)) for p in SEGMENTS)}

def run(cmd, env=None, stdin=None):
    """Runs cmd; returns (seconds, peak RSS in MB, stdout bytes). Raises on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=stdin, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def read_through(paths):
    """Reads the files once, so that the load timed next finds them in the page cache: every engine's load starts
    that way (the machine's cache keeps only a few GB, and what an earlier step read may be gone)."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def median(samples, seconds):
    """The sample whose `seconds(sample)` is the median (of an odd number of samples)."""
    samples = list(samples)
    return sorted(samples, key=seconds)[len(samples) // 2]


def median_run(cmd, times=3):
    """run() `times` times; the (seconds, peak MB) of the median run by time."""
    return median((run(cmd)[:2] for _ in range(times)), lambda r: r[0])


def digest(members):
    return hashlib.sha256("\n".join(members).encode()).hexdigest()[:16] + f"/{len(members)}"


def percentile(values, p):
    """Linear interpolation between closest ranks."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def time_ms(text):
    """RFC 3339 (as the generator, the bench definitions and replay write it) to epoch milliseconds, exactly."""
    from datetime import datetime, timedelta, timezone
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)


def duration(text):
    units = [("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000), ("d", 86400000), ("w", 604800000)]
    for unit, factor in units:
        if text.endswith(unit) and text[:-len(unit)].isdigit():
            return int(text[:-len(unit)]) * factor
    raise ValueError(text)


# ---------------------------------------------------------------- the rules as SQL, per engine

def sql_for(definition, as_of, known_at, dialect):
    """The query an engineer would write for `dialect` (duckdb, clickhouse, sqlite)."""
    def lit(s):
        return "'" + s.replace("'", "''") + "'"

    def visible():
        return [f"time <= {as_of}"] + ([f"recorded <= {known_at}"] if known_at is not None else [])

    def touchpoint(m):
        (op, arg), = m.items()
        if op == "exactly":
            return f"tp = {lit(arg)}"
        if op == "oneOf":
            return "tp IN (" + ", ".join(lit(a) for a in arg) + ")"
        if dialect == "duckdb":
            return {"contains": "contains", "startsWith": "starts_with", "endsWith": "ends_with"}[op] + f"(tp, {lit(arg)})"
        if dialect == "clickhouse":
            return {"contains": f"position(tp, {lit(arg)}) > 0", "startsWith": f"startsWith(tp, {lit(arg)})",
                    "endsWith": f"endsWith(tp, {lit(arg)})"}[op]
        n = f"length({lit(arg)})"
        return {"contains": f"instr(tp, {lit(arg)}) > 0",
                "startsWith": f"substr(tp, 1, {n}) = {lit(arg)}",
                "endsWith": f"length(tp) >= {n} AND substr(tp, length(tp) - {n} + 1) = {lit(arg)}"}[op]

    union, intersect, except_ = (("UNION DISTINCT", "INTERSECT DISTINCT", "EXCEPT DISTINCT") if dialect == "clickhouse"
                                 else ("UNION", "INTERSECT", "EXCEPT"))
    names = iter(range(1_000_000))

    def wrap(sql):
        return f"SELECT profile FROM ({sql}) AS s{next(names)}"

    universe = "SELECT DISTINCT profile FROM ev WHERE " + " AND ".join(visible())

    def leaf(r):
        c = visible()
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
        having = ([f"count(*) >= {count['atLeast']}"] if count.get("atLeast", 1) > 1 else []) + \
                 ([f"count(*) <= {count['atMost']}"] if "atMost" in count else [])
        where = " AND ".join(c)
        if "conversion" not in r:
            if not having:
                return f"SELECT DISTINCT profile FROM ev WHERE {where}"
            return f"SELECT profile FROM ev WHERE {where} GROUP BY profile HAVING " + " AND ".join(having)
        q = f"SELECT profile, min(time) AS f FROM ev WHERE {where} GROUP BY profile" + \
            (" HAVING " + " AND ".join(having) if having else "")
        conv = "SELECT profile, max(time) AS lc FROM ev WHERE type = 2 AND " + " AND ".join(visible()) + " GROUP BY profile"
        if r["conversion"] == "converted":
            return f"SELECT q.profile AS profile FROM ({q}) AS q JOIN ({conv}) AS c ON c.profile = q.profile WHERE c.lc >= q.f"
        return (f"SELECT q.profile AS profile FROM ({q}) AS q LEFT JOIN ({conv}) AS c ON c.profile = q.profile "
                f"WHERE c.lc IS NULL OR c.lc < q.f")

    def node(r):
        """SQL for the profiles where r holds, ignoring its own negation."""
        if "rules" not in r:
            return leaf(r)
        positive = [wrap(node(x)) for x in r["rules"] if not x.get("negate")]
        negative = [wrap(node(x)) for x in r["rules"] if x.get("negate")]
        if r["match"] == "all":
            sql = f" {intersect} ".join(positive) if positive else universe
            return sql + "".join(f" {except_} {n}" for n in negative)
        return f" {union} ".join(positive + [wrap(f"{universe} {except_} {n}") for n in negative])

    def holds(r):
        return wrap(f"{universe} {except_} {wrap(node(r))}") if r.get("negate") else node(r)

    top = holds({"match": definition["match"], "rules": definition["rules"]})
    return f"SELECT profile FROM ({top}) AS m ORDER BY profile"


# ---------------------------------------------------------------- child processes for the peers

def child(args):
    """One engine step in its own process; prints JSON."""
    chunks = json.load(open(args.chunks)) if args.chunks else []
    if args.engine == "sqlite":
        db = sqlite3.connect(args.db)
        if args.task == "load":
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE ev(profile TEXT NOT NULL, type INTEGER NOT NULL, tp TEXT, time INTEGER NOT NULL, "
                       "value REAL, recorded INTEGER NOT NULL)")
            types = {"view": 0, "click": 1, "conversion": 2}

            def rows():
                for chunk in chunks:
                    with open(chunk["path"], "rb") as f:
                        for line in f:
                            e = json.loads(line)
                            yield (e["profile"], types[e["type"]], e.get("touchpoint"), time_ms(e["time"]), e.get("value"),
                                   chunk["recorded"])
            with db:
                db.executemany("INSERT INTO ev VALUES (?, ?, ?, ?, ?, ?)", rows())
            db.execute("CREATE INDEX ev_profile ON ev(profile, type, time)")
            db.execute("CREATE INDEX ev_time ON ev(time)")
            db.commit()
        elif args.task == "scan":
            # total(): SQLite's sum() of 10M epoch-ms times overflows 64-bit integers.
            db.execute("SELECT total(length(profile)), total(type), total(length(tp)), total(time), total(value) FROM ev").fetchall()
        elif args.task == "verify":
            db.execute("PRAGMA integrity_check").fetchall()
        elif args.task == "query":
            print(json.dumps(run_queries(lambda sql: [r[0] for r in db.execute(sql)], "sqlite", args, 0)))
        return
    if args.engine == "duckdb":
        import duckdb
        opened = time.perf_counter()
        db = duckdb.connect(args.db)
        open_seconds = time.perf_counter() - opened
        if args.task == "load":
            db.execute("CREATE TABLE ev (profile VARCHAR NOT NULL, type UTINYINT NOT NULL, tp VARCHAR, time BIGINT NOT NULL, "
                       "value DOUBLE, recorded BIGINT NOT NULL)")
            for chunk in chunks:
                db.execute(f"""INSERT INTO ev SELECT profile,
                      CASE type WHEN 'view' THEN 0 WHEN 'click' THEN 1 ELSE 2 END, touchpoint,
                      epoch_ms(CAST(time AS TIMESTAMPTZ)), value, {chunk['recorded']}
                    FROM read_json('{chunk['path']}', format='newline_delimited',
                      columns={{time:'VARCHAR', profile:'VARCHAR', type:'VARCHAR', touchpoint:'VARCHAR', value:'DOUBLE'}})""")
            db.execute("CHECKPOINT")
        elif args.task == "scan":
            db.execute("SELECT sum(length(profile)), sum(type), sum(length(tp)), sum(time), sum(value) FROM ev").fetchall()
        elif args.task == "query":
            print(json.dumps(run_queries(lambda sql: [r[0] for r in db.execute(sql).fetchall()], "duckdb", args, open_seconds)))
        return
    from chdb import session
    opened = time.perf_counter()
    db = session.Session(args.db)

    def rows(sql):
        text = db.query(sql, "TabSeparatedRaw").bytes().decode()
        return text.split("\n")[:-1] if text else []
    if args.task == "load":
        # MergeTree sorted by (type, touchpoint, time): each rule reads the ranges of its type and touchpoint, and
        # within them only the granules of its time window (the primary index); conversions are one contiguous range.
        db.query("CREATE TABLE ev (profile String, type UInt8, tp LowCardinality(Nullable(String)), time Int64, "
                 "value Nullable(Float64), recorded Int64) ENGINE = MergeTree ORDER BY (type, tp, time) "
                 "SETTINGS allow_nullable_key = 1")
        for chunk in chunks:
            db.query(f"""INSERT INTO ev SELECT profile, multiIf(type = 'view', 0, type = 'click', 1, 2), touchpoint,
                  toUnixTimestamp64Milli(parseDateTime64BestEffort(time, 3, 'UTC')), value, {chunk['recorded']}
                FROM file('{chunk['path']}', 'JSONEachRow',
                  'time String, profile String, type String, touchpoint Nullable(String), value Nullable(Float64)')""")
        db.query("OPTIMIZE TABLE ev FINAL")
        print(json.dumps({"bytes": int(rows("SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'ev' AND active")[0])}))
    elif args.task == "scan":
        rows("SELECT sum(length(profile)), sum(type), sum(length(tp)), sum(time), sum(value) FROM ev")
    elif args.task == "query":
        db.query("SET join_use_nulls = 1")  # a LEFT JOIN's missing row is NULLs, as in SQL
        print(json.dumps(run_queries(rows, "clickhouse", args, time.perf_counter() - opened)))


def run_queries(execute, dialect, args, open_seconds):
    definitions = segment_definitions()
    results = []
    for q in json.load(open(args.queries)):
        sql = sql_for(definitions[q["segment"]], q["asOf"], q["knownAt"], dialect)
        start = time.perf_counter()
        members = execute(sql)
        results.append({"seconds": time.perf_counter() - start, "members": digest(members)})
    return {"openSeconds": open_seconds, "queries": results}


# ---------------------------------------------------------------- touchlog's three ways

def query_library(store, queries, work):
    path = os.path.join(work, "library-queries.txt")
    with open(path, "w") as f:
        for q in queries:
            f.write(f"{q['segment']} {q['asOf']} {q['knownAt'] if q['knownAt'] is not None else '-'}\n")
    _, mb, out = run([BENCH, "query", store, path])
    result = json.loads(out)
    return {"openSeconds": result["openSeconds"], "queries": result["queries"], "peakMB": mb}


def query_server(store, queries):
    err = tempfile.TemporaryFile()
    server = subprocess.Popen([TOUCHLOG, "serve", "--store", store, "--port", "0"], stderr=err)
    port = None
    for _ in range(600):
        err.seek(0)
        found = re.search(rb"http://127\.0\.0\.1:(\d+)", err.read())
        if found:
            port = int(found.group(1))
            break
        if server.poll() is not None:
            break
        time.sleep(0.05)
    if port is None:
        err.seek(0)
        raise SystemExit("touchlog serve did not start: " + err.read().decode(errors="replace"))
    connection = http.client.HTTPConnection("127.0.0.1", port)
    results = []
    for q in queries:
        parameters = {"asOf": q["asOf"]}
        if q["knownAt"] is not None:
            parameters["knownAt"] = q["knownAt"]
        start = time.perf_counter()
        connection.request("GET", f"/v1/segments/{q['segment']}/members?" + urllib.parse.urlencode(parameters))
        response = connection.getresponse()
        body = response.read()
        seconds = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"touchlog serve answered {response.status}: {body[:500]!r}")
        results.append({"seconds": seconds, "members": digest(json.loads(body)["members"])})
    connection.close()
    server.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(server.pid, 0)
    return {"queries": results, "peakMB": usage.ru_maxrss / 1024}


def query_cli(store, queries):
    results = []
    peak = 0
    for q in queries:
        cmd = [TOUCHLOG, "query", q["segment"], "--as-of", str(q["asOf"]), "--store", store]
        if q["knownAt"] is not None:
            cmd += ["--known-at", str(q["knownAt"])]
        seconds, mb, out = run(cmd)
        peak = max(peak, mb)
        results.append({"seconds": seconds, "members": digest(out.decode().splitlines())})
    return {"queries": results, "peakMB": peak}


# ---------------------------------------------------------------- the benchmark

def generate(events, work):
    """The benchmark's events (touchlog-generate: events / 10 profiles, 200 touchpoints, 180 days, 1% late, seed 1) in
    WORK/events.jsonl and split in order into 20 commit files, made once per configuration; returns the files."""
    profiles = max(1, events // 10)
    jsonl = os.path.join(work, "events.jsonl")
    config = dict(events=events, profiles=profiles, touchpoints=200, days=180, late=0.01, seed=1)
    stamp = os.path.join(work, "events.config")
    chunks = [os.path.join(work, f"commit-{i:02}.jsonl") for i in range(COMMITS)]
    if not os.path.exists(stamp) or json.load(open(stamp)) != config or not all(map(os.path.exists, chunks)):
        print(f"generating {events:,} events…", file=sys.stderr)
        run([GENERATE, "--events", str(events), "--profiles", str(profiles), "--touchpoints", "200", "--days", "180",
             "--late", "0.01", "--seed", "1", "-o", jsonl])
        # Streamed, not read whole: a child's peak memory (ru_maxrss) starts from this process's at the fork.
        with open(jsonl, "rb") as source:
            for i, path in enumerate(chunks):
                with open(path, "wb") as f:
                    for _ in range(i * events // COMMITS, (i + 1) * events // COMMITS):
                        f.write(source.readline())
        json.dump(config, open(stamp, "w"))
    return chunks


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1M events, 100k profiles, fewer queries")
    parser.add_argument("--events", type=int, help="how many events (default 10M; 1M with --quick)")
    parser.add_argument("--times", type=int, help="fresh past times per segment, way and kind (default 4; 2 with --quick)")
    parser.add_argument("--seed", type=int, help="seed of the query times (default: drawn from the clock, printed)")
    parser.add_argument("--no-sqlite", action="store_true", help="leave SQLite out (its load takes minutes at 10M events)")
    parser.add_argument("--format", type=int, choices=(1, 2, 3), default=3,
                        help="the log format of touchlog's stores (default 3, what new stores get: identifiers sealed, "
                             "erasable; 2: in plain text; 1: what 0.1.0 wrote)")
    parser.add_argument("--work", help="working directory (default /tmp/touchlog-bench-EVENTS)")
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "bench-results.json"))
    for hidden in ("engine", "task", "db", "chunks", "queries"):
        parser.add_argument("--" + hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        return child(args)
    if args.events is not None and args.events < COMMITS:
        parser.error(f"--events must be at least {COMMITS}")
    if args.times is not None and args.times < 1:
        parser.error("--times must be at least 1")

    events = args.events or (1_000_000 if args.quick else 10_000_000)
    profiles = max(1, events // 10)
    per_kind = args.times or (2 if args.quick else 4)
    seed = args.seed if args.seed is not None else int(time.time())
    work = args.work or f"/tmp/touchlog-bench-{events}"
    os.makedirs(work, exist_ok=True)
    jsonl = os.path.join(work, "events.jsonl")
    config = dict(events=events, profiles=profiles, touchpoints=200, days=180, late=0.01, seed=1)
    chunks = generate(events, work)
    input_bytes = os.path.getsize(jsonl)
    results = {"config": config, "inputBytes": input_bytes, "machine": machine(), "seed": seed, "engines": {}}
    print(f"query times drawn with seed {seed} (--seed {seed} asks the same ones again)", file=sys.stderr)

    # touchlog: the whole file in one commit (ingest, size, scan, verify, in-process decode and append) …
    print("touchlog: loading…", file=sys.stderr)
    single = os.path.join(work, "touchlog-one-commit")
    shutil.rmtree(single, ignore_errors=True)
    t = {}
    # The queried format is the one new stores get (3), or an older one with --format 2 or 1.
    fmt = {"TOUCHLOG_NEW_STORE_FORMAT": str(args.format), "TOUCHLOG_BENCH_FORMAT": str(args.format)}
    read_through([jsonl])
    t["ingest"] = run([TOUCHLOG, "append", "--store", single, jsonl], env=fmt)[:2]
    # Format 3: the key file (the pads that seal the identifiers) counts as the store's too.
    t["keyBytes"] = sum(os.path.getsize(p) for p in glob.glob(os.path.join(single, "keys", "*")))
    t["bytes"] = sum(os.path.getsize(p) for p in glob.glob(os.path.join(single, "log", "*.tlog"))) + t["keyBytes"]
    # Steps under a second vary by ±20% from run to run on a shared machine: take the median of three.
    t["scan"] = median_run([TOUCHLOG, "replay", "--store", single, "--profile", "nobody"])
    t["verify"] = median_run([TOUCHLOG, "verify", "--store", single])
    t["decode"] = median((json.loads(run([BENCH, "scan", single])[2]) for _ in range(3)), lambda d: d["seconds"])
    # Library appends: three processes, each appending the events into a new store; per kind the median run (a
    # run of 2-3 s swings by a third on this machine when something else stirs).
    appends = [json.loads(run([BENCH, "append", single, os.path.join(work, "library-append")], env=fmt)[2])
               for _ in range(3)]
    t["libraryAppend"] = {kind: median((a[kind] for a in appends), lambda r: r["seconds"])
                          for kind in ("events", "batch")}
    shutil.rmtree(single, ignore_errors=True)

    # … and the store the queries ask: the same events in 20 commits, the 20 files in order, then the segments
    # and one `snapshot create`, as an operator would leave it.
    base = os.path.join(work, "touchlog-store")
    shutil.rmtree(base, ignore_errors=True)
    read_through(chunks)
    t["ingestCommits"] = sum(run([TOUCHLOG, "append", "--store", base, path], env=fmt)[0] for path in chunks)
    commits, offset = [], 0
    for path in chunks:
        first = json.loads(run([TOUCHLOG, "replay", "--store", base, "--from-offset", str(offset), "--to-offset", str(offset)])[2])
        commits.append({"path": path, "recorded": time_ms(first["recorded"])})
        with open(path, "rb") as f:
            offset += sum(1 for _ in f)
    chunk_file = os.path.join(work, "commits.json")
    json.dump(commits, open(chunk_file, "w"))
    for path in SEGMENTS:
        run([TOUCHLOG, "segment", "put", "--store", base, path])
    t["format"] = args.format
    t["snapshotCreate"] = run([TOUCHLOG, "snapshot", "create", "--store", base])[0]

    # Fresh times: for each way, kind and segment its own. "Latest" is a moment in the day after the last event
    # (a user asking "now"); past times fall between day 30 and day 175 of the 180; known-at times are past times
    # asked by what the store knew at a moment between its first and its last commit.
    rng = random.Random(seed)
    start_ms = time_ms("2022-04-01T00:00:00.000Z")
    end_ms = start_ms + 180 * DAY
    names = list(segment_definitions())
    plan = {}
    for way in WAYS:
        queries = []
        for kind in KINDS:
            for _ in range(max(1, per_kind // 2) if kind == "latest" else per_kind):
                for name in names:
                    if kind == "latest":
                        queries.append({"segment": name, "kind": kind, "asOf": end_ms + rng.randrange(DAY), "knownAt": None})
                        continue
                    as_of = start_ms + rng.randrange(30 * DAY, 175 * DAY)
                    known_at = rng.randrange(commits[0]["recorded"], commits[-1]["recorded"] + 1) if kind == "knownAt" else None
                    queries.append({"segment": name, "kind": kind, "asOf": as_of, "knownAt": known_at})
        rng.shuffle(queries)
        plan[way] = queries
    t["ways"] = {}
    for way in WAYS:
        print(f"touchlog: querying ({way})…", file=sys.stderr)
        store = os.path.join(work, f"touchlog-{way}")
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(base, store)
        if way == "library":
            t["ways"][way] = query_library(store, plan[way], work)
        elif way == "server":
            t["ways"][way] = query_server(store, plan[way])
        else:
            t["ways"][way] = query_cli(store, plan[way])
            # The same past-time questions once more, in the store they were just asked in (what the earlier
            # benchmark measured): only for comparison, labelled "repeated".
            past = [q for q in plan[way] if q["kind"] == "past"]
            t["repeated"] = query_cli(store, past)
        shutil.rmtree(store, ignore_errors=True)
    results["engines"]["touchlog"] = t

    # The first query after opening, five times: open and one question in a new process, each in a fresh copy of
    # the store (so that no question before it left anything behind), the first five of the library's questions; the
    # peers answer the same five, each in a new process too. Reported as the median.
    first_asks = plan["library"][:FIRST_SAMPLES]
    t["firstQueries"] = []
    print("touchlog: first queries…", file=sys.stderr)
    for q in first_asks:
        store = os.path.join(work, "touchlog-first")
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(base, store)
        answer = query_library(store, [q], work)
        t["firstQueries"].append(answer["openSeconds"] + answer["queries"][0]["seconds"])
        shutil.rmtree(store)
    every_query = [q for way in WAYS for q in plan[way]]
    query_file = os.path.join(work, "queries.json")
    json.dump(every_query, open(query_file, "w"))
    for engine in PEERS + (() if args.no_sqlite else ("sqlite",)):
        db = os.path.join(work, f"{engine}.db")
        for suffix in ("", "-wal", "-shm", ".wal"):
            if os.path.isdir(db + suffix):
                shutil.rmtree(db + suffix)
            elif os.path.exists(db + suffix):
                os.remove(db + suffix)
        me = [sys.executable, os.path.abspath(__file__), "--engine", engine, "--db", db, "--chunks", chunk_file]
        e = {}
        print(f"{engine}: loading…", file=sys.stderr)
        read_through(chunks)
        seconds, mb, out = run(me + ["--task", "load"])
        e["ingest"] = (seconds, mb)
        if engine == "clickhouse":
            e["bytes"] = json.loads(out)["bytes"]
        else:
            e["bytes"] = sum(os.path.getsize(db + s) for s in ("", "-wal", ".wal") if os.path.exists(db + s))
        e["scan"] = run(me + ["--task", "scan"])[:2]
        if engine == "sqlite":
            e["verify"] = run(me + ["--task", "verify"])[:2]
        print(f"{engine}: querying…", file=sys.stderr)
        # SQLite takes seconds a query at 10M events: it answers the CLI's latest-time queries only, as a third check.
        asked = every_query if engine != "sqlite" else [q for q in plan["cli"] if q["kind"] == "latest"]
        asked_file = os.path.join(work, f"queries-{engine}.json")
        json.dump(asked, open(asked_file, "w"))
        _, mb, out = run(me + ["--task", "query", "--queries", asked_file])
        answer = json.loads(out)
        e["openSeconds"] = answer["openSeconds"]
        e["queries"] = answer["queries"]
        if engine != "sqlite":
            e["firstQueries"] = []
            one = os.path.join(work, f"first-{engine}.json")
            for q in first_asks:
                json.dump([q], open(one, "w"))
                first = json.loads(run(me + ["--task", "query", "--queries", one])[2])
                e["firstQueries"].append(first["openSeconds"] + first["queries"][0]["seconds"])
        e["asked"] = asked
        e["queryPeakMB"] = mb
        results["engines"][engine] = e

    report(results, plan)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    json.dump(results, open(args.out, "w"), indent=1)
    print(f"\nresults written to {args.out}")
    if not results["membersAgree"]:
        sys.exit(1)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return f"{os.cpu_count()} cores, {cpu}, {mem} GiB"


def report(r, plan):
    n = r["config"]["events"]
    engines = r["engines"]
    tl = engines["touchlog"]
    peers = [p for p in PEERS if p in engines]
    label = {"duckdb": "DuckDB", "clickhouse": "ClickHouse (chDB)", "sqlite": "SQLite"}

    # Answers: every touchlog way against every engine that asked the same (segment, asOf, knownAt).
    answers = {}
    for engine in [p for p in PEERS + ("sqlite",) if p in engines]:
        for q, a in zip(engines[engine]["asked"], engines[engine]["queries"]):
            answers.setdefault((q["segment"], q["asOf"], q["knownAt"]), {})[engine] = a["members"]
    differ = []
    for way in WAYS:
        for q, a in zip(plan[way], tl["ways"][way]["queries"]):
            key = (q["segment"], q["asOf"], q["knownAt"])
            others = answers.get(key, {})
            if any(m != a["members"] for m in others.values()):
                differ.append(f"  {way}: {q['segment']} asOf {q['asOf']} knownAt {q['knownAt']}: touchlog {a['members']} {others}")
    r["membersAgree"] = not differ

    def ms(seconds):
        return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"

    def seconds_of(queries, asked, kind):
        return [a["seconds"] for q, a in zip(asked, queries) if q["kind"] == kind]

    print(f"\n{n:,} events, {r['config']['profiles']:,} profiles, {len(SEGMENTS)} segments; {r['machine']}; "
          f"query times seed {r['seed']}; queried store: format {tl['format']}")
    print("\nQueries at times never asked before in that store (p50 / p95 over every segment and time of the kind);")
    print("×: the faster peer's p50 over touchlog's (>1: touchlog is faster). Peers in-process, one connection each.")
    print("| query kind | touchlog library | touchlog serve (HTTP) | touchlog CLI (process per query) | "
          + " | ".join(label[p] for p in peers) + " |")
    print("|---" * (4 + len(peers)) + "|")
    r["summary"] = {}
    for kind in KINDS:
        cells = []
        peer_p50 = {}
        for p in peers:
            values = seconds_of(engines[p]["queries"], engines[p]["asked"], kind)
            peer_p50[p] = percentile(values, 0.5)
        best = min(peer_p50.values()) if peer_p50 else float("nan")
        r["summary"][kind] = {"fasterPeerP50": best}
        for way in WAYS:
            values = seconds_of(tl["ways"][way]["queries"], plan[way], kind)
            p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
            r["summary"][kind][way] = {"p50": p50, "p95": p95, "ratio": best / p50}
            cells.append(f"{ms(p50)} / {ms(p95)} ({best / p50:.2f}×)")
        for p in peers:
            values = seconds_of(engines[p]["queries"], engines[p]["asked"], kind)
            cells.append(f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.95))}")
        print(f"| {kind} ({len(seconds_of(tl['ways']['cli']['queries'], plan['cli'], kind))} per way) | " + " | ".join(cells) + " |")
    # The CLI target is for windowed segments (every rule looks back from T: nothing to fold from the log's start).
    def windowed(rules):
        return all(windowed(r["rules"]) if "rules" in r else "last" in r.get("timeframe", {}) for r in rules)
    narrow = sorted(name for name, d in segment_definitions().items() if windowed(d["rules"]))
    cli_windowed = [a["seconds"] for q, a in zip(plan["cli"], tl["ways"]["cli"]["queries"]) if q["segment"] in narrow]
    if cli_windowed:
        r["summary"]["cliWindowedP50"] = percentile(cli_windowed, 0.5)
        print(f"CLI, windowed segments only ({', '.join(narrow)}; {len(cli_windowed)} queries of every kind): "
              f"p50 {ms(percentile(cli_windowed, 0.5))}, p95 {ms(percentile(cli_windowed, 0.95))}")
    lib = tl["ways"]["library"]
    first_tl = percentile(tl["firstQueries"], 0.5)
    first = [f"touchlog library {ms(first_tl)}"] + \
        [f"{label[p]} {ms(percentile(engines[p]['firstQueries'], 0.5))}" for p in peers]
    print(f"first query after opening (open + one query in a new process, in-process; median of {len(tl['firstQueries'])}, "
          "each a question not asked before in that store): " + ", ".join(first))
    repeated = [a["seconds"] for a in tl["repeated"]["queries"]]
    print(f"repeated query (the CLI's past-time questions asked again in the same store): p50 {ms(percentile(repeated, 0.5))}, "
          f"p95 {ms(percentile(repeated, 0.95))}")
    print("peak memory of querying: touchlog library " + f"{lib['peakMB']:.0f} MB, serve {tl['ways']['server']['peakMB']:.0f} MB, "
          f"CLI {tl['ways']['cli']['peakMB']:.0f} MB; " + ", ".join(f"{label[p]} {engines[p]['queryPeakMB']:.0f} MB" for p in peers))

    print("\nLoading and reading (touchlog loads the file in one commit; the peers load the 20 files of the same events)")
    others = [p for p in PEERS + ("sqlite",) if p in engines]
    print("| measure | touchlog | " + " | ".join(label[p] for p in others) + " |")
    print("|---" * (2 + len(others)) + "|")

    def row(name, mine, theirs, unit, better_low=True):
        def cell(x, with_ratio):
            if x is None:
                return "n/a"
            text = (f"{x:,.0f}" if x >= 1000 else f"{x:.3g}") + (f" {unit}" if unit else "")
            if with_ratio and mine:
                text += f" ({(x / mine if better_low else mine / x):.2f}×)"
            return text
        print(f"| {name} | {cell(mine, False)} | " + " | ".join(cell(theirs.get(p), True) for p in others) + " |")

    row("ingest JSONL (s)", tl["ingest"][0], {p: engines[p]["ingest"][0] for p in others}, "s")
    row("ingest rate (events/s)", n / tl["ingest"][0], {p: n / engines[p]["ingest"][0] for p in others}, "", better_low=False)
    row("ingest as 20 commits, a process each (s)", tl["ingestCommits"], {}, "s")
    row("bytes on disk per event" + (" (touchlog: log and key file)" if tl.get("keyBytes") else ""), tl["bytes"] / n,
        {p: engines[p]["bytes"] / n for p in others}, "B")
    if tl.get("keyBytes"):
        row("of which the key file (pads of the sealed identifiers)", tl["keyBytes"] / n, {}, "B")
    row("snapshot create of the five segments, 20-commit store (s)", tl["snapshotCreate"], {}, "s")
    row("full scan, every field (s; touchlog: in-process decode on one thread, median of 3)", tl["decode"]["seconds"],
        {p: engines[p]["scan"][0] for p in others}, "s")
    print(f"| replay of a profile the store does not hold, `replay --profile nobody` (s, median of 3) | {tl['scan'][0]:.3g} s |"
          + " n/a |" * len(others))
    row("verify (s; touchlog: median of 3)", tl["verify"][0], {p: engines[p]["verify"][0] for p in others if "verify" in engines[p]}, "s")
    print(f"| verify rate (MB of log per s) | {tl['bytes'] / 1e6 / tl['verify'][0]:.0f} |" + " n/a |" * len(others))
    print(f"| full decode in-process, one thread, median of 3 (events/s) | {tl['decode']['eventsPerSecond'] / 1e6:.1f}M |" + " n/a |" * len(others))
    print(f"| library append, built EventBatch, 1M per durable append (events/s; median of 3) | {tl['libraryAppend']['batch']['eventsPerSecond'] / 1e6:.2f}M |" + " n/a |" * len(others))
    print(f"| library append, [Event], 1M per durable append (events/s; median of 3) | {tl['libraryAppend']['events']['eventsPerSecond'] / 1e6:.2f}M |" + " n/a |" * len(others))
    row("peak memory, ingest (MB)", tl["ingest"][1], {p: engines[p]["ingest"][1] for p in others}, "MB")
    compared = sum(len(engines[p]["queries"]) for p in others)
    print(f"\nevery touchlog answer equals every peer's for the same (segment, as-of, known-at) ({compared} peer answers): "
          f"{'yes' if not differ else 'NO'}")
    for line in differ[:20]:
        print(line)


if __name__ == "__main__":
    main()
