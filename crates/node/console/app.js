const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const table = (cols, rows) => "<table><tr>" + cols.map(c => "<th>" + esc(c) + "</th>").join("") + "</tr>" +
  rows.map(r => "<tr>" + r.map(v => "<td>" + v + "</td>").join("") + "</tr>").join("") + "</table>";
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("belfry-token") ?? "";
document.getElementById("use-token").addEventListener("click", () => { sessionStorage.setItem("belfry-token", tokenInput.value.trim()); refresh(); });
async function get(path) {
  const token = sessionStorage.getItem("belfry-token");
  const r = await fetch(path, { headers: token ? { "Authorization": "Bearer " + token } : {} });
  if (r.status === 401) throw new Error("enter an API token above (a viewer token is enough)");
  if (!r.ok) throw new Error((await r.json()).error.message);
  return r.json();
}
async function refresh() {
  try {
    const c = await get("/v1/cluster");
    document.getElementById("node").textContent = "· node " + c.node + " · term " + c.term;
    document.getElementById("cluster").innerHTML = "leader: <b>" + esc(c.leader ?? "none") + "</b>, applied index " + c.applied_index +
      table(["id", "http", "grpc", "role", "lag", "reachable"], c.members.map(m => [m.id, esc(m.http_addr), esc(m.grpc_addr),
        m.voter ? "voter" : "learner", m.lag ?? "", m.reachable ? '<span class="ok">yes</span>' : '<span class="bad">' + esc(m.error) + "</span>"]));
  } catch (e) { document.getElementById("cluster").textContent = "error: " + e.message; }
  try {
    const j = await get("/v1/jobs?limit=200");
    document.getElementById("jobs").innerHTML = table(["name", "schedule", "target", "next fire", "paused"],
      j.jobs.map(x => [esc(x.name), esc(x.description), "<code>" + esc(x.target.method + " " + x.target.url) + "</code>", esc(x.next_fire_at), x.paused ? "yes" : ""]));
  } catch (e) { document.getElementById("jobs").textContent = "error: " + e.message; }
  try {
    const x = await get("/v1/executions?limit=50");
    document.getElementById("execs").innerHTML = table(["key", "job", "scheduled", "status", "attempts", "http", "worker"],
      x.executions.map(e => ["<code>" + esc(e.key) + "</code>", esc(e.job), esc(e.scheduled_at), esc(e.status), e.attempts, esc(e.http_status), esc(e.worker)]));
  } catch (e) { document.getElementById("execs").textContent = "error: " + e.message; }
}
refresh(); setInterval(refresh, 2000);
