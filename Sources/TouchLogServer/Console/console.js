// The touchlog console: plain JavaScript over the server's own /v1 API (the same requests a service makes), no
// build step and nothing fetched from elsewhere. State lives in the URL's hash (#/segment/NAME, #/new, #/health)
// and in the time bar; the token, when the server needs one, in this tab's sessionStorage.
"use strict";

const state = { readOnly: false, stats: null, segments: [] };
const $ = (selector, root = document) => root.querySelector(selector);
const DAY = 86400000;

// MARK: API

/** Calls the API; resolves to the parsed JSON (or text), rejects with the server's own message. */
async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = {};
  const token = sessionStorage.getItem("touchlog-token");
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (error) {
    throw new Error("The server did not answer (" + error.message + "). Is touchlog serve still running?");
  }
  if (response.status === 401) {
    showTokenForm(token ? "That token was refused. Paste the token the server was started with." : null);
    throw new Error("This server needs a token: enter it above.");
  }
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try {
      const error = JSON.parse(text).error;
      message = error.message;
      if (error.problems) message += "\n" + error.problems.map((p) => "line " + p.line + ": " + p.message).join("\n");
    } catch (_) { /* not JSON: keep the text */ }
    throw new Error(message || response.status + " " + response.statusText);
  }
  return raw ? text : text ? JSON.parse(text) : null;
}

function showError(error) {
  const box = $("#error");
  box.textContent = error ? error.message || String(error) : "";
  box.hidden = !error;
}

/** Runs an async action, showing its failure (if any) in the alert box. */
async function attempt(action) {
  try {
    showError(null);
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

function showTokenForm(message) {
  const form = $("#token-form");
  form.hidden = false;
  if (message) $("p", form).textContent = message;
  $("#token").focus();
}

// MARK: Times

/** The time bar's value of `input` as RFC 3339 UTC, or null when empty. */
function inputTime(input) {
  if (!input.value) return null;
  const value = input.value.length === 16 ? input.value + ":00" : input.value;
  return value + "Z";
}

function setInputTime(input, millis) {
  input.value = millis == null ? "" : new Date(millis).toISOString().slice(0, 19);
}

/** `asOf`/`knownAt` query parameters of the time bar. */
function timeParameters(extra = {}) {
  const parameters = new URLSearchParams(extra);
  const asOf = inputTime($("#as-of"));
  const knownAt = inputTime($("#known-at"));
  if (asOf) parameters.set("asOf", asOf);
  if (knownAt) parameters.set("knownAt", knownAt);
  const text = parameters.toString();
  return text ? "?" + text : "";
}

function timeWords() {
  const asOf = inputTime($("#as-of"));
  const knownAt = inputTime($("#known-at"));
  return (asOf ? "as of " + asOf : "now") + (knownAt ? ", by what was known at " + knownAt : "");
}

const formatTime = (text) => (text ? text.replace("T", " ").replace(/\.000Z$|Z$/, " UTC") : "—");
const number = (n) => Number(n).toLocaleString("en");
const membersText = (n) => number(n) + (Number(n) === 1 ? " member" : " members");
const segmentPath = (name) => "/v1/segments/" + encodeURIComponent(name);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// MARK: Segment list

async function loadSegments(list = api("/v1/segments")) {
  const { segments } = await list;
  state.segments = segments;
  const rows = $("#segment-rows");
  rows.replaceChildren();
  if (segments.length === 0) {
    rows.append(element("tr", {}, element("td", { colspan: "2", class: "muted", text: "No segments yet." })));
  }
  const current = decodeURIComponent((location.hash.match(/^#\/segment\/(.+)$/) || [])[1] || "");
  for (const segment of segments) {
    const count = element("td", { class: "number count", "data-segment": segment.name, text: "…" });
    const link = element("a", { href: "#/segment/" + encodeURIComponent(segment.name), text: segment.name });
    const row = element("tr", segment.name === current ? { class: "selected" } : {}, element("td", {}, link), count);
    rows.append(row);
  }
  // Every count at once: the server answers each query on a thread of its own, so they share its cores.
  await Promise.all(segments.map(async (segment) => {
    const cell = rows.querySelector(`td[data-segment="${CSS.escape(segment.name)}"]`);
    try {
      const answer = await api(segmentPath(segment.name) + "/members" + timeParameters({ countOnly: "true" }));
      cell.textContent = number(answer.count);
    } catch (error) {
      cell.textContent = "error";
      cell.title = error.message;
    }
  }));
}

// MARK: Segment view

async function showSegment(name) {
  const segment = state.segments.find((s) => s.name === name);
  const view = $("#view");
  if (!segment) {
    view.replaceChildren(element("p", { text: "There is no segment named " + name + "." }));
    return;
  }
  view.replaceChildren($("#segment-template").content.cloneNode(true));
  $(".segment-name", view).textContent = name + " (version " + segment.version + ")";
  $(".description", view).textContent = segment.description || "";
  const editor = makeEditor(segment.definition);
  $(".editor", view).append(editor);
  $(".explain-form", view).addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => explain(name, event.target.profile.value, $(".explanation", view)));
  });
  const diffForm = $(".diff-form", view);
  const end = asOfMillis();
  setInputTime(diffForm.from, end - 7 * DAY);
  setInputTime(diffForm.to, end);
  diffForm.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => diff(name, diffForm, $(".diff", view)));
  });
  await Promise.all([
    attempt(() => members(name, view)),
    attempt(() => chart(name, $(".chart", view))),
    attempt(() => versions(name, $(".versions", view))),
  ]);
}

/** The time bar's as-of time in ms (the clock when it is empty). */
function asOfMillis() {
  const asOf = inputTime($("#as-of"));
  return asOf ? Date.parse(asOf) : Date.now();
}

async function members(name, view) {
  const answer = await api(segmentPath(name) + "/members" + timeParameters());
  $(".member-count", view).textContent = membersText(answer.count) + " " + timeWords() + ".";
  const list = $(".members", view);
  const shown = answer.members.slice(0, 2000);
  list.replaceChildren(...shown.map((profile) => element("li", { class: "mono", text: profile })));
  if (answer.members.length > shown.length) {
    list.after(element("p", { class: "muted", text: "The first 2,000 are listed; the CSV has all of them." }));
  }
  const csv = "profile\n" + answer.members.map(csvField).join("\n") + (answer.members.length ? "\n" : "");
  const link = $(".download", view);
  link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  link.download = name + "-members.csv";
}

function csvField(text) {
  return /[",\r\n]/.test(text) ? '"' + text.replaceAll('"', '""') + '"' : text;
}

/** Draws the member count over the store's event-time range (up to the as-of time) from one history request. */
async function chart(name, box) {
  const stats = state.stats || (state.stats = await api("/v1/stats"));
  if (!stats.firstTime) {
    box.textContent = "The store has no events yet.";
    return;
  }
  const to = Math.min(asOfMillis(), Date.parse(stats.lastTime) + DAY);
  const from = Math.max(Date.parse(stats.firstTime), to - 365 * DAY);
  const steps = [["1h", 3600000], ["6h", 6 * 3600000], ["1d", DAY], ["7d", 7 * DAY], ["30d", 30 * DAY]];
  const [step] = steps.find(([, ms]) => (to - from) / ms <= 120) || steps[steps.length - 1];
  const parameters = { from: new Date(from).toISOString(), to: new Date(to).toISOString(), step };
  const knownAt = inputTime($("#known-at"));
  if (knownAt) parameters.knownAt = knownAt;
  const history = await api(segmentPath(name) + "/history?" + new URLSearchParams(parameters));
  box.replaceChildren(drawChart(history.points, name));
}

function drawChart(points, name) {
  const width = 640, height = 200, left = 44, bottom = 22, top = 8, right = 8;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...points.map((p) => p.count));
  const last = points[points.length - 1];
  svg.setAttribute(
    "aria-label",
    `${name}: member count from ${formatTime(points[0].time)} to ${formatTime(last.time)}, ` +
      `at most ${max}, ${last.count} at the end`);
  const x = (i) => left + (points.length === 1 ? 0 : (i * (width - left - right)) / (points.length - 1));
  const y = (count) => top + (1 - count / max) * (height - top - bottom);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom });
  add("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom });
  add("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, String(max));
  add("text", { x: left - 6, y: height - bottom, "text-anchor": "end" }, "0");
  add("text", { x: left, y: height - 6 }, points[0].time.slice(0, 10));
  add("text", { x: width - right, y: height - 6, "text-anchor": "end" }, last.time.slice(0, 10));
  const line = points.map((p, i) => `${x(i).toFixed(1)},${y(p.count).toFixed(1)}`).join(" ");
  add("polygon", { class: "area", points: `${x(0)},${y(0)} ${line} ${x(points.length - 1)},${y(0)}` });
  add("polyline", { class: "line", points: line });
  return svg;
}

async function versions(name, list) {
  const answer = await api(segmentPath(name) + "/versions");
  list.replaceChildren(
    ...answer.versions.map((v) =>
      element("li", { text: "version " + v.version + (v.removed ? ": removed" : ": " + (v.definition.description || "")) })));
}

// MARK: Explain, replay, diff

async function explain(name, profile, box) {
  const answer = await api(segmentPath(name) + "/explain" + timeParameters({ profile }));
  const verdict = answer.member
    ? element("span", { class: "yes", text: "is a member" })
    : element("span", { class: "no", text: "is not a member" });
  const heading = element("p", {}, element("strong", { class: "mono", text: profile }), " ", verdict,
    " " + timeWords() + (answer.known ? "." : " (no event of this profile is visible at that time)."));
  const replay = element("button", { type: "button", text: "Replay this profile's events" });
  const events = element("div");
  replay.addEventListener("click", () => attempt(async () => {
    const lines = await api("/v1/events?" + new URLSearchParams({ profile }), { raw: true });
    const all = lines.split("\n").filter((line) => line).map((line) => JSON.parse(line));
    events.replaceChildren(element("h4", { text: all.length + " events of " + profile }), eventTable(all));
  }));
  box.replaceChildren(heading, ...answer.rules.map(ruleVerdict), replay, events);
}

function ruleVerdict(rule) {
  const block = element("div", { class: "verdict " + (rule.holds ? "holds" : "fails") });
  const mark = rule.holds ? element("span", { class: "yes", text: "holds" }) : element("span", { class: "no", text: "does not hold" });
  block.append(element("p", {}, element("span", { class: "mono", text: rule.path }), " " + rule.rule + ": ", mark,
    rule.negated ? " (negated)" : ""));
  if (rule.aggregate !== undefined) block.append(element("p", { text: "aggregate of the values: " + rule.aggregate }));
  const groups = [
    ["qualifying", "Qualifying events"], ["matchedSequence", "The events that took the steps"],
    ["conversions", "Conversions"],
  ];
  for (const [key, title] of groups) {
    if (rule[key] && rule[key].length) block.append(element("p", { text: title + ":" }), eventTable(rule[key]));
    else if (key === "qualifying" && rule[key]) block.append(element("p", { class: "muted", text: "No qualifying events." }));
  }
  for (const child of rule.rules || []) block.append(ruleVerdict(child));
  return block;
}

function eventTable(events) {
  const head = element("tr", {}, ...["time", "type", "touchpoint", "value", "offset", "recorded"].map((h) =>
    element("th", { scope: "col", text: h })));
  const rows = events.map((e) => element("tr", {},
    element("td", { text: formatTime(e.time) }), element("td", { text: e.type }),
    element("td", { text: e.touchpoint ?? "" }), element("td", { class: "number", text: e.value ?? "" }),
    element("td", { class: "number", text: e.offset }), element("td", { text: formatTime(e.recorded) })));
  return element("table", { class: "events" }, element("thead", {}, head), element("tbody", {}, ...rows));
}

async function diff(name, form, box) {
  const parameters = { from: inputTime(form.from), to: inputTime(form.to) };
  const knownAt = inputTime($("#known-at"));
  if (knownAt) parameters.knownAt = knownAt;
  const answer = await api(segmentPath(name) + "/diff?" + new URLSearchParams(parameters));
  const list = (profiles) => element("ul", {}, ...profiles.map((p) => element("li", { class: "mono", text: p })));
  box.replaceChildren(
    element("h4", { text: answer.entered.length + " entered" }), list(answer.entered),
    element("h4", { text: answer.exited.length + " left" }), list(answer.exited));
}

// MARK: Definitions

/** A JSON editor with a live count (the definition evaluated unsaved) and, on a writable server, saving. */
function makeEditor(definition) {
  const form = $("#editor-template").content.cloneNode(true).firstElementChild;
  const textarea = form.definition;
  const count = $(".live-count", form);
  let model = JSON.parse(JSON.stringify(definition));
  const names = () => state.segments.map((s) => s.name).filter((n) => n !== model.name);
  const builderBox = $(".builder-box", form);
  const fromBuilder = () => {
    textarea.value = JSON.stringify(model, null, 2);
    clearTimeout(timer);
    timer = setTimeout(recount, 250);
  };
  builderBox.replaceChildren(renderBuilder(model, fromBuilder, names()));
  textarea.value = JSON.stringify(model, null, 2);
  let timer, generation = 0;
  const recount = async () => {
    const mine = ++generation;
    let body;
    try {
      body = JSON.stringify(JSON.parse(textarea.value));
    } catch (error) {
      count.textContent = "Not valid JSON yet: " + error.message;
      return;
    }
    try {
      const answer = await api("/v1/query" + timeParameters({ countOnly: "true" }), { method: "POST", body });
      if (mine === generation) count.textContent = membersText(answer.count) + " " + timeWords() + ".";
    } catch (error) {
      if (mine === generation) count.textContent = error.message;
    }
  };
  textarea.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(recount, 250);
    try {
      const parsed = JSON.parse(textarea.value);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
        model = parsed;
        builderBox.replaceChildren(renderBuilder(model, fromBuilder, names()));
      }
    } catch (_) { /* the builder keeps the last definition that parsed */ }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      const parsed = JSON.parse(textarea.value);
      if (!parsed.name) throw new Error('The definition needs a "name".');
      await api(segmentPath(parsed.name), { method: "PUT", body: JSON.stringify(parsed) });
      await loadSegments();
      location.hash = "#/segment/" + encodeURIComponent(parsed.name);
      await route();
    });
  });
  recount();
  return form;
}

function showNewSegment() {
  const template = { name: "", match: "all", rules: [] };
  $("#view").replaceChildren(element("h2", { text: "New segment" }), makeEditor(template));
  $("#view input[name=name]").focus();
}

// MARK: Store health

async function showHealth() {
  const view = $("#view");
  view.replaceChildren(element("h2", { text: "Store health" }), element("p", { class: "muted", text: "Reading…" }));
  const [stats, snapshots] = await Promise.all([api("/v1/stats"), api("/v1/snapshots")]);
  state.stats = stats;
  const figures = [
    ["events", number(stats.events)], ["profiles", number(stats.profiles)],
    ["erased profiles", number(stats.erasedProfiles)], ["touchpoints", number(stats.touchpoints)],
    ["views / clicks / conversions", [stats.views, stats.clicks, stats.conversions].map(number).join(" / ")],
    ["event times", formatTime(stats.firstTime) + " to " + formatTime(stats.lastTime)],
    ["recorded", formatTime(stats.firstRecorded) + " to " + formatTime(stats.lastRecorded)],
    ["log", number(stats.logBytes) + " bytes in " + stats.files + " files, " + number(stats.blocks) + " blocks"],
    ["on disk", number(stats.totalBytes) + " bytes, " + stats.bytesPerEvent.toFixed(2) + " per event"],
    ["format", String(stats.format)], ["segments", String(stats.segments)], ["snapshots", String(stats.snapshots)],
  ];
  const list = element("dl", { class: "figures" });
  for (const [term, value] of figures) list.append(element("dt", { text: term }), element("dd", { text: value }));
  const verifyButton = element("button", { type: "button", text: "Verify every checksum" });
  const verdict = element("div", { "aria-live": "polite" });
  verifyButton.addEventListener("click", () => attempt(async () => {
    verifyButton.disabled = true;
    verdict.textContent = "Verifying…";
    try {
      const report = await api("/v1/verify", { method: "POST" });
      verdict.replaceChildren(
        element("p", {}, report.intact
          ? element("span", { class: "yes", text: "Intact: " })
          : element("span", { class: "no", text: "Damaged: " }),
          `${number(report.events)} events in ${number(report.blocks)} blocks, chain head ${report.head}.`),
        ...report.problems.map((p) => element("p", { class: "no", text: p })));
    } finally {
      verifyButton.disabled = false;
    }
  }));
  const head = element("tr", {}, ...["segment", "end offset", "watermark", "bytes"].map((h) =>
    element("th", { scope: "col", text: h })));
  const rows = snapshots.snapshots.map((s) => element("tr", {},
    element("td", { text: s.segment ?? "(earlier definition)" }), element("td", { class: "number", text: number(s.endOffset) }),
    element("td", { text: formatTime(s.watermark) }), element("td", { class: "number", text: number(s.bytes) })));
  view.replaceChildren(element("h2", { text: "Store health" }), list, verifyButton, verdict,
    element("h3", { text: "Snapshots" }),
    rows.length ? element("table", {}, element("thead", {}, head), element("tbody", {}, ...rows))
      : element("p", { class: "muted", text: "No snapshots." }));
}

// MARK: Start

async function route() {
  const hash = location.hash || "#/";
  for (const row of document.querySelectorAll("#segment-rows tr")) row.classList.remove("selected");
  const match = hash.match(/^#\/segment\/(.+)$/);
  if (match) {
    const name = decodeURIComponent(match[1]);
    const link = document.querySelector(`#segment-rows a[href="#/segment/${CSS.escape(encodeURIComponent(name))}"]`);
    link?.closest("tr").classList.add("selected");
    await showSegment(name);
  } else if (hash === "#/new" && !state.readOnly) {
    showNewSegment();
  } else if (hash === "#/health") {
    await showHealth();
  } else {
    $("#view").replaceChildren(
      element("h2", { text: "Audiences" }),
      element("p", { text: "Pick a segment to see its size over time, its members (with a CSV), why a profile is " +
        "in it, and who entered or left between two dates. The time bar above sets the as-of and known-at time " +
        "of every answer." }));
  }
}

// The list and the view again, for new times. A click on a segment meanwhile routes on its own (hashchange), so the
// view is then not drawn a second time under the reader's hands.
async function refresh() {
  const hash = location.hash;
  await loadSegments();
  if (location.hash === hash) await route();
}

async function start() {
  // The list is asked for with the health check, not after it.
  const list = api("/v1/segments");
  list.catch(() => {});
  const health = await api("/v1/health");
  state.readOnly = health.readOnly;
  $("#token-form").hidden = true;
  document.body.classList.toggle("read-only", state.readOnly);
  for (const control of document.querySelectorAll(".writes")) control.hidden = state.readOnly;
  $("#store-state").textContent =
    number(health.endOffset) + " events" + (state.readOnly ? " · read-only: changes are made elsewhere" : "");
  await loadSegments(list);
  await route();
  // The segment list and its counts are shown: what a first page load waits for (Tools/console-bench reads it).
  document.body.dataset.ready = String(performance.now());
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("touchlog-token", $("#token").value.trim());
    attempt(start);
  });
  $("#time-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(refresh);
  });
  $("#time-now").addEventListener("click", () => {
    $("#as-of").value = "";
    $("#known-at").value = "";
    attempt(refresh);
  });
  $("#new-segment").addEventListener("click", () => { location.hash = "#/new"; });
  window.addEventListener("hashchange", () => attempt(route));
  attempt(start);
});
