"""Measures the web console as a person meets it, on 1M generated events (touchlog-generate: 100k profiles, 180
days from 2022-04-01) in a release `touchlog serve` on loopback, in Debian's chromium:
- first page load: opening `/` until the segment list shows every count (the seed's three segments, as of now),
  ten times, each in a new browser with an empty cache: once as the browser's very first page (its own start-up
  inside the page's time), and once in a browser that is already running (it opened about:blank first), as a
  person opens the console in the browser they have open;
- live count: the definition editor's count request (`POST /v1/query?countOnly=true`, as of the data's last day) as
  the browser's resource timing sees it, for variants of the seed's three segments that no earlier request asked
  (each keystroke makes a new definition): p50 and p95.

Run by Tools/console-bench."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import console_test as ct  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = ct.ROOT
RELEASE = os.path.join(ROOT, ".build", "release")
AS_OF = "2022-09-27T00:00:00"


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    ct.TOUCHLOG = os.path.join(RELEASE, "touchlog")
    work = tempfile.mkdtemp(prefix="touchlog-console-bench-")
    store = os.path.join(work, "store")
    events = os.path.join(work, "events.jsonl")
    subprocess.run([os.path.join(RELEASE, "touchlog-generate"), "--events", "1000000", "--profiles", "100000",
                    "--seed", "7", "--output", events], check=True)
    ct.cli("append", "--store", store, events)
    definitions = {}
    for name in ct.SEGMENTS:
        path = os.path.join(ROOT, "Fixtures/segments", name + ".json")
        ct.cli("segment", "put", "--store", store, path)
        with open(path) as f:
            definitions[name] = json.load(f)
    server, url = ct.serve(store)
    try:
        loads = []
        running = []
        for _ in range(10):
            for warm, into in ((False, loads), (True, running)):
                driver = ct.browser(work)
                try:
                    if warm:
                        driver.get("about:blank")
                    driver.get(url + "/")
                    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))
                    into.append(float(driver.execute_script("return document.body.dataset.ready")))
                finally:
                    driver.quit()

        driver = ct.browser(work)
        counts = []
        try:
            driver.get(url + "/")
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))
            driver.execute_script(f"document.getElementById('as-of').value = '{AS_OF}'")
            for name, definition in definitions.items():
                driver.get(url + "/#/segment/" + name)
                WebDriverWait(driver, 30).until(
                    lambda d: "member" in d.find_element(By.CSS_SELECTOR, "#view .live-count").text)
                for n in range(10):
                    variant = json.loads(json.dumps(definition))
                    variant["description"] = f"variant {n}"
                    first = variant["rules"][0]
                    if "timeframe" in first:
                        first["timeframe"] = {"last": f"{30 + n + 1}d"}
                    else:
                        first["rules"][0]["count"] = {"atLeast": 2 + n}
                    before = driver.execute_script(
                        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/query')).length")
                    driver.execute_script(
                        "const t = document.querySelector('#view textarea'); t.value = arguments[0];"
                        "t.dispatchEvent(new Event('input'));", json.dumps(variant))
                    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/query'))"
                        ".length") > before)
                    counts.append(driver.execute_script(
                        "const q = performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/query'));"
                        "return q[q.length - 1].duration"))
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait()
    print(f"1,000,000 events, 100,000 profiles; the seed's three segments")
    print(f"first page load until every count is shown, 10 new browsers each with an empty cache:")
    print(f"  as the browser's first page: p50 {statistics.median(loads):.0f} ms, max {max(loads):.0f} ms")
    print(f"  in a running browser: p50 {statistics.median(running):.0f} ms, max {max(running):.0f} ms")
    print(f"live count, {len(counts)} new definitions: p50 {statistics.median(counts):.1f} ms, "
          f"p95 {percentile(counts, 95):.1f} ms, max {max(counts):.1f} ms")


if __name__ == "__main__":
    main()
