// The home page: the live chart, and the jobs one page of 50 at a time (cursor paging, never the
// whole list), with a name-prefix search and the paused / failing filters kept in the URL.

import * as api from "./api.js";
import { h, mount, timeEl, relative, statusBadge, emptyRow, debounce } from "./dom.js";
import { CursorPager, errorBox } from "./ui.js";
import { mountChart } from "./chart.js";

const PAGE_SIZE = 50;

function filtersFromUrl() {
  const q = new URLSearchParams(location.search);
  return {
    prefix: q.get("prefix") || "",
    paused: ["true", "false"].includes(q.get("paused")) ? q.get("paused") : "",
    failing: q.get("failing") === "true",
  };
}

function filtersToUrl(f, stack) {
  const search = api.query({ prefix: f.prefix, paused: f.paused, failing: f.failing ? "true" : "" });
  history.replaceState({ jobsStack: stack }, "", `/${search}`);
}

export async function renderJobs(root, ctx) {
  const filters = filtersFromUrl();
  const pager = new CursorPager();
  if (history.state && Array.isArray(history.state.jobsStack)) pager.stack = history.state.jobsStack.slice();

  const chartHost = h("div", { class: "chart-host", id: "live-chart" });
  const count = h("span", { class: "count", id: "jobs-count" }, "");
  const search = h("input", { type: "search", id: "job-search", placeholder: "Name starts with…", value: filters.prefix, autocomplete: "off", spellcheck: "false", "aria-label": "Search jobs by name prefix" });
  const paused = h("select", { id: "filter-paused", "aria-label": "Paused filter" },
    h("option", { value: "" }, "Paused or not"),
    h("option", { value: "false" }, "Active only"),
    h("option", { value: "true" }, "Paused only"));
  paused.value = filters.paused;
  const failing = h("input", { type: "checkbox", id: "filter-failing", checked: filters.failing });
  const list = h("div", { class: "table-wrap", id: "jobs", dataset: { ready: "false" } });
  const pagerHost = h("div", { class: "pager-host" });

  mount(root,
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Jobs"), count),
      h("a", { href: "/new-job", class: "btn btn-primary", id: "new-job-link" }, "New job")),
    chartHost,
    h("section", { class: "card" },
      h("div", { class: "toolbar" },
        search, paused,
        h("label", { class: "check", for: "filter-failing" }, failing, "Failing only"),
        h("span", { class: "toolbar-hint muted" }, "Failing: the newest finished fire was dead-lettered, or a fire is waiting to retry.")),
      list, pagerHost));

  mountChart(chartHost, ctx.signal);

  let sequence = 0;
  async function load() {
    const mine = ++sequence;
    list.dataset.ready = "false";
    list.setAttribute("aria-busy", "true");
    filtersToUrl(filters, pager.stack);
    const params = { limit: PAGE_SIZE, cursor: pager.cursor, prefix: filters.prefix, paused: filters.paused, failing: filters.failing ? "true" : "" };
    let page;
    try {
      page = await api.get(`/v1/jobs${api.query(params)}`, { signal: ctx.signal });
    } catch (err) {
      if (mine !== sequence || err.name === "AbortError" || err.status === 401) return;
      if (err.field === "cursor" && pager.page > 1) {
        pager.reset();
        load();
        return;
      }
      mount(list, errorBox(err));
      list.dataset.ready = "true";
      return;
    }
    if (mine !== sequence) return; // a newer search or page is on its way
    pager.next = page.next_cursor || null;
    renderCount(count, page, filters);
    mount(list, jobsTable(page.jobs, pager, filters));
    mount(pagerHost, pager.controls(load, "page"));
    list.dataset.ready = "true";
    list.dataset.page = String(pager.page);
    list.removeAttribute("aria-busy");
  }

  const refilter = () => {
    pager.reset();
    load();
  };
  search.addEventListener("input", debounce(() => {
    filters.prefix = search.value.trim();
    refilter();
  }, 250));
  paused.addEventListener("change", () => {
    filters.paused = paused.value;
    refilter();
  });
  failing.addEventListener("change", () => {
    filters.failing = failing.checked;
    refilter();
  });
  await load();
}

function renderCount(el, page, filters) {
  const total = page.total ?? null;
  const matching = page.matching ?? null;
  el.dataset.total = total === null ? "" : String(total);
  el.dataset.matching = matching === null ? "" : String(matching);
  if (total === null || matching === null) {
    el.textContent = "";
    return;
  }
  const filtered = filters.prefix || filters.paused || filters.failing;
  el.textContent = filtered ? `${matching.toLocaleString()} of ${total.toLocaleString()} jobs match` : `${total.toLocaleString()} jobs`;
}

function jobsTable(jobs, pager, filters) {
  const headers = ["Name", "Schedule", "Target", "Next fire", "Last status", "State"];
  const rows = jobs.map((job) => h("tr", { dataset: { job: job.name } },
    h("td", { class: "name" }, h("a", { href: `/jobs/${api.seg(job.name)}`, "data-test": "job-link" }, job.name)),
    h("td", { class: "schedule" }, job.description),
    h("td", { class: "target" }, h("span", { class: "method" }, job.target.method), " ", h("code", { class: "url", title: job.target.url }, job.target.url)),
    h("td", { class: "next-fire" }, job.next_fire_at ? [timeEl(job.next_fire_at), h("span", { class: "rel" }, relative(job.next_fire_at))] : h("span", { class: "muted" }, job.paused ? "paused" : "none")),
    h("td", {}, statusBadge(job.last_status)),
    h("td", {}, job.paused ? h("span", { class: "pill pill-warn" }, "paused") : h("span", { class: "pill pill-quiet" }, "active"))));
  const filtered = filters.prefix || filters.paused || filters.failing;
  if (!rows.length) rows.push(emptyRow(headers.length, filtered ? "No job matches these filters." : pager.page > 1 ? "No more jobs." : "No jobs yet: create one with “New job”."));
  return h("table", { class: "table", id: "jobs-table" },
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}
