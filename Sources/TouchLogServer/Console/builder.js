// The rule builder: a form for the whole rule language (interaction rules with touchpoint, timeframe, count,
// conversion and value; groups; sequences; segment references; negation), kept in step with the JSON beside it.
// `renderBuilder(definition, onChange, segmentNames)` returns the form; every edit changes `definition` in place
// and calls `onChange`.
"use strict";

const BUILDER_TIMEFRAMES = [
  ["", "all time up to T"], ["last", "the last …"], ["range", "between two times"], ["before", "before the last …"],
  ["calendar", "calendar days, weeks or months"],
];
const BUILDER_MATCHERS = ["exactly", "contains", "startsWith", "endsWith", "oneOf"];

function builderControl(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function labelled(text, control) {
  return builderControl("label", {}, text, control);
}

function select(name, options, value, onChange) {
  const node = builderControl("select", { name },
    ...options.map(([v, text]) => builderControl("option", { value: v, text })));
  node.value = value ?? "";
  node.addEventListener("change", () => onChange(node.value));
  return node;
}

function input(name, value, onChange, attributes = {}) {
  const node = builderControl("input", { name, ...attributes });
  node.value = value ?? "";
  node.addEventListener("input", () => onChange(node.value));
  return node;
}

/** A number field that removes its key when emptied. */
function numberInput(name, object, key, onChange, attributes = {}) {
  return input(name, object[key], (text) => {
    if (text === "" || isNaN(Number(text))) delete object[key];
    else object[key] = Number(text);
    onChange();
  }, { type: "number", ...attributes });
}

function renderBuilder(definition, onChange, segmentNames) {
  const form = builderControl("div", { class: "builder" });
  const redraw = () => {
    form.replaceChildren(...builderFields(definition, () => { onChange(); }, redrawAll, segmentNames));
  };
  const redrawAll = () => { redraw(); onChange(); };
  redraw();
  return form;
}

function builderFields(definition, changed, redraw, segmentNames) {
  const head = builderControl("div", { class: "inline" },
    labelled("Name", input("name", definition.name, (v) => { definition.name = v; changed(); }, { required: "" })),
    labelled("Description", input("description", definition.description, (v) => {
      if (v) definition.description = v; else delete definition.description;
      changed();
    }, { size: 40 })),
    labelled("Members must meet", select("match", [["all", "every rule"], ["any", "any rule"]], definition.match,
      (v) => { definition.match = v; changed(); })));
  definition.rules = definition.rules || [];
  return [head, ruleList(definition.rules, changed, redraw, segmentNames, "rules")];
}

function ruleList(rules, changed, redraw, segmentNames, path) {
  const list = builderControl("div", { class: "rules" });
  rules.forEach((rule, index) => list.append(ruleCard(rules, index, changed, redraw, segmentNames, `${path}[${index}]`)));
  const kinds = [["interaction", "an interaction rule"], ["group", "a group of rules"], ["sequence", "a sequence"],
    ["segment", "another segment's members"]];
  const kind = select("add-kind", kinds, "interaction", () => {});
  const add = builderControl("button", { type: "button", class: "add-rule", text: "Add" });
  add.addEventListener("click", () => {
    rules.push(newRule(kind.value, segmentNames));
    redraw();
  });
  list.append(builderControl("div", { class: "inline add" }, labelled("Add a rule", kind), add));
  return list;
}

function newRule(kind, segmentNames) {
  switch (kind) {
    case "group": return { match: "any", rules: [{ interaction: "click", touchpoint: { exactly: "" } }] };
    case "sequence": return {
      sequence: [{ interaction: "view", touchpoint: { exactly: "" } }, { interaction: "click", touchpoint: { exactly: "" } }],
    };
    case "segment": return { segment: segmentNames[0] || "" };
    default: return { interaction: "click", touchpoint: { exactly: "" } };
  }
}

function ruleKind(rule) {
  if (rule.sequence) return "sequence";
  if (rule.segment !== undefined) return "segment";
  if (rule.rules) return "group";
  return "interaction";
}

function ruleCard(rules, index, changed, redraw, segmentNames, path) {
  const rule = rules[index];
  const kind = ruleKind(rule);
  const titles = { interaction: "Interaction rule", group: "Group", sequence: "Sequence", segment: "Segment reference" };
  const card = builderControl("fieldset", { class: "rule", "data-kind": kind, "data-path": path },
    builderControl("legend", { text: `${titles[kind]} (${path})` }));
  const negate = builderControl("input", { type: "checkbox", name: "negate" });
  negate.checked = rule.negate === true;
  negate.addEventListener("change", () => {
    if (negate.checked) rule.negate = true; else delete rule.negate;
    changed();
  });
  const remove = builderControl("button", { type: "button", class: "remove", text: "Remove this rule" });
  remove.addEventListener("click", () => { rules.splice(index, 1); redraw(); });
  const tools = builderControl("div", { class: "inline" },
    builderControl("label", { class: "check" }, negate, "Negate (holds when this does not)"), remove);
  const fields = builderControl("div", { class: "fields" });
  if (kind === "interaction") fields.append(...interactionFields(rule, changed, redraw));
  else if (kind === "group") {
    fields.append(labelled("Holds when", select("match", [["all", "every rule below holds"], ["any", "any rule below holds"]],
      rule.match, (v) => { rule.match = v; changed(); })), ruleList(rule.rules, changed, redraw, segmentNames, path + ".rules"));
  } else if (kind === "sequence") fields.append(...sequenceFields(rule, changed, redraw));
  else {
    const names = segmentNames.map((n) => [n, n]);
    if (!segmentNames.includes(rule.segment)) names.unshift([rule.segment, rule.segment || "(choose)"]);
    fields.append(labelled("Member of the segment", select("segment", names, rule.segment,
      (v) => { rule.segment = v; changed(); })));
  }
  card.append(fields, tools);
  return card;
}

function interactionFields(rule, changed, redraw) {
  const interaction = labelled("Interaction", select("interaction",
    [["view", "view"], ["click", "click"], ["any", "view or click"], ["conversion", "conversion"]], rule.interaction,
    (v) => {
      rule.interaction = v;
      if (v === "conversion") delete rule.conversion;
      redraw();
    }));
  const fields = [builderControl("div", { class: "inline" }, interaction, ...touchpointFields(rule, changed, redraw,
    rule.interaction === "conversion"))];
  fields.push(timeframeFields(rule, changed, redraw));
  const countField = (key, text) => labelled(text, input(key, rule.count?.[key], (v) => {
    rule.count = rule.count || {};
    if (v === "" || isNaN(Number(v))) delete rule.count[key]; else rule.count[key] = Number(v);
    tidy(rule, "count");
    changed();
  }, { type: "number", min: 0, placeholder: key === "atLeast" ? "1" : "" }));
  const counts = builderControl("div", { class: "inline" },
    countField("atLeast", "At least (events)"), countField("atMost", "At most (events)"));
  if (rule.interaction !== "conversion") {
    counts.append(labelled("Conversion after the first qualifying event", select("conversion",
      [["", "either"], ["converted", "converted"], ["not_converted", "not converted"]], rule.conversion,
      (v) => { if (v) rule.conversion = v; else delete rule.conversion; changed(); })));
  }
  fields.push(counts);
  fields.push(valueFields(rule, changed, redraw));
  return fields;
}

/** Drops an empty object member (`count: {}`), which the grammar does not accept. */
function tidy(object, key) {
  if (object[key] && Object.keys(object[key]).length === 0) delete object[key];
}

function touchpointFields(rule, changed, redraw, optional) {
  const current = rule.touchpoint ? Object.keys(rule.touchpoint)[0] : "";
  const options = BUILDER_MATCHERS.map((m) => [m, { exactly: "is", contains: "contains", startsWith: "starts with",
    endsWith: "ends with", oneOf: "is one of (comma-separated)" }[m]]);
  if (optional) options.unshift(["", "any or none"]);
  const matcher = labelled("Touchpoint", select("matcher", options, current, (v) => {
    const text = rule.touchpoint ? [].concat(Object.values(rule.touchpoint)[0]).join(",") : "";
    if (!v) delete rule.touchpoint;
    else rule.touchpoint = { [v]: v === "oneOf" ? text.split(",").filter((s) => s) : text.split(",")[0] || "" };
    redraw();
  }));
  if (!current) return [matcher];
  const value = rule.touchpoint[current];
  const text = labelled("Touchpoint text", input("touchpoint", Array.isArray(value) ? value.join(",") : value, (v) => {
    rule.touchpoint = { [current]: current === "oneOf" ? v.split(",").map((s) => s.trim()).filter((s) => s) : v };
    changed();
  }));
  return [matcher, text];
}

function timeframeFields(rule, changed, redraw) {
  const frame = rule.timeframe || {};
  const current = frame.last !== undefined ? "last" : frame.before !== undefined ? "before"
    : frame.calendar ? "calendar" : (frame.from !== undefined || frame.to !== undefined) ? "range" : "";
  const box = builderControl("div", { class: "inline" });
  box.append(labelled("Timeframe", select("timeframe", BUILDER_TIMEFRAMES, current, (v) => {
    rule.timeframe = { last: { last: "30d" }, before: { before: "30d" }, range: { from: "", to: "" },
      calendar: { calendar: { unit: "week", count: 1, timeZone: "UTC" } } }[v];
    if (!v) delete rule.timeframe;
    redraw();
  })));
  if (current === "last" || current === "before") {
    box.append(labelled("Duration (ms s m h d w)", input("duration", frame[current], (v) => {
      frame[current] = v;
      changed();
    }, { size: 6, placeholder: "30d" })));
  } else if (current === "range") {
    for (const end of ["from", "to"]) {
      box.append(labelled(end === "from" ? "From (RFC 3339, optional)" : "To (RFC 3339, optional)",
        input(end, frame[end], (v) => { if (v) frame[end] = v; else delete frame[end]; changed(); },
          { placeholder: "2022-06-01T00:00:00Z" })));
    }
  } else if (current === "calendar") {
    const calendar = frame.calendar;
    box.append(
      labelled("Unit", select("unit", [["day", "day"], ["week", "week (from Monday)"], ["month", "month"]], calendar.unit,
        (v) => { calendar.unit = v; changed(); })),
      labelled("Count", numberInput("calendar-count", calendar, "count", changed, { min: 1 })),
      labelled("Time zone", input("timeZone", calendar.timeZone, (v) => { calendar.timeZone = v; changed(); },
        { placeholder: "Europe/Amsterdam" })));
  }
  return box;
}

function valueFields(rule, changed, redraw) {
  const aggregate = rule.value ? Object.keys(rule.value)[0] : "";
  const box = builderControl("div", { class: "inline" });
  box.append(labelled("Value of the qualifying events", select("aggregate",
    [["", "not checked"], ["sum", "sum"], ["avg", "average"], ["min", "smallest"], ["max", "largest"]], aggregate,
    (v) => {
      if (v) rule.value = { [v]: aggregate ? rule.value[aggregate] : { atLeast: 0 } }; else delete rule.value;
      redraw();
    })));
  if (aggregate) {
    const bounds = rule.value[aggregate];
    box.append(
      labelled("At least", numberInput("value-atLeast", bounds, "atLeast", changed, { step: "any" })),
      labelled("At most", numberInput("value-atMost", bounds, "atMost", changed, { step: "any" })));
  }
  return box;
}

function sequenceFields(rule, changed, redraw) {
  const steps = builderControl("ol", { class: "steps" });
  rule.sequence.forEach((step, index) => {
    const remove = builderControl("button", { type: "button", class: "remove-step", text: "Remove step" });
    remove.disabled = rule.sequence.length <= 2;
    remove.addEventListener("click", () => { rule.sequence.splice(index, 1); redraw(); });
    const interaction = labelled("Interaction", select("interaction",
      [["view", "view"], ["click", "click"], ["any", "view or click"], ["conversion", "conversion"]], step.interaction,
      (v) => { step.interaction = v; redraw(); }));
    steps.append(builderControl("li", { class: "step inline" }, interaction,
      ...touchpointFields(step, changed, redraw, step.interaction === "conversion"), remove));
  });
  const add = builderControl("button", { type: "button", class: "add-step", text: "Add a step" });
  add.disabled = rule.sequence.length >= 8;
  add.addEventListener("click", () => { rule.sequence.push({ interaction: "click", touchpoint: { exactly: "" } }); redraw(); });
  const within = labelled("Last step within (of the first; optional)", input("within", rule.within, (v) => {
    if (v) rule.within = v; else delete rule.within;
    changed();
  }, { size: 6, placeholder: "1d" }));
  return [steps, add, within, timeframeFields(rule, changed, redraw)];
}
