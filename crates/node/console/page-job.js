// One job: its actions (pause/resume, trigger, edit, delete, each confirmed), its schedule in
// words and the next 10 instants, its spec, and its history of fires, paged and kept fresh.

import * as api from "./api.js";
import { h, mount, timeEl, localTime, utcTime, relative, statusBadge, duration, section, details, emptyRow, pretty } from "./dom.js";
import { CursorPager, confirmDialog, busy, notify, errorBox, loadingLine } from "./ui.js";

const HISTORY_PAGE = 20;
const HISTORY_REFRESH_MS = 3000;
const SPEC_FIELDS = ["name", "schedule", "target", "overlap", "misfire", "retry", "history", "paused"];

/** The spec part of a job view (what a create or replace takes). */
export function specOf(view) {
  return Object.fromEntries(SPEC_FIELDS.filter((k) => k in view).map((k) => [k, view[k]]));
}

export async function renderJob(root, ctx, name) {
  ctx.setTitle(name);
  mount(root, loadingLine());
  const base = `/v1/jobs/${api.seg(name)}`;
  let job = await api.get(base, { signal: ctx.signal });

  const head = h("div", { class: "page-head" });
  const summary = h("div", {});
  const upcoming = h("div", { id: "upcoming" }, loadingLine());
  const spec = h("pre", { class: "code", id: "job-spec" });
  const historyBody = h("div", { class: "table-wrap", id: "history", dataset: { ready: "false" } });
  const historyPager = h("div", { class: "pager-host" });
  const refresh = h("button", { type: "button", class: "btn btn-quiet", id: "history-refresh" }, "Refresh");

  mount(root, head,
    h("div", { class: "grid-2" },
      section("Schedule", summary),
      section("Next 10 fires", upcoming)),
    section("History", [historyBody, historyPager], refresh, { id: "history-card" }),
    section("Spec", spec, copyButton(spec)));

  const pager = new CursorPager();
  let historySeq = 0;
  async function loadHistory() {
    const mine = ++historySeq;
    const q = api.query({ job: name, limit: HISTORY_PAGE, cursor: pager.cursor });
    let page;
    try {
      page = await api.get(`/v1/executions${q}`, { signal: ctx.signal });
    } catch (err) {
      if (mine !== historySeq || err.name === "AbortError" || err.status === 401) return;
      mount(historyBody, errorBox(err));
      return;
    }
    if (mine !== historySeq) return;
    pager.next = page.next_cursor || null;
    mount(historyBody, historyTable(page.executions));
    mount(historyPager, pager.controls(loadHistory, "history"));
    historyBody.dataset.ready = "true";
  }

  function draw() {
    mount(head,
      h("div", {},
        h("div", { class: "crumbs" }, h("a", { href: "/" }, "Jobs"), " / "),
        h("h1", { id: "job-name" }, job.name, " ",
          job.paused ? h("span", { class: "pill pill-warn", id: "job-paused" }, "paused") : null,
          job.last_status ? statusBadge(job.last_status, { title: "status of the newest finished fire" }) : null)),
      actions());
    mount(summary,
      h("p", { class: "description", id: "job-description" }, job.description),
      details([
        ["Next fire", job.next_fire_at ? [timeEl(job.next_fire_at), " ", h("span", { class: "rel" }, relative(job.next_fire_at))] : job.paused ? "none while paused" : "none (the schedule is exhausted)"],
        ["Time zone", job.schedule.timezone || "UTC"],
        ["Target", [h("span", { class: "method" }, job.target.method), " ", h("code", { class: "url" }, job.target.url)]],
        ["Version", String(job.version)],
        ["Created", [timeEl(job.created_at), job.created_by ? ` by ${job.created_by}` : ""]],
        ["Updated", [timeEl(job.updated_at), job.updated_by ? ` by ${job.updated_by}` : ""]],
      ]));
    spec.textContent = pretty(specOf(job));
  }

  async function loadUpcoming() {
    try {
      const up = await api.get(`${base}/upcoming?count=10`, { signal: ctx.signal });
      const rows = up.instants.map((iso, i) => h("tr", {}, h("td", { class: "num" }, String(i + 1)), h("td", {}, localTime(iso)), h("td", { class: "muted" }, utcTime(iso))));
      if (!rows.length) rows.push(emptyRow(3, job.paused ? "No upcoming fires while the job is paused." : "No upcoming fires."));
      mount(upcoming,
        h("table", { class: "table table-compact", id: "upcoming-table" },
          h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Local time"), h("th", {}, "UTC"))),
          h("tbody", {}, rows)));
    } catch (err) {
      if (err.name !== "AbortError" && err.status !== 401) mount(upcoming, errorBox(err));
    }
  }

  function actions() {
    const pauseResume = job.paused
      ? h("button", { type: "button", class: "btn", id: "job-resume", onclick: (e) => change(e.currentTarget, "resume") }, "Resume")
      : h("button", { type: "button", class: "btn", id: "job-pause", onclick: (e) => change(e.currentTarget, "pause") }, "Pause");
    return h("div", { class: "actions" },
      pauseResume,
      h("button", { type: "button", class: "btn", id: "job-trigger", onclick: (e) => trigger(e.currentTarget) }, "Trigger now"),
      h("a", { class: "btn", id: "job-edit", href: `/jobs/${api.seg(job.name)}/edit` }, "Edit"),
      h("button", { type: "button", class: "btn btn-danger-quiet", id: "job-delete", onclick: (e) => remove(e.currentTarget) }, "Delete"));
  }

  async function change(button, verb) {
    const ok = await confirmDialog(verb === "pause"
      ? { title: `Pause ${job.name}?`, message: "No new fires are claimed while it is paused; a fire already claimed still finishes.", confirmLabel: "Pause" }
      : { title: `Resume ${job.name}?`, message: `Fires missed while it was paused follow its misfire policy (${job.misfire.policy.replace(/_/g, " ")}, grace ${job.misfire.grace}).`, confirmLabel: "Resume" });
    if (!ok) return;
    const updated = await busy(button, () => api.post(`${base}/${verb}`));
    if (!updated) return;
    job = updated;
    draw();
    loadUpcoming();
    notify(verb === "pause" ? `${job.name} is paused.` : `${job.name} is running again.`, "ok");
  }

  async function trigger(button) {
    const ok = await confirmDialog({ title: `Trigger ${job.name} now?`, message: "This fires the job once, now, outside its schedule (even when paused). The schedule does not move.", confirmLabel: "Trigger" });
    if (!ok) return;
    const fire = await busy(button, () => api.post(`${base}/trigger`));
    if (!fire) return;
    notify("Triggered: ", "ok", h("a", { href: `/executions/${api.seg(fire.key)}`, id: "triggered-link", dataset: { key: fire.key } }, `fire ${fire.key}`), { id: "trigger-notice" });
    pager.reset();
    loadHistory();
  }

  async function remove(button) {
    const ok = await confirmDialog({ title: `Delete ${job.name}?`, message: "The job is removed at once and its name is free again. Fires already claimed still finish; then its history is forgotten. This cannot be undone.", confirmLabel: "Delete job", danger: true });
    if (!ok) return;
    const done = await busy(button, () => api.del(base).then(() => true));
    if (!done) return;
    ctx.navigate("/");
    notify(`Job ${job.name} was deleted.`, "ok");
  }

  refresh.addEventListener("click", () => loadHistory());
  draw();
  await Promise.all([loadUpcoming(), loadHistory()]);

  // The first page of the history follows new fires and status changes on its own.
  const timer = setInterval(() => {
    if (!document.hidden && pager.page === 1) loadHistory();
  }, HISTORY_REFRESH_MS);
  ctx.signal.addEventListener("abort", () => clearInterval(timer));
}

function historyTable(executions) {
  const headers = ["Scheduled", "Status", "Attempts", "HTTP", "Duration", "Worker", "Kind", "Key"];
  const rows = executions.map((x) => h("tr", { class: "row-link", dataset: { key: x.key, status: x.status } },
    h("td", {}, h("a", { href: `/executions/${api.seg(x.key)}`, "data-test": "execution-link" }, timeEl(x.scheduled_at))),
    h("td", {}, statusBadge(x.status)),
    h("td", { class: "num" }, String(x.attempts)),
    h("td", { class: "num" }, x.http_status ?? "—"),
    h("td", { class: "num" }, duration(x.duration_ms)),
    h("td", { class: "num" }, x.worker ?? "—"),
    h("td", {}, x.manual ? h("span", { class: "pill pill-quiet" }, "manual") : "scheduled"),
    h("td", {}, h("code", { class: "key" }, x.key))));
  if (!rows.length) rows.push(emptyRow(headers.length, "No fires yet."));
  return h("table", { class: "table", id: "history-table" },
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

function copyButton(pre) {
  const b = h("button", { type: "button", class: "btn btn-quiet", id: "copy-spec" }, "Copy JSON");
  b.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(pre.textContent);
      b.textContent = "Copied";
    } catch {
      b.textContent = "Copy failed";
    }
    setTimeout(() => { b.textContent = "Copy JSON"; }, 1500);
  });
  return b;
}
