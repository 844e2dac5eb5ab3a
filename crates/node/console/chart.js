// The live chart of the home page: fires per second by outcome (stacked bars) and delivery lag
// p50/p99 (lines) over the last minute, from GET /v1/stats, redrawn every 2 s as inline SVG.

import * as api from "./api.js";
import { h, s, mount } from "./dom.js";
import { describeError } from "./ui.js";

const REFRESH_MS = 2000;
const OUTCOMES = [
  ["succeeded", "Succeeded"],
  ["failed", "Failed attempts"],
  ["dead_lettered", "Dead-lettered"],
  ["skipped", "Skipped"],
];
const W = 600;
const H = 120;
const PAD = { left: 44, right: 8, top: 10, bottom: 22 };

/** Starts the chart in `host`; it stops when `signal` aborts. */
export function mountChart(host, signal) {
  const fires = h("div", { class: "chart-panel" });
  const lag = h("div", { class: "chart-panel" });
  const status = h("span", { class: "chart-status muted", id: "chart-status" }, "loading…");
  mount(host, h("section", { class: "card chart-card" },
    h("div", { class: "card-head" }, h("h2", {}, "Last minute, whole cluster"), status),
    h("div", { class: "chart-grid" }, fires, lag)));

  let timer = null;
  async function tick() {
    try {
      const stats = await api.get("/v1/stats", { signal });
      draw(fires, lag, stats);
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      host.dataset.updated = String(Date.now());
    } catch (err) {
      if (err.name === "AbortError" || signal.aborted) return;
      status.textContent = err.status === 404 ? "live statistics are not served by this node" : describeError(err);
    }
    if (!signal.aborted) timer = setTimeout(tick, REFRESH_MS);
  }
  signal.addEventListener("abort", () => clearTimeout(timer));
  tick();
}

/** A round upper bound for an axis (1, 2, 5 × 10^n) at or above `v`. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function frame(max, unit) {
  const y0 = H - PAD.bottom;
  const parts = [];
  for (const f of [0, 0.5, 1]) {
    const y = y0 - f * (y0 - PAD.top);
    parts.push(s("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: f === 0 ? "axis" : "grid" }));
    const value = max * f;
    parts.push(s("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, `${Number.isInteger(value) ? value : value.toFixed(1)}${unit}`));
  }
  parts.push(s("text", { x: PAD.left, y: H - 6, class: "tick" }, "−60 s"));
  parts.push(s("text", { x: W - PAD.right, y: H - 6, class: "tick", "text-anchor": "end" }, "now"));
  return parts;
}

function draw(firesPanel, lagPanel, stats) {
  const secs = stats.seconds || [];
  const n = Math.max(secs.length, stats.window_seconds || 60, 1);
  const slot = (W - PAD.left - PAD.right) / n;
  const offset = n - secs.length; // right-align: the newest second is at "now"
  const y0 = H - PAD.bottom;
  const span = y0 - PAD.top;

  // Fires per second, stacked by outcome.
  const totals = secs.map((x) => OUTCOMES.reduce((sum, [k]) => sum + (x[k] || 0), 0));
  const fmax = niceMax(Math.max(0, ...totals));
  const bars = secs.map((x, i) => {
    let top = y0;
    const rects = [];
    for (const [k] of OUTCOMES) {
      const v = x[k] || 0;
      if (!v) continue;
      const hgt = (v / fmax) * span;
      top -= hgt;
      rects.push(s("rect", { x: PAD.left + (offset + i) * slot + 0.5, y: top, width: Math.max(slot - 1, 1), height: hgt, class: `bar bar-${k}` }));
    }
    const label = `${new Date(x.at).toLocaleTimeString()}: ` + OUTCOMES.map(([k, name]) => `${x[k] || 0} ${name.toLowerCase()}`).join(", ");
    // A full-height transparent hit area so the tooltip works on empty seconds too.
    rects.push(s("rect", { x: PAD.left + (offset + i) * slot, y: PAD.top, width: slot, height: span, class: "hit" }, s("title", {}, label)));
    return s("g", {}, rects);
  });
  const sums = Object.fromEntries(OUTCOMES.map(([k]) => [k, secs.reduce((a, x) => a + (x[k] || 0), 0)]));
  mount(firesPanel,
    h("div", { class: "chart-title" }, "Fires per second, by outcome"),
    s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "Fires per second by outcome", "data-test": "chart-fires" }, frame(fmax, ""), bars),
    h("ul", { class: "legend" }, OUTCOMES.map(([k, name]) => h("li", { dataset: { outcome: k } }, h("span", { class: `swatch swatch-${k}` }), `${name} `, h("b", {}, String(sums[k]))))));

  // Lag percentiles, as lines broken where a second had no fire.
  const lags = secs.flatMap((x) => [x.lag_p50_ms, x.lag_p99_ms]).filter((v) => typeof v === "number");
  const lmax = niceMax(Math.max(0, ...lags));
  const line = (key) => {
    const runs = [];
    let run = [];
    secs.forEach((x, i) => {
      const v = x[key];
      if (typeof v !== "number") {
        if (run.length) runs.push(run);
        run = [];
        return;
      }
      run.push(`${(PAD.left + (offset + i + 0.5) * slot).toFixed(1)},${(y0 - (v / lmax) * span).toFixed(1)}`);
    });
    if (run.length) runs.push(run);
    return runs.map((pts) => (pts.length === 1
      ? s("circle", { cx: pts[0].split(",")[0], cy: pts[0].split(",")[1], r: 2, class: `dot dot-${key}` })
      : s("polyline", { points: pts.join(" "), class: `line line-${key}` })));
  };
  const latest = [...secs].reverse().find((x) => typeof x.lag_p99_ms === "number");
  mount(lagPanel,
    h("div", { class: "chart-title" }, "Delivery lag (ms)"),
    s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": "Lag p50 and p99 in milliseconds", "data-test": "chart-lag" }, frame(lmax, ""), line("lag_p99_ms"), line("lag_p50_ms")),
    h("ul", { class: "legend" },
      h("li", {}, h("span", { class: "swatch swatch-p50" }), "p50 ", h("b", {}, latest ? `${fmt(latest.lag_p50_ms)} ms` : "—")),
      h("li", {}, h("span", { class: "swatch swatch-p99" }), "p99 ", h("b", {}, latest ? `${fmt(latest.lag_p99_ms)} ms` : "—")),
      h("li", { class: "muted" }, lags.length ? "latest second with fires" : "no fires in the last minute")));
}

function fmt(v) {
  return typeof v === "number" ? (v >= 100 ? Math.round(v) : Math.round(v * 10) / 10) : "—";
}
