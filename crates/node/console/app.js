// The console's entry: history-API routing over the page paths the node answers with the shell
// (/, /jobs/{name}, /jobs/{name}/edit, /new-job, /executions/{key}, /dead-letters, /cluster),
// the sign-in prompt, and the header.

import * as api from "./api.js";
import { h, mount } from "./dom.js";
import { clearNotice, describeError } from "./ui.js";
import { renderJobs } from "./page-jobs.js";
import { renderJob } from "./page-job.js";
import { renderJobForm } from "./page-form.js";
import { renderExecution } from "./page-execution.js";
import { renderDeadLetters } from "./page-dead-letters.js";
import { renderCluster } from "./page-cluster.js";

const ROUTES = [
  { pattern: /^\/$/, nav: "jobs", title: "Jobs", render: renderJobs },
  { pattern: /^\/new-job$/, nav: "jobs", title: "New job", render: (root, ctx) => renderJobForm(root, ctx, null) },
  { pattern: /^\/jobs\/([^/]+)\/edit$/, nav: "jobs", title: "Edit job", render: (root, ctx, name) => renderJobForm(root, ctx, name) },
  { pattern: /^\/jobs\/([^/]+)$/, nav: "jobs", title: "Job", render: renderJob },
  { pattern: /^\/executions\/([^/]+)$/, nav: "execution", title: "Execution", render: renderExecution },
  { pattern: /^\/dead-letters$/, nav: "dead-letters", title: "Dead letters", render: renderDeadLetters },
  { pattern: /^\/cluster$/, nav: "cluster", title: "Cluster", render: renderCluster },
];

const main = () => document.getElementById("main");
let current = null; // the AbortController of the page on screen

/** Goes to `path` inside the console (pushState), or replaces the entry with `replace`. */
export function navigate(path, { replace = false } = {}) {
  clearNotice();
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

function match(pathname) {
  for (const route of ROUTES) {
    const m = pathname.match(route.pattern);
    if (m) return { route, args: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

async function render() {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  window.scrollTo(0, 0);
  const root = main();
  if (!api.token()) {
    showSignIn();
    return;
  }
  document.getElementById("sign-out").hidden = false;
  const found = match(location.pathname);
  setActiveNav(found ? found.route.nav : null);
  if (!found) {
    document.title = "Not found · belfry";
    mount(root, h("div", { class: "card" }, h("h1", {}, "Not found"), h("p", {}, "The console has no page at this address. "), h("a", { href: "/" }, "Back to the jobs")));
    return;
  }
  document.title = `${found.route.title} · belfry`;
  const ctx = { signal: controller.signal, navigate, setTitle: (t) => { document.title = `${t} · belfry`; } };
  root.dataset.page = found.route.nav;
  try {
    await found.route.render(root, ctx, ...found.args);
  } catch (err) {
    if (controller.signal.aborted || err.name === "AbortError" || err.status === 401) return;
    mount(root, h("div", { class: "error-box", role: "alert" }, describeError(err)));
  }
  refreshNodeInfo(controller.signal);
}

function setActiveNav(nav) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function refreshNodeInfo(signal) {
  const el = document.getElementById("node-info");
  try {
    const c = await api.get("/v1/cluster", { signal });
    const leader = c.leader === null || c.leader === undefined ? "no leader" : `leader ${c.leader}`;
    el.textContent = `node ${c.node} · ${leader} · term ${c.term}`;
  } catch {
    el.textContent = "";
  }
}

/** The token prompt; `message` says why it is shown again (a refused token). */
function showSignIn(message = "") {
  if (current) current.abort();
  current = null;
  document.title = "Sign in · belfry";
  document.getElementById("sign-out").hidden = true;
  document.getElementById("node-info").textContent = "";
  setActiveNav(null);
  const input = h("input", { type: "password", id: "token-input", name: "token", autocomplete: "off", spellcheck: "false", required: true, placeholder: "bf_…", "aria-describedby": "sign-in-message" });
  const msg = h("p", { id: "sign-in-message", class: message ? "field-error" : "muted", role: message ? "alert" : null }, message || "The token is kept in this browser tab only (sessionStorage) and sent with every API call.");
  const button = h("button", { type: "submit", class: "btn btn-primary", id: "sign-in-button" }, "Sign in");
  const form = h("form", { class: "sign-in card", id: "sign-in-form", novalidate: true },
    h("h1", {}, "Sign in to belfry"),
    h("p", {}, "Paste an API token (", h("code", {}, "bf_…"), "). A viewer token can read everything; changes need an editor, operator or admin token."),
    h("label", { for: "token-input", class: "label" }, "API token"), input, msg,
    h("div", { class: "form-actions" }, button));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) {
      msg.className = "field-error";
      msg.textContent = "Enter a token.";
      return;
    }
    button.disabled = true;
    api.setToken(value);
    try {
      await api.get("/v1/cluster", { quiet401: true });
      render();
    } catch (err) {
      if (err.status === 401) api.clearToken();
      msg.className = "field-error";
      msg.textContent = err.status === 401 ? "That token was refused (401): check it and try again." : describeError(err);
      button.disabled = false;
      if (err.status !== 401) render();
    }
  });
  mount(main(), form);
  main().dataset.page = "sign-in";
  input.focus();
}

api.setUnauthenticatedHandler((err) => {
  api.clearToken();
  showSignIn(`Your token was refused (401: ${err.message}). Sign in again.`);
});

// Links to console pages stay in the page (history API); everything else behaves as usual.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !match(url.pathname)) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
  else render();
});

window.addEventListener("popstate", () => {
  clearNotice();
  render();
});

document.getElementById("sign-out").addEventListener("click", () => {
  api.clearToken();
  clearNotice();
  showSignIn("Signed out. The token was removed from this tab.");
  document.getElementById("sign-in-message").className = "muted";
});

render();
