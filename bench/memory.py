"""The memory mode (``bench/compare --memory N``): N idle jobs, RSS per job, creates/s.

belfry: a fresh 3-node cluster with ``--max-jobs`` above N. The RSS of each node is taken on
the empty cluster (after the leader is elected and the nodes have settled), then again after
N jobs scheduled a year ahead exist and the nodes have settled; per job is the difference
over N. Creates/s: single ``POST /v1/jobs`` through a follower from 16 concurrent clients over
the first 20,000 jobs (or a time bound), then ``POST /v1/jobs:batch`` (up to 1000 jobs per
request) for the rest when the node has that route; when it answers 404 or 405 the rest is
created with single creates too, and the result says so.

APScheduler: the RSS of an ``AsyncIOScheduler`` process with N idle jobs (memory job store)
minus that of one with none.
"""

import asyncio
import os
import shutil
import sys
import tempfile
import time

import procs
from belfry_cluster import BelfryCluster, client_session, create_jobs, job_spec, post_retrying

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 1000


def far_future_ms() -> int:
    """A whole second a year from now, in Unix ms."""
    return (int(time.time()) + 365 * 86400) * 1000


async def settled_rss(pids: dict, seconds: float = 3.0) -> dict:
    """VmRSS of every process in MiB, the last of samples taken over ``seconds``."""
    last = {}
    end = time.monotonic() + seconds
    while True:
        for label, pid in pids.items():
            last[label] = procs.status_kib(pid) / 1024
        if time.monotonic() >= end:
            return last
        await asyncio.sleep(0.5)


def dir_mib(path: str) -> float:
    """Bytes under ``path`` in MiB."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total / 1024 / 1024


async def metric(session, url: str, name: str):
    """The value of an unlabelled metric from ``/metrics`` (None when absent)."""
    async with session.get(url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


async def batch_create(session, url: str, specs, count: int, clients: int, deadline: float) -> int:
    """Create ``count`` specs from the iterator ``specs`` through ``POST /v1/jobs:batch``."""
    done = 0
    taken = 0

    async def client():
        nonlocal done, taken
        while taken < count and time.monotonic() <= deadline:
            size = min(BATCH, count - taken)
            taken += size
            chunk = [next(specs) for _ in range(size)]
            await post_retrying(session, url + "/v1/jobs:batch", {"jobs": chunk}, ok=(200, 201), deadline=deadline)
            done += size

    await asyncio.gather(*(client() for _ in range(clients)))
    return done


async def probe_batch(session, url: str, spec: dict):
    """Try ``POST /v1/jobs:batch`` with one job: True if created, else the reason it was not."""
    async with session.post(url + "/v1/jobs:batch", json={"jobs": [spec]}) as r:
        text = await r.text()
        if r.status in (200, 201):
            return True
        if r.status in (404, 405):
            return f"`POST /v1/jobs:batch` answered {r.status}: not in this build"
        return f"`POST /v1/jobs:batch` answered {r.status} {text[:200]}"


async def restarts(cluster: BelfryCluster, api, via: str) -> dict:
    """Restart the follower the creates did not go through (seconds until it is ready again),
    then add a fourth node with an empty data dir through ``--join`` (seconds until it has
    caught up). The leader's purged index says whether the new node needed its snapshot."""
    node = next(n for n in (1, 2, 3) if n != cluster.leader and cluster.url(n) != via)
    out = {"node": node}

    def taken(n: int, seconds: float) -> dict:
        pid = cluster.pids[f"n{n}"]
        return {"seconds": seconds, "rss": procs.status_kib(pid) / 1024, "hwm": procs.status_kib(pid, "VmHWM") / 1024}

    cluster.restart(node)
    out["restart"] = taken(node, await cluster.wait_ready(api, node, timeout=300))
    async with api.get(cluster.url(cluster.leader) + "/v1/cluster") as r:
        view = await r.json()
    out["leader_snapshot_index"] = view.get("snapshot_index")
    out["leader_purged_index"] = view.get("purged_index")
    joined = cluster.join(via=cluster.leader)
    out["joined"] = joined
    out["join"] = taken(joined, await cluster.wait_ready(api, joined, timeout=300))
    return out


async def belfry_memory(cfg, n: int, single_count: int = 20_000, time_bound: float = 900) -> dict:
    """Fill a fresh cluster with ``n`` idle jobs; RSS per node and per job, creates/s."""
    workdir = tempfile.mkdtemp(prefix="belfry-memory-", dir=cfg.workdir)
    cluster = BelfryCluster(cfg.binary, workdir, cfg.certs_dir, max_jobs=n + 1000, threads=cfg.threads)
    out = {"n": n, "notes": []}
    try:
        cluster.start()
        async with client_session() as api:
            out["leader"] = await cluster.wait_leader(api)
            await asyncio.sleep(3)
            out["rss_empty"] = await settled_rss(cluster.pids)
            via = cluster.url(cluster.follower())
            start = far_future_ms()
            target = "http://127.0.0.1:9/idle"
            specs = (job_spec(f"m-{i:07d}", target, start) for i in range(n))
            deadline = time.monotonic() + time_bound
            first = min(n, single_count)
            began = time.monotonic()
            firsts = (next(specs) for _ in range(first))
            lat = await create_jobs(api, via, firsts, cfg.create_concurrency, deadline=began + 300)
            single_s = time.monotonic() - began
            lat.sort()
            out["single"] = {
                "count": len(lat),
                "rate": len(lat) / single_s,
                "p50_ms": lat[len(lat) // 2] * 1000,
                "p99_ms": lat[int((len(lat) - 1) * 0.99)] * 1000,
            }
            created = len(lat)
            rest = n - created
            if rest:
                ok = await probe_batch(api, via, next(specs))
                if ok is True:
                    created += 1
                    began = time.monotonic()
                    done = await batch_create(api, via, specs, rest - 1, clients=4, deadline=deadline)
                    out["batch"] = {"count": done, "rate": done / (time.monotonic() - began)}
                    created += done
                else:
                    out["notes"].append(f"{ok}; the other {rest} jobs were created with single creates")
                    specs = (job_spec(f"m-{i:07d}", target, start) for i in range(created, n))
                    began = time.monotonic()
                    more = await create_jobs(api, via, specs, cfg.create_concurrency, deadline=deadline)
                    out["single_rest"] = {"count": len(more), "rate": len(more) / (time.monotonic() - began)}
                    created += len(more)
            out["created"] = created
            out["create_s"] = time.monotonic() - (deadline - time_bound)
            if created < n:
                out["notes"].append(f"stopped at the {time_bound:.0f} s bound with {created} of {n} jobs created")
            await asyncio.sleep(10)
            out["jobs_metric"] = await metric(api, via, "belfry_jobs")
            out["rss_full"] = await settled_rss(cluster.pids)
            out["hwm"] = {k: procs.status_kib(p, "VmHWM") / 1024 for k, p in cluster.pids.items()}
            out["disk_mib"] = {f"n{i}": dir_mib(os.path.join(workdir, f"n{i}")) for i in (1, 2, 3)}
            out["restart"] = await restarts(cluster, api, via)
        return out
    finally:
        cluster.stop()
        if not cfg.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def apscheduler_rss(cfg, n: int, timeout: float = 900) -> dict:
    """RSS of an APScheduler process holding ``n`` idle jobs, and how long adding them took."""
    args = [sys.executable, os.path.join(HERE, "apsched_runner.py"), "--url", "http://127.0.0.1:9/idle"]
    args += ["--idle", "--jobs", n, "--loop", cfg.aps_loop]
    proc = procs.spawn(args, log_path=os.path.join(cfg.workdir, f"apscheduler-idle-{n}.log"), stdout=-1)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=timeout)
        if not line.startswith(b"ready"):
            raise RuntimeError("APScheduler runner did not start")
        add_s = float(line.split()[1])
        await asyncio.sleep(2)
        rss = (await settled_rss({"aps": proc.pid}, 2))["aps"]
        return {"rss": rss, "add_s": add_s}
    finally:
        procs.stop(proc)
        proc.stdout.close()


def markdown(res: dict, aps_empty: dict, aps_full: dict, meta: dict) -> str:
    """The memory result file."""
    n = res["n"]
    created = res["created"]
    lines = [
        f"# bench/compare --memory {n}: {meta['date']} at {meta['commit']}",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Machine: {meta['machine']['nproc']} cores, Linux {meta['machine']['kernel']}; load average "
        f"{meta['load_start']} at the start, {meta['load_end']} at the end.",
        "",
        "| node | RSS empty cluster | RSS with jobs | per job | peak RSS (VmHWM) | data dir |",
        "|---|---|---|---|---|---|",
    ]
    for k in res["rss_empty"]:
        leader = "*" if k == f"n{res['leader']}" else ""
        e, f = res["rss_empty"][k], res["rss_full"][k]
        per = (f - e) * 1024 * 1024 / created if created else float("nan")
        lines.append(
            f"| {k}{leader} | {e:.0f} MiB | {f:.0f} MiB | {per:.0f} B | {res['hwm'][k]:.0f} MiB | {res['disk_mib'][k]:.0f} MiB |"
        )
    if aps_full:
        per = (aps_full["rss"] - aps_empty["rss"]) * 1024 * 1024 / n
        lines.append(
            f"| APScheduler (one process) | {aps_empty['rss']:.0f} MiB | {aps_full['rss']:.0f} MiB | {per:.0f} B | – | – |"
        )
    s = res["single"]
    lines += [
        "",
        "(`*` the leader; per job = (RSS with jobs − RSS empty) / jobs created.)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| jobs created (belfry_jobs gauge after) | {created} ({res['jobs_metric']:.0f}) |",
        f"| single creates through a follower, {meta['create_concurrency']} clients, first {s['count']} | "
        f"{s['rate']:.0f}/s (latency p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms) |",
    ]
    if "single_rest" in res:
        r = res["single_rest"]
        lines.append(f"| single creates, the other {r['count']} | {r['rate']:.0f}/s |")
    if "batch" in res:
        b = res["batch"]
        lines.append(f"| batch creates (`POST /v1/jobs:batch`, {BATCH} per request, 4 clients), {b['count']} | {b['rate']:.0f} jobs/s |")
    else:
        lines.append("| batch creates | not measured (see the note) |")
    lines.append(f"| total time to create the jobs | {res['create_s']:.0f} s |")
    if aps_full:
        lines.append(f"| APScheduler: add_job of {n} jobs, in process (no persistence, no replication) | {aps_full['add_s']:.1f} s |")
    r = res.get("restart")
    if r:
        purged = r["leader_purged_index"]
        lines.append(
            f"| n{r['node']} stopped (SIGTERM) and started again: ready (`/readyz` 200) after | {r['restart']['seconds']:.1f} s "
            f"(RSS then {r['restart']['rss']:.0f} MiB, peak {r['restart']['hwm']:.0f} MiB) |"
        )
        lines.append(
            f"| n{r['joined']} added with an empty data dir (`--join`): caught up (`/readyz` 200) after | "
            f"{r['join']['seconds']:.1f} s (RSS then {r['join']['rss']:.0f} MiB, peak {r['join']['hwm']:.0f} MiB; the "
            f"leader's snapshot at index {r['leader_snapshot_index']}, its log purged to {purged}) |"
        )
    lines.append("")
    lines += [f"- {note}" for note in res["notes"]]
    return "\n".join(lines) + "\n"
