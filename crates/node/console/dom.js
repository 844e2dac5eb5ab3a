// DOM building and formatting shared by every page. Values from the API only ever reach the
// page through textContent and attributes set here, never as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Applies `attrs` to `el`: `class`, `text`, `on*` handlers (functions), `dataset`, booleans. */
function applyAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) {
      // Handlers are listeners only: an on* attribute would be inline script.
      if (typeof value === "function") el.addEventListener(key.slice(2), value);
    }
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** `h("a", {href: "/"}, "Jobs")`: an element with attributes and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  return append(el, children);
}

/** Like `h`, for SVG elements. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  return append(el, children);
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const timeParts = { hour: "2-digit", minute: "2-digit", second: "2-digit" };
const sameYearFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", ...timeParts });
const otherYearFormat = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", ...timeParts });

/** The instant `iso` in the browser's zone ("Mar 29, 03:30:00"; the year only when not this year). */
export function localTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (d.getFullYear() === new Date().getFullYear() ? sameYearFormat : otherYearFormat).format(d);
}

/** The instant `iso` as UTC without milliseconds ("2026-03-29 01:30:00 UTC"). */
export function utcTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A `<time>` in local time with the UTC instant on hover; a dash for none. */
export function timeEl(iso, attrs = {}) {
  if (!iso) return h("span", { class: "muted", ...attrs }, "—");
  return h("time", { datetime: iso, title: utcTime(iso), ...attrs }, localTime(iso));
}

/** "in 8 s", "3 min ago": the distance from now to `iso`. */
export function relative(iso) {
  const ms = new Date(iso).getTime() - Date.now();
  if (Number.isNaN(ms)) return "";
  const abs = Math.abs(ms) / 1000;
  const [n, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [abs / 60, "min"] : abs < 86400 ? [abs / 3600, "h"] : [abs / 86400, "d"];
  const text = `${Math.round(n)} ${unit}`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** A duration in milliseconds as "41 ms", "4.3 s", "2 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

const STATUS_TONE = {
  succeeded: "ok", success: "ok", dead_lettered: "bad", permanent: "bad", retry_waiting: "warn",
  retryable: "warn", dispatched: "info", queued: "info", skipped: "muted", cancelled: "muted",
};

/** A coloured pill for an execution or attempt status. */
export function statusBadge(status, attrs = {}) {
  if (!status) return h("span", { class: "muted", ...attrs }, "—");
  const tone = STATUS_TONE[status] || "muted";
  return h("span", { class: `pill pill-${tone}`, dataset: { status }, ...attrs }, status.replace(/_/g, " "));
}

/** A section with a heading, optional actions on the right, and a body. */
export function section(title, body, actions = null, attrs = {}) {
  return h("section", { class: "card", ...attrs },
    h("div", { class: "card-head" }, h("h2", {}, title), actions ? h("div", { class: "card-actions" }, actions) : null),
    body);
}

/** A table with a header row; `rows` are arrays of cells or ready `<tr>`s. */
export function table(headers, rows, attrs = {}) {
  const head = h("thead", {}, h("tr", {}, headers.map((c) => h("th", {}, c))));
  const body = h("tbody", {}, rows.map((r) => (r instanceof Node ? r : h("tr", {}, r.map((c) => h("td", {}, c))))));
  return h("table", { class: "table", ...attrs }, head, body);
}

/** A placeholder row spanning every column. */
export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
}

/** A definition list from `[label, value]` pairs. */
export function details(pairs, attrs = {}) {
  return h("dl", { class: "details", ...attrs }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Pretty JSON for display. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}
