"""The watch phase of Tools/load: 100 watched segments under a steady 100,000 events/s.

Against a fresh store served by the release build: each segment `watch-K` (K = 0…99) holds the profiles that
clicked touchpoint `watch-K` in the last hour. An appender posts one request of 1,000 events every 10 ms (each
request's events carry one touchpoint, `watch-(n mod 100)`, times in the last half hour, profiles drawn from a pool
of 100,000 for each request), first for a while with no watch open, then with a `GET /v1/segments/watch-K/watch` stream open on every
segment. The server's CPU time (from /proc) over each half gives what the watches add; each update's delay is the
time from the acknowledgement of the append that ended at the update's `endOffset` (its SSE id) to the update's
arrival. Appends keep their rate only when they keep up: the report says how many were sent late.
"""
import http.client
import json
import os
import random
import threading
import sys
import time

SEGMENTS = 100
EVENTS_PER_REQUEST = 1000
INTERVAL = 0.010  # one request every 10 ms: 100,000 events/s


def segment(k):
    return {"name": f"watch-{k}", "match": "all",
            "rules": [{"interaction": "click", "touchpoint": {"exactly": f"watch-{k}"}, "timeframe": {"last": "1h"}}]}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bodies:
    """Request bodies made as they are sent: request n carries touchpoint `watch-(n mod 100)` and 1,000 events of
    profiles drawn anew (so that every request changes its segment), times in the last half hour."""

    def __init__(self):
        self.rng = random.Random(7)

    def __call__(self, n):
        rng = self.rng
        now = int(time.time() * 1000)
        k = n % SEGMENTS
        lines = [f'{{"time":{now - rng.randrange(1_800_000)},"profile":"p{rng.randrange(100_000)}",'
                 f'"type":"{"click" if rng.random() < 0.5 else "view"}","touchpoint":"watch-{k}"}}'
                 for _ in range(EVENTS_PER_REQUEST)]
        return ("\n".join(lines) + "\n").encode()


class Appender(threading.Thread):
    """Posts a request every INTERVAL for `seconds`, recording (endOffset, acknowledged at) of each."""

    def __init__(self, port, seconds, payloads, acks):
        super().__init__(daemon=True)
        self.port, self.seconds, self.payloads, self.acks = port, seconds, payloads, acks
        self.late = 0
        self.sent = 0

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        start = time.monotonic()
        n = 0
        while True:
            due = start + n * INTERVAL
            now = time.monotonic()
            if due - start >= self.seconds:
                break
            if now < due:
                time.sleep(due - now)
            elif now - due > INTERVAL:
                self.late += 1
            connection.request("POST", "/v1/events", body=self.payloads(n),
                               headers={"Content-Type": "application/x-ndjson"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise SystemExit(f"watch phase: append failed: {response.status} {answer}")
            self.acks[answer["endOffset"]] = time.monotonic()
            self.sent += 1
            n += 1
        self.elapsed = time.monotonic() - start


class Watcher(threading.Thread):
    """Reads one watch stream, recording (endOffset, arrived at) of each update after the initial one."""

    def __init__(self, port, name):
        super().__init__(daemon=True)
        self.port, self.name = port, name
        self.updates = []
        self.ready = threading.Event()
        self.stop = False

    def run(self):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        connection.request("GET", f"/v1/segments/{self.name}/watch")
        response = connection.getresponse()
        event_id = None
        while not self.stop:
            line = response.fp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif line.startswith("data:"):
                if json.loads(line[5:]).get("initial"):
                    self.ready.set()
                else:
                    self.updates.append((event_id, time.monotonic()))
        connection.close()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def run(port, server_pid, seconds, put):
    for k in range(SEGMENTS):
        put(f"/v1/segments/watch-{k}", json.dumps(segment(k)).encode())
    payloads = Bodies()

    def appends():
        """Appends for `seconds`; the appender, the acknowledgements and the server's CPU cores used meanwhile."""
        acks = {}
        cpu0 = cpu_seconds(server_pid)
        appender = Appender(port, seconds, payloads, acks)
        appender.start()
        appender.join()
        return appender, acks, (cpu_seconds(server_pid) - cpu0) / appender.elapsed

    alone, _, cpu_alone = appends()
    # The same with a watch on every segment.
    watchers = [Watcher(port, f"watch-{k}") for k in range(SEGMENTS)]
    for w in watchers:
        w.start()
    for w in watchers:
        if not w.ready.wait(120):
            raise SystemExit(f"watch phase: {w.name} sent no initial update")
    print("watch: every watch has its first update; appends again", file=sys.stderr, flush=True)
    watched, acks, cpu_watched = appends()
    time.sleep(1.0)  # the last updates
    delays = []
    unmatched = 0
    for w in watchers:
        w.stop = True
        for offset, arrived in w.updates:
            if offset in acks:
                delays.append((arrived - acks[offset]) * 1000)
            else:
                unmatched += 1
    return {
        "segments": SEGMENTS, "events_per_second": EVENTS_PER_REQUEST / INTERVAL, "seconds": seconds,
        "appends_alone": {"sent": alone.sent, "late": alone.late, "cpu_cores": cpu_alone,
                          "events_per_second": alone.sent * EVENTS_PER_REQUEST / alone.elapsed},
        "appends_watched": {"sent": watched.sent, "late": watched.late, "cpu_cores": cpu_watched,
                            "events_per_second": watched.sent * EVENTS_PER_REQUEST / watched.elapsed},
        "updates": len(delays), "unmatched_updates": unmatched,
        "delay_ms": {"p50": percentile(delays, 50), "p99": percentile(delays, 99), "max": max(delays, default=float("nan"))},
    }
