"""The result file of a sweep: one Markdown table, machine info, and an SVG chart of lag."""

import math
from xml.sax.saxutils import escape

COLUMNS = [
    "load",
    "scheduler",
    "fires due",
    "delivered",
    "on time (≤ 1 s)",
    "lag p50",
    "lag p99",
    "lag max",
    "dups",
    "CPU s / 1000 deliveries",
    "peak RSS MiB",
]


def fmt_ms(ms: float) -> str:
    """A lag: ``12 ms`` below a second, ``3.4 s`` above; ``–`` when there is none."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "–"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def fmt_pct(part: int, whole: int) -> str:
    """``part`` as a percentage of ``whole`` with as many decimals as it needs."""
    if not whole:
        return "–"
    p = 100.0 * part / whole
    if p == 100.0 or p == 0.0:
        return f"{p:.0f}%"
    return f"{p:.2f}%" if p > 99 else f"{p:.1f}%"


def fmt_rss(row: dict) -> str:
    """Peak RSS per process: ``n1 41 · n2* 38 · n3 39`` (``*`` the leader) or one number."""
    rss = row["rss_mib"]
    if row["scheduler"] != "belfry":
        return " · ".join(f"{v:.0f}" for v in rss.values())
    leader = row.get("leader")
    return " · ".join(f"{k}{'*' if k == f'n{leader}' else ''} {v:.0f}" for k, v in rss.items())


def table(rows: list) -> str:
    """The side-by-side Markdown table, one line per load and scheduler."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        marks = "".join(f" [{n}]" for n in r.get("note_ids", []))
        cells = [
            r["load"],
            r["scheduler"] + marks,
            str(r["due"]),
            f"{r['delivered']} ({fmt_pct(r['delivered'], r['due'])})",
            fmt_pct(r["on_time"], r["due"]),
            fmt_ms(r["lag_p50"]),
            fmt_ms(r["lag_p99"]),
            fmt_ms(r["lag_max"]),
            str(r["duplicates"]),
            "–" if math.isnan(r["cpu_per_1000"]) else f"{r['cpu_per_1000']:.2f}",
            fmt_rss(r),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def number_notes(rows: list) -> list:
    """Give each distinct note a number; set ``note_ids`` on the rows; return the notes."""
    notes = []
    for r in rows:
        r["note_ids"] = []
        for n in r["notes"]:
            if n not in notes:
                notes.append(n)
            r["note_ids"].append(notes.index(n) + 1)
    return notes


def markdown(rows: list, meta: dict, capacity: dict, svg_name: str) -> str:
    """The whole result file."""
    notes = number_notes(rows)
    m = meta["machine"]
    lines = [
        f"# bench/compare: belfry vs APScheduler, {meta['date']} at {meta['commit']}",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"- belfry: 3 `belfry serve` release processes on loopback, built at {meta['commit']} (belfry's code last "
        f"changed in {meta['code_commit']}); "
        + (
            f"`--runtime-threads {meta['belfry_threads']}` each (the machine's cores shared among the nodes); "
            if meta.get("belfry_threads")
            else "belfry's default runtime threads (one per core in every node); "
        )
        + "jobs created through a follower.",
        f"- APScheduler {meta['apscheduler']}: one `AsyncIOScheduler` process ({meta['aps_loop']} loop, aiohttp "
        f"{meta['aiohttp']}, {meta['aps_connections']} connections), `coalesce=False`, `misfire_grace_time=60`.",
        f"- Window {meta['seconds']} s after a {meta['warmup']} s warm-up; drain {meta['drain']} s. "
        "Every job fires every 1 s; only fires scheduled in the window count.",
        f"- Machine: {m['nproc']} cores ({m.get('cpu', '?')}, {m['machine']}), {m.get('mem_gib', '?')} GiB, "
        f"Linux {m['kernel']}; everything (nodes, APScheduler, receiver, driver) shares the cores.",
        f"- Load average (1/5/15 min): {meta['load_start']} at the start, {meta['load_end']} at the end"
        + (f"; {meta['load_note']}" if meta.get("load_note") else "") + ".",
        f"- Receiver capacity alone: {capacity['rps']:.0f} requests/s (one Python load-generator process, "
        f"{capacity['concurrency']} connections, latency p50 {capacity['p50_ms']:.1f} ms / p99 "
        f"{capacity['p99_ms']:.1f} ms; the receiver used {capacity.get('receiver_cpu', float('nan')):.0%} of a core): "
        "loads near or above it measure the receiver as much as the scheduler.",
        "",
        table(rows),
        "",
    ]
    if notes:
        lines += [f"[{i + 1}] {n}  " for i, n in enumerate(notes)] + [""]
    lines += [
        "The machine during each window: the 1-minute load average at its end, and the CPU (in cores) "
        "used by every process other than the scheduler under test and the receiver (the driver, "
        "and on a shared machine a compiler): " + ", ".join(
            f"{r['load']} {r['scheduler']}: {r['loadavg'].split()[0]} / {r.get('others_cores', float('nan')):.2f}"
            for r in rows
        ) + ".",
        "",
        "CPU of the scheduler processes over each window, in cores (utime+stime / window): "
        + ", ".join(
            f"{r['load']} {r['scheduler']}: " + " ".join(f"{k} {v:.2f}" for k, v in r.get("cores", {}).items())
            for r in rows
        )
        + ".",
        "",
        f"![lag against load]({svg_name})",
        "",
    ]
    return "\n".join(lines)


# --- SVG ---------------------------------------------------------------------------------

COLORS = {"belfry": "#1f63c6", "APScheduler": "#d9730d"}
W, H = 820, 480
LEFT, RIGHT, TOP, BOTTOM = 70, 200, 40, 60


def _scale(lo: float, hi: float, a: float, b: float):
    """A log10 map from [lo, hi] onto pixels [a, b]."""
    llo, lhi = math.log10(lo), math.log10(hi)
    return lambda v: a + (math.log10(max(v, lo)) - llo) / (lhi - llo) * (b - a)


def svg(rows: list, title: str) -> str:
    """Lag p50 (solid) and p99 (dashed) against fires/s, log-log; bursts as square markers."""
    lags = [r[k] for r in rows for k in ("lag_p50", "lag_p99") if not math.isnan(r[k])] or [1000]
    y_hi = 10 ** math.ceil(math.log10(max(max(lags), 10)))
    y_lo = 10 ** math.floor(math.log10(max(min(lags), 0.5)))
    xs = [r["jobs"] for r in rows] or [100]
    x_lo = min(xs) / 1.5
    x_hi = max(xs) * 1.5
    sx = _scale(x_lo, x_hi, LEFT, W - RIGHT)
    sy = _scale(y_lo, y_hi, H - BOTTOM, TOP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    decade = 10 ** math.floor(math.log10(x_lo))
    while decade <= x_hi:
        for m in range(1, 10):
            v = decade * m
            if not x_lo <= v <= x_hi:
                continue
            x = sx(v)
            out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="#eee"/>')
            if m in (1, 2, 5):
                out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{v:g}</text>')
        decade *= 10
    decade = y_lo
    while decade <= y_hi:
        y = sy(decade)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt_ms(decade)}</text>')
        decade *= 10
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 18}" text-anchor="middle">fires per second (K jobs every 1 s)</text>')
    out.append(
        f'<text x="18" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {(TOP + H - BOTTOM) / 2})">lag, arrival − scheduled (log)</text>'
    )
    for sched, color in COLORS.items():
        steady = sorted((r for r in rows if r["scheduler"] == sched and r["shape"] == "steady"), key=lambda r: r["jobs"])
        for key, dash in (("lag_p50", ""), ("lag_p99", ' stroke-dasharray="6 4"')):
            pts = [(sx(r["jobs"]), sy(r[key])) for r in steady if not math.isnan(r[key])]
            if len(pts) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
            for x, y in pts:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
        for r in steady:
            if r["due"] and r["delivered"] < 0.99 * r["due"] and not math.isnan(r["lag_p99"]):
                pct = 100 * r["delivered"] / r["due"]
                dy = -8 if sched == "APScheduler" else 16
                out.append(
                    f'<text x="{sx(r["jobs"]) - 4:.1f}" y="{sy(r["lag_p99"]) + dy:.1f}" fill="{color}" '
                    f'font-size="10" text-anchor="end">{pct:.0f}% delivered</text>'
                )
        for r in (r for r in rows if r["scheduler"] == sched and r["shape"] == "burst"):
            for key, fill in (("lag_p50", color), ("lag_p99", "white")):
                if not math.isnan(r[key]):
                    x, y = sx(r["jobs"]), sy(r[key])
                    out.append(
                        f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{fill}" '
                        f'stroke="{color}" stroke-width="2"/>'
                    )
    ly = TOP + 10
    lx = W - RIGHT + 16
    for sched, color in COLORS.items():
        for label, dash in (("p50, steady", ""), ("p99, steady", ' stroke-dasharray="6 4"')):
            out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 28}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
            out.append(f'<text x="{lx + 34}" y="{ly + 4}">{sched} {label}</text>')
            ly += 20
        for label, fill in (("p50, burst", color), ("p99, burst", "white")):
            out.append(
                f'<rect x="{lx + 9}" y="{ly - 5}" width="10" height="10" fill="{fill}" stroke="{color}" stroke-width="2"/>'
            )
            out.append(f'<text x="{lx + 34}" y="{ly + 4}">{sched} {label}</text>')
            ly += 20
        ly += 10
    out.append(
        f'<text x="{lx}" y="{ly + 10}" font-size="10" fill="#555">lag over delivered fires only;</text>'
        f'<text x="{lx}" y="{ly + 24}" font-size="10" fill="#555">see the table for the share delivered</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
