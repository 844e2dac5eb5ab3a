// The job form's fields: built from a spec, read back into a spec, and the slots where a
// server validation error is shown next to the field its `field` path names.
//
// An empty optional field is left out of the spec, so the cluster's defaults apply (docs/API.md,
// "Jobs"); a value that does not parse is sent as typed, and the server's answer names it.

import { h } from "./dom.js";

const DURATION_HINT = "e.g. 500ms, 30s, 5m, 1h30m, 7d";

/** `schedule.cron` → `f-schedule-cron`: the id of the input for a field path. */
const inputId = (path) => `f-${path.replace(/[._]/g, "-")}`;

function errorSlot(path) {
  return h("p", { class: "field-error", id: `err-${inputId(path).slice(2)}`, "data-error-for": path, role: "alert", hidden: true });
}

/** A labelled input with a hint and an error slot; `control` defaults to a text input. */
function field(path, label, { hint = "", control = null, placeholder = "", type = "text", wide = false, span = 1 } = {}) {
  const input = control || h("input", { type, placeholder, autocomplete: "off", spellcheck: "false" });
  input.id = inputId(path);
  input.dataset.field = path;
  input.setAttribute("aria-describedby", `err-${inputId(path).slice(2)}`);
  const cls = wide ? "field field-wide" : span === 2 ? "field field-span2" : "field";
  return h("div", { class: cls, "data-field-wrap": path },
    h("label", { class: "label", for: input.id }, label), input,
    hint ? h("p", { class: "hint" }, hint) : null, errorSlot(path));
}

function select(options) {
  return h("select", {}, options.map(([value, text]) => h("option", { value }, text)));
}

function headerRow(name = "", value = "") {
  const remove = h("button", { type: "button", class: "btn btn-quiet btn-small", "aria-label": "Remove header" }, "Remove");
  const row = h("div", { class: "header-row", "data-test": "header-row" },
    h("input", { type: "text", class: "header-name", placeholder: "Header-Name", value: name, autocomplete: "off", spellcheck: "false", "aria-label": "Header name" }),
    h("input", { type: "text", class: "header-value", placeholder: "value", value, autocomplete: "off", spellcheck: "false", "aria-label": "Header value" }),
    remove);
  remove.addEventListener("click", () => row.remove());
  return row;
}

function zones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return [];
  }
}

/** Builds the form's fields; `editing` fixes the name (a replace keeps it). */
export function buildFields({ editing }) {
  const kind = ["cron", "every", "at"].map((k) => h("input", { type: "radio", name: "schedule-kind", value: k, id: `f-kind-${k}` }));
  const headers = h("div", { class: "headers", id: inputId("target.headers"), "data-field": "target.headers" });
  const addHeader = h("button", { type: "button", class: "btn btn-quiet btn-small", id: "add-header" }, "Add header");
  addHeader.addEventListener("click", () => headers.append(headerRow()));
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zoneList = h("datalist", { id: "zone-list" }, zones().map((z) => h("option", { value: z })));
  const zoneInput = h("input", { type: "text", placeholder: "UTC", list: "zone-list", autocomplete: "off", spellcheck: "false" });

  const f = {
    name: field("name", "Name", { placeholder: "nightly-report", hint: editing ? "A job's name cannot change; create a new job to rename it." : "Lowercase letters, digits, '.', '_' and '-'; starts with a letter or digit." }),
    paused: h("label", { class: "check", for: "f-paused" }, h("input", { type: "checkbox", id: "f-paused", "data-field": "paused" }), "Paused (claims no fires until resumed)"),
    cron: field("schedule.cron", "Cron expression", { placeholder: "0 30 2 * * MON-FRI", hint: "5 fields (minute first) or 6 (seconds first), or @hourly, @daily…" }),
    timezone: field("schedule.timezone", "Time zone", { control: zoneInput, hint: `IANA name; UTC when empty. Your browser: ${browserZone}.` }),
    every: field("schedule.every", "Every", { placeholder: "30s", hint: `A period of at least 1 s: ${DURATION_HINT}` }),
    at: field("schedule.at", "At", { placeholder: "2026-12-01T09:00:00Z", hint: "One RFC 3339 instant." }),
    start_at: field("schedule.start_at", "Not before", { placeholder: "optional, RFC 3339" }),
    end_at: field("schedule.end_at", "Not after", { placeholder: "optional, RFC 3339" }),
    jitter: field("schedule.jitter", "Jitter", { placeholder: "none", hint: "Each fire is delayed by up to this much." }),
    url: field("target.url", "URL", { placeholder: "https://service.internal/run", type: "url", span: 2 }),
    method: field("target.method", "Method", { control: select(["POST", "GET", "PUT", "PATCH", "DELETE", "HEAD"].map((m) => [m, m])) }),
    timeout: field("target.timeout", "Timeout", { placeholder: "30s", hint: "Per attempt, 1 ms to 15 min." }),
    body: field("target.body", "Body", { control: h("textarea", { rows: 4, spellcheck: "false", placeholder: "{\"kind\": \"nightly\"}" }), wide: true, hint: "Up to 64 KiB. A JSON body goes with Content-Type: application/json unless a header says otherwise." }),
    overlap: field("overlap", "Overlap", { control: select([["allow", "allow: fires run concurrently"], ["forbid", "forbid: skip while one runs"], ["buffer_one", "buffer_one: one waits, more are skipped"]]) }),
    misfirePolicy: field("misfire.policy", "Misfire policy", { control: select([["fire_once", "fire_once: coalesce missed fires"], ["fire_all", "fire_all: deliver each, late"], ["skip", "skip: record as skipped"]]) }),
    misfireGrace: field("misfire.grace", "Misfire grace", { placeholder: "60s", hint: "How late a fire may be and still count as on time." }),
    maxAttempts: field("retry.max_attempts", "Max attempts", { placeholder: "3", type: "text" }),
    initialBackoff: field("retry.initial_backoff", "Initial backoff", { placeholder: "1s" }),
    maxBackoff: field("retry.max_backoff", "Max backoff", { placeholder: "60s" }),
    maxAge: field("retry.max_age", "Give up after", { placeholder: "1h", hint: "No retry starts later than this after the claim." }),
    historyCount: field("history.max_count", "Keep fires", { placeholder: "100", hint: "Newest finished fires kept, 1 to 10,000." }),
    historyAge: field("history.max_age", "Keep for", { placeholder: "no limit", hint: DURATION_HINT }),
  };
  const input = (wrap) => wrap.querySelector("input, select, textarea");
  if (editing) input(f.name).readOnly = true;

  const kindRow = h("div", { class: "field field-wide", "data-field-wrap": "schedule" },
    h("span", { class: "label" }, "Kind"),
    h("div", { class: "segmented", role: "radiogroup", "aria-label": "Schedule kind" },
      kind.map((r) => h("label", { for: r.id }, r, { cron: "Cron", every: "Every", at: "Once at" }[r.value]))),
    errorSlot("schedule"));

  const showKind = () => {
    const k = kind.find((r) => r.checked)?.value || "cron";
    f.cron.hidden = k !== "cron";
    f.timezone.hidden = k !== "cron";
    f.every.hidden = k !== "every";
    f.at.hidden = k !== "at";
  };
  kind.forEach((r) => r.addEventListener("change", showKind));

  const groups = [
    h("fieldset", { class: "group" }, h("legend", {}, "Job"), h("div", { class: "fields" }, f.name, h("div", { class: "field field-check" }, f.paused, errorSlot("paused")))),
    h("fieldset", { class: "group", id: "schedule-group" }, h("legend", {}, "Schedule"), zoneList,
      h("div", { class: "fields" }, kindRow, f.cron, f.timezone, f.every, f.at, f.jitter, f.start_at, f.end_at)),
    h("fieldset", { class: "group" }, h("legend", {}, "Target"),
      h("div", { class: "fields" }, f.method, f.url, f.timeout,
        h("div", { class: "field field-wide", "data-field-wrap": "target.headers" },
          h("span", { class: "label" }, "Headers"), headers, addHeader,
          h("p", { class: "hint" }, "A value shown as <redacted> is a stored secret: leave it to keep it, or type a new value."),
          errorSlot("target.headers")),
        f.body)),
    h("fieldset", { class: "group" }, h("legend", {}, "Policies"),
      h("div", { class: "fields" }, f.overlap, f.misfirePolicy, f.misfireGrace, f.maxAttempts, f.initialBackoff, f.maxBackoff, f.maxAge, f.historyCount, f.historyAge,
        errorSlot("retry"), errorSlot("misfire"), errorSlot("history"))),
  ];

  const val = (wrap) => input(wrap).value.trim();
  const set = (wrap, v) => { input(wrap).value = v ?? ""; };
  const opt = (obj, key, v) => { if (v !== "") obj[key] = v; };
  const num = (v) => (/^\d+$/.test(v) ? Number(v) : v);

  /** The schedule as the fields say it. */
  function readSchedule() {
    const k = kind.find((r) => r.checked)?.value || "cron";
    const sch = {};
    if (k === "cron") {
      sch.cron = val(f.cron);
      opt(sch, "timezone", val(f.timezone));
    } else if (k === "every") sch.every = val(f.every);
    else sch.at = val(f.at);
    opt(sch, "jitter", val(f.jitter));
    opt(sch, "start_at", val(f.start_at));
    opt(sch, "end_at", val(f.end_at));
    return sch;
  }

  /** The whole spec as the fields say it. */
  function read() {
    const target = { url: val(f.url), method: val(f.method) };
    const hs = {};
    for (const row of headers.querySelectorAll(".header-row")) {
      const n = row.querySelector(".header-name").value.trim();
      if (n) hs[n] = row.querySelector(".header-value").value;
    }
    if (Object.keys(hs).length) target.headers = hs;
    if (input(f.body).value !== "") target.body = input(f.body).value;
    opt(target, "timeout", val(f.timeout));
    const misfire = { policy: val(f.misfirePolicy) };
    opt(misfire, "grace", val(f.misfireGrace));
    const retry = {};
    opt(retry, "max_attempts", num(val(f.maxAttempts)));
    opt(retry, "initial_backoff", val(f.initialBackoff));
    opt(retry, "max_backoff", val(f.maxBackoff));
    opt(retry, "max_age", val(f.maxAge));
    const history = {};
    opt(history, "max_count", num(val(f.historyCount)));
    opt(history, "max_age", val(f.historyAge));
    const spec = { name: val(f.name), schedule: readSchedule(), target, overlap: val(f.overlap), misfire };
    if (Object.keys(retry).length) spec.retry = retry;
    if (Object.keys(history).length) spec.history = history;
    spec.paused = document.getElementById("f-paused").checked;
    return spec;
  }

  /** Sets every field from `spec` (a job view or anything shaped like a spec). */
  function fill(spec) {
    const sch = spec.schedule || {};
    const k = sch.every !== undefined ? "every" : sch.at !== undefined ? "at" : "cron";
    kind.forEach((r) => { r.checked = r.value === k; });
    set(f.name, spec.name);
    set(f.cron, sch.cron);
    set(f.timezone, sch.timezone);
    set(f.every, sch.every);
    set(f.at, sch.at);
    set(f.jitter, sch.jitter);
    set(f.start_at, sch.start_at);
    set(f.end_at, sch.end_at);
    const t = spec.target || {};
    set(f.url, t.url);
    set(f.method, t.method || "POST");
    set(f.timeout, t.timeout);
    set(f.body, t.body);
    headers.replaceChildren(...Object.entries(t.headers || {}).map(([n, v]) => headerRow(n, v)));
    set(f.overlap, spec.overlap || "allow");
    set(f.misfirePolicy, spec.misfire?.policy || "fire_once");
    set(f.misfireGrace, spec.misfire?.grace);
    set(f.maxAttempts, spec.retry?.max_attempts);
    set(f.initialBackoff, spec.retry?.initial_backoff);
    set(f.maxBackoff, spec.retry?.max_backoff);
    set(f.maxAge, spec.retry?.max_age);
    set(f.historyCount, spec.history?.max_count);
    set(f.historyAge, spec.history?.max_age);
    document.getElementById("f-paused").checked = Boolean(spec.paused);
    showKind();
  }

  const scheduleGroup = groups[1];
  return { groups, read, readSchedule, fill, scheduleGroup };
}

/**
 * The error slot for a server `field` path inside `root`: the exact path, else the nearest
 * enclosing one (`target.headers.X-Key` → `target.headers`); null when no slot covers it.
 */
export function slotFor(root, path) {
  let p = String(path || "").replace(/\[\d+\]/g, "");
  while (p) {
    const slot = root.querySelector(`[data-error-for="${CSS.escape(p)}"]`);
    if (slot) return slot;
    const cut = p.lastIndexOf(".");
    p = cut > 0 ? p.slice(0, cut) : "";
  }
  return null;
}

/** Shows `message` in `slot` and marks its field invalid. */
export function showFieldError(root, slot, message) {
  slot.textContent = message;
  slot.hidden = false;
  const path = slot.dataset.errorFor;
  const control = root.querySelector(`[data-field="${CSS.escape(path)}"]`);
  if (control) control.setAttribute("aria-invalid", "true");
  slot.closest(".field")?.classList.add("has-error");
  return control;
}

/** Clears the error slots whose path starts with `prefix` (all of them for ""). */
export function clearFieldErrors(root, prefix = "") {
  for (const slot of root.querySelectorAll("[data-error-for]")) {
    const path = slot.dataset.errorFor;
    if (prefix && path !== prefix && !path.startsWith(`${prefix}.`)) continue;
    slot.hidden = true;
    slot.textContent = "";
    slot.closest(".field")?.classList.remove("has-error");
    root.querySelector(`[data-field="${CSS.escape(path)}"]`)?.removeAttribute("aria-invalid");
  }
}
