#!/usr/bin/env python3
"""Load test of `touchlog serve` with wrk (run through Tools/load, which builds and installs what it needs).

Phases, each against a fresh store served by the release build on a loopback port:
  append  wrk POSTs JSON Lines (TOUCHLOG_LOAD_EVENTS events per request, each request with its own touchpoint)
  query   wrk GETs /v1/segments/load-clickers/members?countOnly=true (as of now) on the store the appends built
  mixed   both at once, in rounds: appends alone, then appends with queries, eight times over, so that each
          mixed round is compared with appends alone on the same store at nearly the same size and moment (one
          run of appends alone drifts by ±15 % on this machine); one untimed query before each mixed round
          brings the segment's live audience up to date, as a service asking again and again keeps it
  watch   on a second fresh store, 100,000 events/s in requests of 1,000, first alone and then with 100 watched
          segments (Tools/load_watch.py): the CPU the watches add and each update's delay after its commit
After the appends, the whole log is replayed over HTTP: every acknowledged request's events must be there, whole,
contiguous and once (a request in flight when wrk stopped may be there too, whole, or absent).
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import load_watch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOUCHLOG = os.path.join(ROOT, ".build", "release", "touchlog")
SEGMENT = {
    "name": "load-clickers",
    "match": "all",
    "rules": [{"interaction": "click", "touchpoint": {"startsWith": "load-w"}, "timeframe": {"last": "7d"},
               "conversion": "not_converted"}],
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10 s of appends, 5 s of queries, 3 mixed rounds of 3 s")
    p.add_argument("--append-seconds", type=int, help="default 30 (10 with --quick)")
    p.add_argument("--query-seconds", type=int, help="default 15 (5 with --quick)")
    p.add_argument("--connections", type=int, default=16, help="concurrent appenders (default 16)")
    p.add_argument("--query-connections", type=int, default=4, help="concurrent queriers (default 4)")
    p.add_argument("--events-per-request", type=int, default=100, help="default 100")
    p.add_argument("--watch-seconds", type=int, help="each half of the watch phase; default 15 (5 with --quick)")
    p.add_argument("--watch-only", action="store_true", help="only the watch phase")
    p.add_argument("--mixed-rounds", type=int, help="rounds of appends alone, then mixed (default 8; 3 with --quick)")
    p.add_argument("--round-seconds", type=int, help="each half of a mixed round (default 5; 3 with --quick)")
    p.add_argument("--no-watch", action="store_true", help="skip the watch phase")
    p.add_argument("--query-nice", type=int, help="passed to touchlog serve (default: the server's, 10)")
    p.add_argument("--port", type=int, default=18480)
    args = p.parse_args()
    for name in ("append_seconds", "query_seconds", "watch_seconds", "connections", "query_connections",
                 "events_per_request", "mixed_rounds", "round_seconds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    args.append_seconds = args.append_seconds or (10 if args.quick else 30)
    args.query_seconds = args.query_seconds or (5 if args.quick else 15)
    args.watch_seconds = args.watch_seconds or (5 if args.quick else 15)
    args.mixed_rounds = args.mixed_rounds or (3 if args.quick else 8)
    args.round_seconds = args.round_seconds or (3 if args.quick else 5)
    return args


def server_args(args):
    return [] if args.query_nice is None else ["--query-nice", str(args.query_nice)]


def http(method, url, body=None):
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def wrk_command(script, url, seconds, connections):
    return ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", script, url]


def wrk_result(out):
    """The RESULT line Tools/load-report.lua writes, with seconds and requests per second added."""
    line = next(l for l in out.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["seconds"] = result["duration_us"] / 1e6
    result["rps"] = result["requests"] / result["seconds"]
    return result


def cpu_times():
    """The machine's CPU time so far (all, and stolen by the hypervisor), in clock ticks, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:]]
    return sum(ticks[:8]), ticks[7]


def wrk(script, url, seconds, connections, env):
    command = wrk_command(script, url, seconds, connections)
    total, stolen = cpu_times()
    result = wrk_result(subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout)
    total_after, stolen_after = cpu_times()
    result["steal"] = (stolen_after - stolen) / max(1, total_after - total)
    return result


def combined(results):
    """Results of several wrk runs as one: requests and errors summed over the time of all; p50 the median of the
    runs' p50s and p99 the greatest of their p99s."""
    total = {key: sum(r[key] for r in results) for key in ("requests", "non2xx", "connect", "read", "write", "timeout")}
    total["seconds"] = sum(r["seconds"] for r in results)
    total["duration_us"] = total["seconds"] * 1e6
    total["rps"] = total["requests"] / total["seconds"]
    total["p50_us"] = sorted(r["p50_us"] for r in results)[len(results) // 2]
    total["p99_us"] = max(r["p99_us"] for r in results)
    total["rounds_rps"] = [r["rps"] for r in results]
    total["steal"] = sum(r.get("steal", 0) * r["seconds"] for r in results) / total["seconds"]
    return total


def peak_memory_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def check_by_replay(base, events_per_request, acknowledged, connections):
    """Replays the log over HTTP; returns (events, requests found) after checking each request is whole."""
    runs = {}  # touchpoint -> [first offset, count, last offset]
    offsets = 0
    with urllib.request.urlopen(base + "/v1/events", timeout=600) as response:
        for raw in response:
            event = json.loads(raw)
            if event["offset"] != offsets:
                sys.exit(f"replay: offset {event['offset']} where {offsets} was expected (a gap)")
            offsets += 1
            run = runs.get(event["touchpoint"])
            if run is None:
                runs[event["touchpoint"]] = [event["offset"], 1, event["offset"]]
            else:
                if event["offset"] != run[2] + 1:
                    sys.exit(f"replay: request {event['touchpoint']} is not contiguous (offset {event['offset']})")
                run[1] += 1
                run[2] = event["offset"]
    broken = [t for t, r in runs.items() if r[1] != events_per_request]
    if broken:
        sys.exit(f"replay: {len(broken)} requests are not whole, e.g. {broken[0]} has {runs[broken[0]][1]} events")
    # Every acknowledged request is there; at most one request per connection was in flight when wrk stopped.
    if not acknowledged <= len(runs) <= acknowledged + connections:
        sys.exit(f"replay: {len(runs)} requests in the log, {acknowledged} acknowledged by the server")
    return offsets, len(runs)


def watch_phase(args, base):
    print(f"watch: {args.watch_seconds} s of appends alone, then {args.watch_seconds} s with 100 watches", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="touchlog-load-watch-")
    server = subprocess.Popen([TOUCHLOG, "serve", "--store", os.path.join(work, "store"), "--port", str(args.port)]
                              + server_args(args), stderr=subprocess.PIPE, text=True)
    try:
        server.stderr.readline()
        return load_watch.run(args.port, server.pid, args.watch_seconds, lambda path, body: http("PUT", base + path, body))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def print_watch(watch):
    alone, watched = watch["appends_alone"], watch["appends_watched"]
    print()
    print(f"watch phase: {watch['events_per_second']:,.0f} events/s asked for, requests of 1,000 events, 100 segments")
    print(f"  appends alone:        {alone['events_per_second']:>9,.0f} events/s, server CPU {alone['cpu_cores'] * 100:5.1f}% of a core"
          f" ({alone['late']} requests sent late)")
    print(f"  with 100 watches:     {watched['events_per_second']:>9,.0f} events/s, server CPU {watched['cpu_cores'] * 100:5.1f}% of a core"
          f" ({watched['late']} requests sent late)")
    print(f"  the watches add {(watched['cpu_cores'] - alone['cpu_cores']) * 100:.1f}% of a core "
          f"({(watched['cpu_cores'] / alone['cpu_cores'] - 1) * 100:+.0f}% over appends alone)")
    print(f"  {watch['updates']:,} updates, delay after the commit's acknowledgement: p50 {watch['delay_ms']['p50']:.1f} ms, "
          f"p99 {watch['delay_ms']['p99']:.1f} ms, max {watch['delay_ms']['max']:.1f} ms"
          f" ({watch['unmatched_updates']} not matched to an append)")


def main():
    args = parse_args()
    if args.watch_only:
        watch = watch_phase(args, f"http://127.0.0.1:{args.port}")
        print_watch(watch)
        os.makedirs(os.path.join(ROOT, ".build"), exist_ok=True)
        with open(os.path.join(ROOT, ".build", "load-watch-results.json"), "w") as f:
            json.dump(watch, f, indent=2)
        return
    work = tempfile.mkdtemp(prefix="touchlog-load-")
    store = os.path.join(work, "store")
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen([TOUCHLOG, "serve", "--store", store, "--port", str(args.port)] + server_args(args),
                              stderr=subprocess.PIPE, text=True)
    try:
        server.stderr.readline()  # "touchlog: serving … on http://…" once it listens
        http("PUT", base + "/v1/segments/load-clickers", json.dumps(SEGMENT).encode())
        env = {"TOUCHLOG_LOAD_EVENTS": str(args.events_per_request),
               "TOUCHLOG_LOAD_PATH": "/v1/segments/load-clickers/members?countOnly=true"}
        print(f"append: {args.append_seconds} s, {args.connections} connections, {args.events_per_request} events per request", file=sys.stderr)
        append = wrk("Tools/load-append.lua", base, args.append_seconds, args.connections, env)
        acknowledged = append["requests"] - append["non2xx"]
        started = time.monotonic()
        events, requests = check_by_replay(base, args.events_per_request, acknowledged, args.connections)
        replay_seconds = time.monotonic() - started
        print(f"query: {args.query_seconds} s, {args.query_connections} connections on {events:,} events", file=sys.stderr)
        query = wrk("Tools/load-query.lua", base, args.query_seconds, args.query_connections, env)
        seconds = args.round_seconds
        print(f"mixed: {args.mixed_rounds} rounds of {seconds} s of appends alone, then {seconds} s mixed", file=sys.stderr)
        rounds = []
        for _ in range(args.mixed_rounds):
            alone = wrk("Tools/load-append.lua", base, seconds, args.connections, env)
            # One query first, untimed, so that the live audience has read the round's appends alone: a service that
            # asks again and again keeps it current, and the mixed round measures what it adds from then on.
            http("GET", base + env["TOUCHLOG_LOAD_PATH"])
            query_process = subprocess.Popen(
                wrk_command("Tools/load-query.lua", base, seconds, args.query_connections),
                cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
            mixed = wrk("Tools/load-append.lua", base, seconds, args.connections, env)
            rounds.append((alone, mixed, wrk_result(query_process.communicate()[0])))
        alone_append = combined([r[0] for r in rounds])
        mixed_append = combined([r[1] for r in rounds])
        mixed_query = combined([r[2] for r in rounds])
        stats = json.loads(http("GET", base + "/v1/stats"))
        verify = json.loads(http("POST", base + "/v1/verify"))
        memory = peak_memory_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)

    watch = None if args.no_watch else watch_phase(args, base)

    failures = sum(r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"] for r in (append, query, alone_append, mixed_append, mixed_query))
    rows = [
        ("appends", append, args.events_per_request),
        ("queries (member count, as of now)", query, 0),
        ("mixed rounds: appends alone", alone_append, args.events_per_request),
        ("mixed rounds: appends", mixed_append, args.events_per_request),
        ("mixed rounds: queries", mixed_query, 0),
    ]
    print()
    print(f"{'phase':36} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'events/s':>11}")
    for name, r, per in rows:
        events_per_second = f"{r['rps'] * per:,.0f}" if per else ""
        print(f"{name:36} {r['rps']:>11,.0f} {r['p50_us'] / 1000:>8.1f} {r['p99_us'] / 1000:>8.1f} {events_per_second:>11}")
    ratios = [m / a for a, m in zip(alone_append["rounds_rps"], mixed_append["rounds_rps"])]
    print(f"mixed rounds: appends keep {mixed_append['rps'] / alone_append['rps'] * 100:.1f}% of their rate alone "
          f"(rounds: {', '.join(f'{r * 100:.0f}%' for r in ratios)}); CPU stolen by the hypervisor: "
          f"{alone_append['steal'] * 100:.1f}% alone, {mixed_append['steal'] * 100:.1f}% mixed")
    print()
    print(f"replay check: {events:,} events in {requests:,} requests, each whole and contiguous; "
          f"{acknowledged:,} acknowledged, none lost (replayed over HTTP in {replay_seconds:.1f} s)")
    print(f"store after all phases: {stats['events']:,} events, {stats['bytesPerEvent']:.2f} bytes/event, verify intact: {verify['intact']}")
    print(f"server peak memory: {memory:.0f} MB; failed requests: {failures}")
    if watch:
        print_watch(watch)
    results = {"args": vars(args), "append": append, "query": query, "alone_append": alone_append, "mixed_append": mixed_append,
               "mixed_query": mixed_query, "mixed_ratio": mixed_append["rps"] / alone_append["rps"],
               "replayed_events": events, "replayed_requests": requests, "acknowledged": acknowledged,
               "server_peak_mb": memory, "failures": failures, "verify_intact": verify["intact"], "watch": watch}
    os.makedirs(os.path.join(ROOT, ".build"), exist_ok=True)
    with open(os.path.join(ROOT, ".build", "load-results.json"), "w") as f:
        json.dump(results, f, indent=2)
    if failures or not verify["intact"]:
        sys.exit("load: some requests failed or the store does not verify")


if __name__ == "__main__":
    main()
