// The cluster (/cluster): leader, term and indexes, every member's role, lag, reachability and
// version (as the leader sees them, whichever node answers), refreshed every 2 s; leadership
// transfer and member removal, the latter confirmed with what it does to the quorum.

import * as api from "./api.js";
import { h, mount, section, details } from "./dom.js";
import { confirmDialog, busy, notify, errorBox, loadingLine } from "./ui.js";

const REFRESH_MS = 2000;

export async function renderCluster(root, ctx) {
  const summary = h("div", { id: "cluster-summary" }, loadingLine());
  const members = h("div", { class: "table-wrap", id: "members", dataset: { ready: "false" } });
  const target = h("select", { id: "transfer-to", "aria-label": "New leader" });
  const transfer = h("button", { type: "button", class: "btn", id: "transfer-leadership" }, "Transfer leadership");
  const updated = h("span", { class: "muted", id: "cluster-updated" });
  let view = null;
  let timer = null;
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));

  mount(root,
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Cluster"), updated),
      h("div", { class: "actions transfer" }, h("label", { for: "transfer-to", class: "inline-label" }, "Move leadership to"), target, transfer)),
    section("Raft", summary),
    section("Members", members));

  async function load() {
    try {
      view = await api.get("/v1/cluster", { signal: ctx.signal });
      draw();
      updated.textContent = `Served by node ${view.node} · updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (err.name === "AbortError" || err.status === 401) return;
      mount(summary, errorBox(err));
    }
    if (!ctx.signal.aborted) timer = setTimeout(load, REFRESH_MS);
  }

  function draw() {
    const voters = view.members.filter((m) => m.voter);
    const reachableVoters = voters.filter((m) => m.reachable).length;
    mount(summary, h("div", { class: "stats" },
      stat("Leader", view.leader ?? "none", "leader-id", view.leader === null || view.leader === undefined ? "bad" : ""),
      stat("Term", view.term, "term"),
      stat("Commit index", view.commit_index, "commit-index"),
      stat("Applied index", view.applied_index, "applied-index"),
      stat("Voters reachable", `${reachableVoters} of ${voters.length}`, "voters-reachable", reachableVoters * 2 > voters.length ? "" : "bad")),
    details([
      ["Snapshot index", view.snapshot_index ?? "none"],
      ["Purged through", view.purged_index ?? "none"],
      ["Quorum", `${Math.floor(voters.length / 2) + 1} of ${voters.length} voters`],
    ]));
    const leaderView = view.members.find((m) => m.id === view.leader);
    const noProgress = view.node !== view.leader && view.members.every((m) => m.lag === null || m.lag === undefined);
    mount(members, membersTable(),
      noProgress && leaderView ? h("p", { class: "hint muted", id: "lag-hint" },
        `Node ${view.node}, which serves this page, reports no match index or lag; the leader, node ${leaderView.id}`,
        leaderView.http_addr ? ` (${leaderView.http_addr})` : "", ", does.") : null);
    members.dataset.ready = "true";
    members.dataset.leader = view.leader === null || view.leader === undefined ? "" : String(view.leader);
    fillTargets();
  }

  function membersTable() {
    const rows = view.members.map((m) => {
      const leader = m.id === view.leader;
      return h("tr", { dataset: { member: String(m.id), leader: String(leader) }, class: leader ? "row-leader" : null },
        h("td", { class: "num" }, h("strong", {}, String(m.id)), m.id === view.node ? h("span", { class: "muted" }, " (this node)") : null),
        h("td", {}, leader ? h("span", { class: "badge-leader", id: "leader-badge", "data-test": "leader-badge" }, "leader") : h("span", { class: "muted" }, "follower")),
        h("td", {}, m.voter ? "voter" : h("span", { class: "pill pill-quiet" }, "learner")),
        h("td", {}, m.http_addr ? h("code", {}, m.http_addr) : "—", h("br"), h("code", { class: "muted" }, m.grpc_addr)),
        h("td", { class: "num" }, m.match_index ?? "—"),
        h("td", { class: "num", "data-test": "lag" }, lagCell(m)),
        h("td", { class: "num" }, m.last_contact_ms === null || m.last_contact_ms === undefined ? "—" : `${m.last_contact_ms} ms`),
        h("td", {}, m.reachable ? h("span", { class: "pill pill-ok" }, "reachable") : [h("span", { class: "pill pill-bad" }, "unreachable"), m.error ? h("div", { class: "error-text" }, m.error) : null]),
        h("td", {}, m.version ? h("code", {}, m.version) : "—"),
        h("td", { class: "row-actions" },
          !leader && m.voter ? h("button", { type: "button", class: "btn btn-small", "data-test": "make-leader", onclick: (e) => transferTo(e.currentTarget, m.id) }, "Make leader") : null,
          h("button", { type: "button", class: "btn btn-small btn-danger-quiet", "data-test": "remove-member", onclick: (e) => removeMember(e.currentTarget, m) }, "Remove")));
    });
    return h("table", { class: "table", id: "members-table" },
      h("thead", {}, h("tr", {}, ["Node", "", "Role", "Addresses", "Match index", "Lag", "Last contact", "Reachability", "Version", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows));
  }

  function lagCell(m) {
    if (m.lag === null || m.lag === undefined) return "—";
    return h("span", { class: m.lag > 100 ? "lag-high" : null }, `${m.lag} entr${m.lag === 1 ? "y" : "ies"}`);
  }

  function fillTargets() {
    const keep = target.value;
    const options = [h("option", { value: "" }, "the most caught-up voter")];
    for (const m of view.members) if (m.voter && m.id !== view.leader) options.push(h("option", { value: String(m.id) }, `node ${m.id}`));
    const same = options.length === target.options.length && options.every((o, i) => o.value === target.options[i].value);
    if (!same) {
      target.replaceChildren(...options);
      target.value = [...target.options].some((o) => o.value === keep) ? keep : "";
    }
  }

  async function transferTo(button, id) {
    const to = id ?? null;
    const ok = await confirmDialog({
      title: "Transfer leadership?",
      message: `Node ${view.leader} steps down and ${to === null ? "the most caught-up voter" : `node ${to}`} takes over. Writes pause for an election round trip.`,
      confirmLabel: "Transfer",
    });
    if (!ok) return;
    const out = await busy(button, () => api.post("/v1/cluster/transfer-leadership", to === null ? {} : { to }));
    if (!out) return;
    notify(`Leadership moved: node ${out.leader ?? "?"} leads, term ${out.term}.`, "ok");
    view = out;
    draw();
  }

  async function removeMember(button, m) {
    const voters = view.members.filter((x) => x.voter);
    const rest = voters.filter((x) => x.id !== m.id);
    const need = Math.floor(rest.length / 2) + 1;
    const reachable = rest.filter((x) => x.reachable).length;
    let warning = m.voter
      ? `${rest.length} voter${rest.length === 1 ? "" : "s"} would remain; ${need} of them must be reachable for the cluster to accept writes. ${reachable} ${reachable === 1 ? "is" : "are"} reachable now.`
      : "A learner does not count for the quorum.";
    if (m.voter && reachable < need) warning += " This would leave no reachable majority: the cluster will refuse the change.";
    if (m.id === view.leader) warning += " This node is the leader: the others elect a new one.";
    const ok = await confirmDialog({
      title: `Remove node ${m.id} from the cluster?`,
      message: "The node leaves the membership for good; to bring it back it must join again with fresh data.",
      warning,
      confirmLabel: "Remove member",
      danger: true,
    });
    if (!ok) return;
    const done = await busy(button, () => api.del(`/v1/cluster/members/${m.id}`).then(() => true));
    if (!done) return;
    notify(`Node ${m.id} was removed from the cluster.`, "ok");
    clearTimeout(timer);
    load();
  }

  transfer.addEventListener("click", () => transferTo(transfer, target.value === "" ? null : Number(target.value)));
  await load();
}

function stat(label, value, id, tone = "") {
  return h("div", { class: tone ? `stat stat-${tone}` : "stat" }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value", id }, String(value)));
}
