"""The web console in a real browser (Debian's chromium and chromedriver, driven by selenium) against a real
`touchlog serve` on the sample events: the seed's three segments are built with the console's rule builder, their
counts checked against `touchlog query --count`, the size chart drawn, the members' CSV downloaded and compared
with `touchlog query`, a profile explained and replayed, the store verified, an error shown as text, a read-only
server's console offering no changes; screenshots at 1280x800 and 390x844 go to .build/console-*.png.

Run by Tools/console-test (which Tools/test, and so CI, runs)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOUCHLOG = os.path.join(ROOT, ".build", "debug", "touchlog")
SEGMENTS = ["summer-2022-clickers", "discount-clickers-not-converted", "iphone-interest"]
AS_OF = "2022-06-20T00:00:00"
TOKEN = "console-test-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store, *extra):
    port = free_port()
    process = subprocess.Popen(
        [TOUCHLOG, "serve", "--store", store, "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/health")
            request.add_header("Authorization", "Bearer " + TOKEN)
            urllib.request.urlopen(request, timeout=1)
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("console-test: touchlog serve did not start: " + process.stderr.read().decode())


def cli(*arguments):
    return subprocess.run([TOUCHLOG, *arguments], check=True, capture_output=True, text=True).stdout


def browser(downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"]:
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": downloads, "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class Builder:
    """Drives the rule builder: each rule card is found again by its JSON path, since a change may redraw it."""

    def __init__(self, driver):
        self.driver = driver

    def field(self, path, css):
        scope = "#view .builder" if path is None else f'#view fieldset.rule[data-path="{path}"] > .fields'
        return self.driver.find_element(By.CSS_SELECTOR, f"{scope} {css}")

    def type(self, path, name, text):
        element = self.field(path, f"[name={name}]")
        element.clear()
        element.send_keys(text)

    def choose(self, path, name, value):
        Select(self.field(path, f"select[name={name}]")).select_by_value(value)

    def add(self, list_path, kind):
        scope = "#view .builder > .rules" if list_path is None else f'#view fieldset.rule[data-path="{list_path}"] > .fields > .rules'
        Select(self.driver.find_element(By.CSS_SELECTOR, f"{scope} > .add select[name=add-kind]")).select_by_value(kind)
        self.driver.find_element(By.CSS_SELECTOR, f"{scope} > .add button.add-rule").click()

    def negate(self, path):
        self.driver.find_element(By.CSS_SELECTOR, f'#view fieldset.rule[data-path="{path}"] > div input[name=negate]').click()

    def head(self, fixture):
        self.type(None, "name", fixture["name"])
        self.type(None, "description", fixture["description"])
        self.choose(None, "match", fixture["match"])

    def interaction(self, path, interaction, matcher, text, last=None):
        self.choose(path, "interaction", interaction)
        self.choose(path, "matcher", matcher)
        self.type(path, "touchpoint", text)
        if last:
            self.choose(path, "timeframe", "last")
            self.type(path, "duration", last)


def build_summer(b, fixture):
    b.head(fixture)
    b.add(None, "interaction")
    b.interaction("rules[0]", "click", "startsWith", "summer-2022", last="30d")


def build_discount(b, fixture):
    b.head(fixture)
    b.add(None, "interaction")
    b.interaction("rules[0]", "click", "exactly", "discount-notification", last="30d")
    b.choose("rules[0]", "conversion", "not_converted")


def build_iphone(b, fixture):
    b.head(fixture)
    b.add(None, "group")
    b.choose("rules[0]", "match", "any")
    b.interaction("rules[0].rules[0]", "any", "contains", "iphone")
    b.type("rules[0].rules[0]", "atLeast", "2")
    b.add("rules[0]", "group")
    b.choose("rules[0].rules[1]", "match", "all")
    b.interaction("rules[0].rules[1].rules[0]", "any", "contains", "iphone")
    b.add("rules[0].rules[1]", "interaction")
    b.interaction("rules[0].rules[1].rules[1]", "any", "exactly", "store-location")
    b.add(None, "interaction")
    b.interaction("rules[1]", "conversion", "oneOf", "iphone-interest")
    b.negate("rules[1]")


BUILD = {
    "summer-2022-clickers": build_summer,
    "discount-clickers-not-converted": build_discount,
    "iphone-interest": build_iphone,
}


def main():
    failures = []

    def check(condition, what):
        print(("ok      " if condition else "FAILED  ") + what)
        if not condition:
            failures.append(what)

    work = tempfile.mkdtemp(prefix="touchlog-console-")
    store = os.path.join(work, "store")
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads)
    cli("append", "--store", store, os.path.join(ROOT, "Fixtures/events/sample.jsonl"))
    server, url = serve(store, "--token", TOKEN)
    driver = browser(downloads)
    wait = WebDriverWait(driver, 20)
    try:
        started = time.monotonic()
        driver.get(url + "/")
        token_field = wait.until(EC.visibility_of_element_located((By.ID, "token")))
        check(True, f"the page loads without the token and asks for it ({(time.monotonic() - started) * 1000:.0f} ms)")
        token_field.send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "segment-rows"), "No segments yet"))
        check(True, "with the token the segment list loads (empty)")

        # The seed's three segments, built with the rule builder's form.
        for name in SEGMENTS:
            driver.find_element(By.ID, "new-segment").click()
            wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#view .builder input[name=name]")))
            with open(os.path.join(ROOT, "Fixtures/segments", name + ".json")) as f:
                fixture = json.load(f)
            BUILD[name](Builder(driver), fixture)
            wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#view .live-count"), "member"))
            driver.find_element(By.CSS_SELECTOR, "#view .editor-form button[type=submit]").click()
            wait.until(lambda d: d.execute_script("return location.hash") == "#/segment/" + name)
            saved = json.loads(cli("segment", "show", name, "--store", store))
            check(saved == fixture, f"{name}, built with the form, is the fixture's definition")

        # Counts as of a past date equal the CLI's.
        driver.execute_script(f"document.getElementById('as-of').value = '{AS_OF}'")
        driver.find_element(By.CSS_SELECTOR, "#time-form button[type=submit]").click()
        for name in SEGMENTS:
            expected = cli("query", name, "--store", store, "--as-of", AS_OF + "Z", "--count").strip()
            cell = (By.CSS_SELECTOR, f'td.count[data-segment="{name}"]')
            wait.until(lambda d: d.find_element(*cell).text not in ("…", ""))
            shown = driver.find_element(*cell).text.replace(",", "")
            check(shown == expected, f"{name}: the list shows {shown} members as of {AS_OF}, the CLI {expected}")

        # One segment: the chart, the CSV, an explanation and a replay.
        name = SEGMENTS[0]
        driver.find_element(By.LINK_TEXT, name).click()
        line = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#view .chart svg polyline")))
        points = line.get_attribute("points").split()
        check(len(points) > 1, f"the size chart is drawn ({len(points)} points)")
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#view .member-count"), " as of "))
        driver.find_element(By.CSS_SELECTOR, "#view a.download").click()
        csv_path = os.path.join(downloads, name + "-members.csv")
        for _ in range(100):
            if os.path.exists(csv_path):
                break
            time.sleep(0.1)
        members = cli("query", name, "--store", store, "--as-of", AS_OF + "Z").split()
        downloaded = open(csv_path).read().split() if os.path.exists(csv_path) else None
        check(downloaded == ["profile"] + members, f"the CSV download holds the CLI's {len(members)} members")
        driver.save_screenshot(os.path.join(ROOT, ".build", "console-1280x800.png"))

        profile = members[0]
        field = driver.find_element(By.CSS_SELECTOR, "#view .explain-form input[name=profile]")
        field.send_keys(profile)
        field.submit()
        verdict = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#view .explanation .yes")))
        check(verdict.text == "is a member", f"{profile} is explained as a member, rule by rule")
        qualifying = driver.find_elements(By.CSS_SELECTOR, "#view .explanation .verdict table.events tbody tr")
        check(len(qualifying) >= 1, f"the explanation lists the deciding events ({len(qualifying)})")
        driver.find_element(By.XPATH, "//button[text()=\"Replay this profile's events\"]").click()
        replayed = wait.until(EC.visibility_of_element_located((By.XPATH, "//h4[contains(., ' events of ')]")))
        expected_events = len(cli("replay", "--store", store, "--profile", profile).splitlines())
        check(replayed.text == f"{expected_events} events of {profile}", f"the replay shows the profile's {expected_events} events")

        # The rest of the grammar from the builder: a sequence with a window, a segment reference, a value aggregate
        # and a calendar timeframe; the server accepts what it makes.
        driver.find_element(By.ID, "new-segment").click()
        wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#view .builder input[name=name]")))
        b = Builder(driver)
        b.type(None, "name", "grammar-tour")
        b.add(None, "sequence")
        b.type("rules[0]", "touchpoint", "summer-2022-collection")
        driver.find_elements(By.CSS_SELECTOR, '#view fieldset.rule[data-path="rules[0]"] input[name=touchpoint]')[1].send_keys(
            "summer-2022-collection")
        b.type("rules[0]", "within", "1d")
        b.add(None, "segment")
        b.choose("rules[1]", "segment", "iphone-interest")
        b.negate("rules[1]")
        b.add(None, "interaction")
        b.choose("rules[2]", "interaction", "conversion")
        b.choose("rules[2]", "matcher", "")
        b.choose("rules[2]", "aggregate", "sum")
        b.type("rules[2]", "value-atLeast", "50")
        b.choose("rules[2]", "timeframe", "calendar")
        b.choose("rules[2]", "unit", "month")
        b.type("rules[2]", "timeZone", "Europe/Amsterdam")
        b.choose(None, "match", "any")
        made = json.loads(driver.find_element(By.CSS_SELECTOR, "#view textarea").get_attribute("value"))
        expected = {"name": "grammar-tour", "match": "any", "rules": [
            {"sequence": [{"interaction": "view", "touchpoint": {"exactly": "summer-2022-collection"}},
                          {"interaction": "click", "touchpoint": {"exactly": "summer-2022-collection"}}], "within": "1d"},
            {"segment": "iphone-interest", "negate": True},
            {"interaction": "conversion", "value": {"sum": {"atLeast": 50}},
             "timeframe": {"calendar": {"unit": "month", "count": 1, "timeZone": "Europe/Amsterdam"}}}]}
        check(made == expected, "a sequence, a segment reference, a value and a calendar timeframe from the builder")
        query = os.path.join(work, "tour.json")
        with open(query, "w") as f:
            json.dump(made, f)
        cli_count = cli("query", "--rules", query, "--store", store, "--as-of", AS_OF + "Z", "--count").strip()
        # (Each change recounts after a pause; the last change's count is the one that must match.)
        expected_text = f"{cli_count} member{'' if cli_count == '1' else 's'} as of {AS_OF}Z."
        try:
            wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#view .live-count"), expected_text))
        except Exception:
            pass
        count = driver.find_element(By.CSS_SELECTOR, "#view .live-count").text
        check(count == expected_text, f"and its live count ({count!r}) is the CLI's ({cli_count})")

        # A definition the server refuses: its message, in words, under the editor.
        driver.find_element(By.ID, "new-segment").click()
        driver.find_element(By.CSS_SELECTOR, "#view details.json summary").click()
        editor = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#view textarea")))
        editor.clear()
        editor.send_keys('{"name":"bad","match":"all","rules":[{"interaction":"tap"}]}')
        wait.until(lambda d: "tap" in d.find_element(By.CSS_SELECTOR, "#view .live-count").text)
        message = driver.find_element(By.CSS_SELECTOR, "#view .live-count").text
        check("member" not in message, f"a refused definition shows the server's reason: {message!r}")

        # Store health and verify.
        driver.get(url + "/#/health")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#view dl.figures")))
        driver.find_element(By.XPATH, "//button[text()='Verify every checksum']").click()
        intact = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#view .yes")))
        check(intact.text.startswith("Intact"), "store health shows the figures, and verify says intact")

        # A phone's width.
        driver.get(url + "/#/segment/" + SEGMENTS[1])
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#view .chart svg")))
        driver.set_window_size(390, 844)
        time.sleep(0.3)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        check(overflow <= 0, f"at 390 px wide nothing runs off the side ({overflow} px)")
        driver.save_screenshot(os.path.join(ROOT, ".build", "console-390x844.png"))
    finally:
        driver.quit()
        server.terminate()
        server.wait()

    # A read-only server: no way to change anything is offered.
    server, url = serve(store, "--read-only")
    driver = browser(downloads)
    try:
        driver.get(url + "/")
        WebDriverWait(driver, 20).until(
            EC.text_to_be_present_in_element((By.ID, "store-state"), "read-only"))
        check(not driver.find_element(By.ID, "new-segment").is_displayed(), "a read-only server's console offers no new segment")
        driver.get(url + "/#/segment/" + SEGMENTS[0])
        WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#view .editor-form")))
        save = driver.find_element(By.CSS_SELECTOR, "#view .editor-form button[type=submit]")
        check(not save.is_displayed(), "nor saving a definition")
    finally:
        driver.quit()
        server.terminate()
        server.wait()

    print(f"screenshots: .build/console-1280x800.png, .build/console-390x844.png")
    if failures:
        sys.exit(f"console-test: {len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
