// Dead letters (/dead-letters): the queue newest first, filtered by job, with requeue of one,
// of the selected or of all (of the job when filtered), and purge of the selected, confirmed.

import * as api from "./api.js";
import { h, mount, timeEl, emptyRow } from "./dom.js";
import { CursorPager, confirmDialog, busy, notify, errorBox } from "./ui.js";

const PAGE_SIZE = 50;

export async function renderDeadLetters(root, ctx) {
  const params = new URLSearchParams(location.search);
  let job = params.get("job") || "";
  const pager = new CursorPager();
  const selected = new Set();

  const jobInput = h("input", { type: "search", id: "dl-job", placeholder: "Job name (exact)", value: job, autocomplete: "off", spellcheck: "false", "aria-label": "Filter by job", "data-field": "job" });
  const jobError = h("p", { class: "field-error", "data-error-for": "job", id: "dl-job-error", hidden: true });
  const filter = h("form", { class: "toolbar", id: "dl-filter", novalidate: true }, jobInput, h("button", { type: "submit", class: "btn" }, "Filter"),
    h("button", { type: "button", class: "btn btn-quiet", id: "dl-clear-filter", onclick: () => { jobInput.value = ""; apply(); } }, "All jobs"), jobError);
  const requeueSelected = h("button", { type: "button", class: "btn", id: "dl-requeue-selected", disabled: true }, "Requeue selected");
  const purgeSelected = h("button", { type: "button", class: "btn btn-danger-quiet", id: "dl-purge-selected", disabled: true }, "Purge selected");
  const requeueAll = h("button", { type: "button", class: "btn", id: "dl-requeue-all" }, "Requeue all");
  const list = h("div", { class: "table-wrap", id: "dead-letters", dataset: { ready: "false" } });
  const pagerHost = h("div", { class: "pager-host" });
  const selection = h("span", { class: "muted", id: "dl-selection" });

  mount(root,
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Dead letters"),
        h("p", { class: "muted page-intro" }, "Fires whose attempts ran out, or whose target refused them for good. A requeue delivers one again with the same key and a fresh retry budget; a purge forgets it."))),
    h("section", { class: "card" }, filter,
      h("div", { class: "toolbar" }, requeueSelected, purgeSelected, selection, h("span", { class: "spacer" }), requeueAll),
      list, pagerHost));

  const updateSelection = () => {
    requeueSelected.disabled = purgeSelected.disabled = selected.size === 0;
    selection.textContent = selected.size ? `${selected.size} selected` : "";
    requeueAll.textContent = job ? `Requeue all of ${job}` : "Requeue all";
  };

  let seq = 0;
  async function load() {
    const mine = ++seq;
    list.dataset.ready = "false";
    history.replaceState(null, "", `/dead-letters${api.query({ job })}`);
    let page;
    try {
      page = await api.get(`/v1/dead-letters${api.query({ job, limit: PAGE_SIZE, cursor: pager.cursor })}`, { signal: ctx.signal });
    } catch (err) {
      if (mine !== seq || err.name === "AbortError" || err.status === 401) return;
      if (err.field === "job") {
        jobError.textContent = err.message;
        jobError.hidden = false;
        mount(list);
      } else mount(list, errorBox(err));
      list.dataset.ready = "true";
      return;
    }
    if (mine !== seq) return;
    jobError.hidden = true;
    pager.next = page.next_cursor || null;
    selected.clear();
    mount(list, table(page.executions));
    mount(pagerHost, pager.controls(load, "dl"));
    updateSelection();
    list.dataset.ready = "true";
  }

  function apply() {
    job = jobInput.value.trim();
    pager.reset();
    load();
  }
  filter.addEventListener("submit", (e) => {
    e.preventDefault();
    apply();
  });

  function table(executions) {
    const all = h("input", { type: "checkbox", id: "dl-select-all", "aria-label": "Select every dead letter on this page" });
    const boxes = [];
    const rows = executions.map((x) => {
      const box = h("input", { type: "checkbox", class: "dl-check", "aria-label": `Select ${x.key}`, dataset: { key: x.key } });
      boxes.push(box);
      box.addEventListener("change", () => {
        if (box.checked) selected.add(x.key);
        else selected.delete(x.key);
        all.checked = boxes.every((b) => b.checked);
        updateSelection();
      });
      const last = (x.attempt_log && x.attempt_log[x.attempt_log.length - 1]) || null;
      return h("tr", { dataset: { key: x.key } },
        h("td", { class: "check-cell" }, box),
        h("td", {}, h("a", { href: `/executions/${api.seg(x.key)}`, "data-test": "execution-link" }, h("code", { class: "key" }, x.key))),
        h("td", {}, h("a", { href: `/jobs/${api.seg(x.job)}` }, x.job)),
        h("td", {}, timeEl(x.scheduled_at)),
        h("td", {}, timeEl(x.finished_at)),
        h("td", { class: "num" }, String(x.attempts)),
        h("td", { class: "num" }, x.http_status ?? "—"),
        h("td", { class: "error-text" }, x.note || (last && last.error) || ""),
        h("td", {}, h("button", { type: "button", class: "btn btn-small", "data-test": "requeue-one", onclick: (e) => requeueOne(e.currentTarget, x.key) }, "Requeue")));
    });
    all.addEventListener("change", () => {
      for (const b of boxes) {
        b.checked = all.checked;
        if (all.checked) selected.add(b.dataset.key);
        else selected.delete(b.dataset.key);
      }
      updateSelection();
    });
    if (!rows.length) rows.push(emptyRow(9, job ? `No dead letters for ${job}.` : "No dead letters. Every finished fire was delivered or skipped."));
    return h("table", { class: "table", id: "dead-letters-table" },
      h("thead", {}, h("tr", {}, h("th", { class: "check-cell" }, all), ["Key", "Job", "Scheduled", "Dead-lettered", "Attempts", "HTTP", "Why", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows));
  }

  async function requeueOne(button, key) {
    const ok = await confirmDialog({ title: "Requeue this fire?", message: `${key} goes back to queued with its key and a fresh retry budget.`, confirmLabel: "Requeue" });
    if (!ok) return;
    const fire = await busy(button, () => api.post(`/v1/dead-letters/${api.seg(key)}/requeue`));
    if (!fire) return;
    notify(`Requeued ${key}.`, "ok", h("a", { href: `/executions/${api.seg(key)}` }, "Follow it"));
    load();
  }

  async function bulk(button, verb, body, what) {
    const purge = verb === "purge";
    const ok = await confirmDialog({
      title: purge ? `Purge ${what}?` : `Requeue ${what}?`,
      message: purge ? "Purged dead letters are forgotten for good: their attempts and answers cannot be looked at again." : "Each goes back to queued with its key and a fresh retry budget.",
      confirmLabel: purge ? "Purge" : "Requeue",
      danger: purge,
    });
    if (!ok) return;
    const out = await busy(button, () => api.post(`/v1/dead-letters/${verb}`, body));
    if (!out) return;
    notify(`${purge ? "Purged" : "Requeued"} ${out.count} dead letter${out.count === 1 ? "" : "s"}.`, "ok", null, { id: "dl-result", dataset: { count: String(out.count) } });
    pager.reset();
    load();
  }

  requeueSelected.addEventListener("click", () => bulk(requeueSelected, "requeue", { keys: [...selected] }, `${selected.size} selected dead letter${selected.size === 1 ? "" : "s"}`));
  purgeSelected.addEventListener("click", () => bulk(purgeSelected, "purge", { keys: [...selected] }, `${selected.size} selected dead letter${selected.size === 1 ? "" : "s"}`));
  requeueAll.addEventListener("click", () => bulk(requeueAll, "requeue", job ? { job } : { all: true }, job ? `every dead letter of ${job}` : "every dead letter in the cluster"));
  updateSelection();
  await load();
}
