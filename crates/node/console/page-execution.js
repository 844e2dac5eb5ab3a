// One fire (/executions/{key}): its status, note and every attempt, with a requeue when it is
// dead-lettered. It refreshes itself until the fire is finished.

import * as api from "./api.js";
import { h, mount, timeEl, statusBadge, duration, section, details, emptyRow } from "./dom.js";
import { confirmDialog, busy, notify, loadingLine } from "./ui.js";

const REFRESH_MS = 2000;
const FINISHED = new Set(["succeeded", "dead_lettered", "skipped", "cancelled"]);

export async function renderExecution(root, ctx, key) {
  ctx.setTitle(`Fire ${key}`);
  mount(root, loadingLine());
  const path = `/v1/executions/${api.seg(key)}`;
  let x = await api.get(path, { signal: ctx.signal });
  let timer = null;
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));

  function draw() {
    const requeue = x.status === "dead_lettered"
      ? h("button", { type: "button", class: "btn btn-primary", id: "exec-requeue", onclick: (e) => requeueIt(e.currentTarget) }, "Requeue")
      : null;
    mount(root,
      h("div", { class: "page-head" },
        h("div", {},
          h("div", { class: "crumbs" }, h("a", { href: `/jobs/${api.seg(x.job)}` }, x.job), " / fire"),
          h("h1", {}, h("code", { id: "exec-key" }, x.key), " ", statusBadge(x.status, { id: "exec-status" }))),
        h("div", { class: "actions" }, requeue)),
      x.note ? h("div", { class: "note", id: "exec-note" }, h("strong", {}, "Note: "), x.note) : null,
      section("Fire", details([
        ["Job", h("a", { href: `/jobs/${api.seg(x.job)}` }, x.job)],
        ["Status", statusBadge(x.status)],
        ["Kind", x.manual ? `manual trigger${x.triggered_by ? ` by ${x.triggered_by}` : ""}` : "scheduled"],
        ["Scheduled at", timeEl(x.scheduled_at)],
        ["Claimed at", timeEl(x.fired_at)],
        ["Started", timeEl(x.started_at)],
        ["Finished", timeEl(x.finished_at)],
        ["Duration", duration(x.duration_ms)],
        ["Attempts", String(x.attempts)],
        ["Last HTTP status", x.http_status ?? "—"],
        ["Worker", x.worker ?? "—"],
        ["Next attempt", timeEl(x.next_attempt_at)],
        ["Requeued by", x.requeued_by ?? "—"],
      ], { id: "exec-details", class: "details details-2" })),
      section("Attempts", attemptsTable(x.attempt_log || [])));
  }

  async function requeueIt(button) {
    const ok = await confirmDialog({ title: "Requeue this fire?", message: "It goes back to queued with the same key (the target sees the same Idempotency-Key) and a fresh retry budget: the job's max_attempts more attempts.", confirmLabel: "Requeue" });
    if (!ok) return;
    const fire = await busy(button, () => api.post(`/v1/dead-letters/${api.seg(x.key)}/requeue`));
    if (!fire) return;
    notify(`Requeued ${x.key}.`, "ok");
    await reload();
  }

  async function reload() {
    try {
      x = await api.get(path, { signal: ctx.signal });
      draw();
    } catch (err) {
      if (err.name === "AbortError") return;
    }
    poll();
  }

  function poll() {
    clearTimeout(timer);
    if (!FINISHED.has(x.status) && !ctx.signal.aborted) timer = setTimeout(reload, REFRESH_MS);
  }

  draw();
  poll();
}

function attemptsTable(log) {
  const headers = ["#", "Worker", "Started", "Finished", "Duration", "Result", "HTTP", "Error", "Response excerpt"];
  const rows = log.map((a) => h("tr", { dataset: { attempt: String(a.number) } },
    h("td", { class: "num" }, String(a.number)),
    h("td", { class: "num" }, String(a.worker)),
    h("td", {}, timeEl(a.started_at)),
    h("td", {}, timeEl(a.finished_at)),
    h("td", { class: "num" }, duration(a.duration_ms)),
    h("td", {}, statusBadge(a.result)),
    h("td", { class: "num", "data-test": "attempt-http" }, a.http_status ?? "—"),
    h("td", {}, a.error ? h("span", { class: "error-text" }, a.error) : h("span", { class: "muted" }, "—")),
    h("td", {}, a.body_excerpt ? h("pre", { class: "excerpt" }, a.body_excerpt) : h("span", { class: "muted" }, "—"))));
  if (!rows.length) rows.push(emptyRow(headers.length, "No attempt yet."));
  return h("table", { class: "table", id: "attempts-table" },
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}
