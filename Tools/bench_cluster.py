#!/usr/bin/env python3
"""touchlog's cluster on loopback: ingest through NATS JetStream, scatter-gather queries, takeover after a node dies.

Run through `Tools/bench --cluster` (which builds touchlog in release mode). Starts 3 NATS servers forming one NATS
cluster (streams and buckets with 3 replicas) and 3 `touchlog node` processes, all on this machine, and measures:

- ingest: `touchlog append --nats` of the generated events until JetStream has acknowledged every one (the
  producer's view), and until every partition's owner has applied its stream (the queries' view);
- queries: `touchlog query --nats` (a process per query, as a user meets it) at fresh past times and at the latest
  time, p50/p99 per kind; every answer is compared with a single local store holding the same events;
- takeover: a node killed with SIGKILL, the time until every partition answers again (its leases lapse, the
  survivors claim its partitions and catch up from their streams).
All on one 2-core machine, so the servers, nodes and clients share two cores: the figures are the floor of a real
deployment, not a forecast of one.
"""
import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build", "release")
TOUCHLOG = os.path.join(RELEASE, "touchlog")
GENERATE = os.path.join(RELEASE, "touchlog-generate")
SEGMENTS = sorted(glob.glob(os.path.join(ROOT, "Tools", "bench-segments", "*.json")))
START = 1648771200000  # 2022-04-01T00:00:00Z, the generator's default start
DAY = 86_400_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(cmd, check=True):
    """Runs cmd; returns (seconds, exit status, stdout bytes, stderr text)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        status = subprocess.call(cmd, stdout=out, stderr=err)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        if check and status != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{stderr}")
        return seconds, status, out.read(), stderr


def percentile(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def peak_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=1_000_000, help="how many events (default 1M)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--lease", type=float, default=5, help="lease time in seconds (default 5)")
    parser.add_argument("--times", type=int, default=5, help="fresh past times per segment (default 5)")
    parser.add_argument("--seed", type=int, help="seed of the query times (default: drawn from the clock, printed)")
    parser.add_argument("--work", help="working directory (default /tmp/touchlog-cluster-bench-EVENTS)")
    parser.add_argument("--out", default=os.path.join(ROOT, ".build", "bench-cluster-results.json"))
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    work = args.work or f"/tmp/touchlog-cluster-bench-{args.events}"
    os.makedirs(work, exist_ok=True)
    events_file = os.path.join(work, "events.jsonl")
    stamp = os.path.join(work, "events.config")
    config = dict(events=args.events, profiles=max(1, args.events // 10), touchpoints=200, days=180, late=0.01, seed=1)
    if not os.path.exists(stamp) or json.load(open(stamp)) != config:
        print(f"generating {args.events:,} events…", file=sys.stderr)
        run([GENERATE, "--events", str(args.events), "--profiles", str(config["profiles"]), "--touchpoints", "200",
             "--days", "180", "--late", "0.01", "--seed", "1", "-o", events_file])
        json.dump(config, open(stamp, "w"))
    print(f"query times drawn with seed {seed}", file=sys.stderr)

    cluster_dir = os.path.join(work, "cluster")
    shutil.rmtree(cluster_dir, ignore_errors=True)
    os.makedirs(cluster_dir)
    children = []
    results = {"config": config, "seed": seed, "partitions": args.partitions, "nodes": args.nodes, "servers": 3, "replicas": 3,
               "leaseSeconds": args.lease}
    try:
        client_ports = [free_port() for _ in range(3)]
        route_ports = [free_port() for _ in range(3)]
        servers = []
        for i in range(3):
            routes = ",".join(f"nats://127.0.0.1:{p}" for j, p in enumerate(route_ports) if j != i)
            log = open(os.path.join(cluster_dir, f"nats{i}.log"), "w")
            servers.append(subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(client_ports[i]),
                                             "-sd", os.path.join(cluster_dir, f"nats{i}"), "-n", f"bench-{i}",
                                             "--cluster_name", "touchlog-bench", "--cluster", f"nats://127.0.0.1:{route_ports[i]}",
                                             "--routes", routes], stdout=log, stderr=log))
        children += servers
        for port in client_ports:
            for _ in range(200):
                if listening(port):
                    break
                time.sleep(0.05)
        urls = ",".join(f"nats://127.0.0.1:{p}" for p in client_ports)
        for attempt in range(60):
            _, status, _, err = run([TOUCHLOG, "cluster", "init", "--nats", urls, "--partitions", str(args.partitions),
                                     "--replicas", "3", "--lease", str(args.lease)], check=False)
            if status == 0:
                break
            time.sleep(1)
        else:
            raise SystemExit(f"cluster init failed: {err}")
        nodes = []
        for n in range(args.nodes):
            log = open(os.path.join(cluster_dir, f"node{n}.log"), "w")
            nodes.append(subprocess.Popen([TOUCHLOG, "node", "--nats", urls, "--data", os.path.join(cluster_dir, f"node{n}"),
                                           "--name", f"node{n}"], stdout=log, stderr=log))
        children += nodes

        def status():
            _, code, out, _ = run([TOUCHLOG, "cluster", "status", "--nats", urls, "--json"], check=False)
            return [json.loads(line) for line in out.decode().splitlines()] if code == 0 else []

        def owners_spread():
            s = status()
            return len(s) == args.partitions and all(p["owner"] for p in s) and len({p["owner"] for p in s}) == min(args.nodes, args.partitions)

        deadline = time.time() + 60
        while not owners_spread() and time.time() < deadline:
            time.sleep(0.5)

        print("ingest through the cluster…", file=sys.stderr)
        start = time.perf_counter()
        seconds, _, out, _ = run([TOUCHLOG, "append", "--nats", urls, events_file])
        acknowledged = time.perf_counter() - start
        while True:
            s = status()
            if s and all(p["appliedSequence"] == p["streamSequence"] for p in s):
                break
            time.sleep(0.1)
        applied = time.perf_counter() - start
        results["ingest"] = {"acknowledgedSeconds": acknowledged, "appliedSeconds": applied,
                             "acknowledgedPerSecond": args.events / acknowledged, "appliedPerSecond": args.events / applied}
        results["events"] = sum(p["events"] or 0 for p in status())
        streams_bytes = sum(os.path.getsize(f) for f in glob.glob(os.path.join(cluster_dir, "nats*", "**", "*"), recursive=True) if os.path.isfile(f))
        stores_bytes = sum(os.path.getsize(f) for f in glob.glob(os.path.join(cluster_dir, "node*", "**", "*"), recursive=True) if os.path.isfile(f))
        results["bytesPerEvent"] = {"jetStream3Replicas": streams_bytes / args.events, "nodeStores": stores_bytes / args.events}

        print("single store with the same events…", file=sys.stderr)
        single = os.path.join(work, "single")
        shutil.rmtree(single, ignore_errors=True)
        results["singleIngestSeconds"] = run([TOUCHLOG, "append", "--store", single, events_file])[0]
        names = []
        for path in SEGMENTS:
            run([TOUCHLOG, "segment", "put", "--nats", urls, path])
            run([TOUCHLOG, "segment", "put", "--store", single, path])
            names.append(json.load(open(path))["name"])
        run([TOUCHLOG, "snapshot", "create", "--store", single])

        print("queries…", file=sys.stderr)
        end = START + 180 * DAY
        plan = [(name, "latest", end + DAY) for name in names]
        plan += [(name, "past", START + rng.randrange(30 * DAY, 180 * DAY)) for name in names for _ in range(args.times)]
        rng.shuffle(plan)
        times = {"latest": [], "past": []}
        single_times = {"latest": [], "past": []}
        mismatches = 0
        for name, kind, at in plan:
            t, _, members, _ = run([TOUCHLOG, "query", "--nats", urls, name, "--as-of", iso(at)])
            times[kind].append(t)
            t1, _, expected, _ = run([TOUCHLOG, "query", "--store", single, name, "--as-of", iso(at)])
            single_times[kind].append(t1)
            if members != expected:
                mismatches += 1
                print(f"DIFFERENT: {name} at {iso(at)}", file=sys.stderr)
        results["queries"] = {kind: {"count": len(v), "p50": percentile(v, 0.5), "p99": percentile(v, 0.99)} for kind, v in times.items()}
        results["singleQueries"] = {kind: {"p50": percentile(v, 0.5), "p99": percentile(v, 0.99)} for kind, v in single_times.items()}
        results["answersEqualSingleStore"] = mismatches == 0
        results["peakMB"] = {"nodes": [peak_mb(p.pid) for p in nodes], "servers": [peak_mb(p.pid) for p in servers]}

        print("takeover…", file=sys.stderr)
        victim = nodes[1]
        victim.kill()
        victim.wait()
        killed = time.perf_counter()
        probe = names[0]
        while True:
            _, code, _, _ = run([TOUCHLOG, "query", "--nats", urls, probe, "--count", "--timeout", "2"], check=False)
            if code == 0:
                break
            time.sleep(0.05)
        results["takeoverSeconds"] = time.perf_counter() - killed
        t, _, members, _ = run([TOUCHLOG, "query", "--nats", urls, probe, "--as-of", iso(end + DAY)])
        _, _, expected, _ = run([TOUCHLOG, "query", "--store", single, probe, "--as-of", iso(end + DAY)])
        results["answersEqualAfterTakeover"] = members == expected
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
    json.dump(results, open(args.out, "w"), indent=2)
    report(results)


def report(r):
    n = r["config"]["events"]
    i = r["ingest"]
    print(f"\ntouchlog cluster on loopback: {r['servers']} NATS servers (R{r['replicas']}), {r['nodes']} nodes, "
          f"{r['partitions']} partitions, lease {r['leaseSeconds']:g} s; {n:,} events, {r['config']['profiles']:,} profiles")
    print(f"ingest: acknowledged by JetStream in {i['acknowledgedSeconds']:.2f} s ({i['acknowledgedPerSecond']:,.0f} events/s); "
          f"applied by every owner in {i['appliedSeconds']:.2f} s ({i['appliedPerSecond']:,.0f} events/s); "
          f"one local store: {r['singleIngestSeconds']:.2f} s")
    b = r["bytesPerEvent"]
    print(f"bytes per event: JetStream (3 replicas) {b['jetStream3Replicas']:.1f}, node stores {b['nodeStores']:.1f}")
    print("query (a process per query)   cluster p50   p99      one store p50   p99")
    for kind, q in r["queries"].items():
        s = r["singleQueries"][kind]
        print(f"  {kind:<8} ({q['count']:>3} queries)    {q['p50'] * 1000:7.1f} ms {q['p99'] * 1000:7.1f} ms   "
              f"{s['p50'] * 1000:7.1f} ms {s['p99'] * 1000:7.1f} ms")
    print(f"answers equal one store's: {'yes' if r['answersEqualSingleStore'] else 'NO'}")
    print(f"takeover after kill -9 of a node: {r['takeoverSeconds']:.2f} s until every partition answers again "
          f"(answers equal after: {'yes' if r['answersEqualAfterTakeover'] else 'NO'})")
    print(f"peak memory: nodes {', '.join(f'{m:.0f}' for m in r['peakMB']['nodes'])} MB; "
          f"NATS servers {', '.join(f'{m:.0f}' for m in r['peakMB']['servers'])} MB")


if __name__ == "__main__":
    main()
