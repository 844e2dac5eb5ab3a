"""One firing run: K jobs every 1 s on belfry or APScheduler, measured over a window.

Timeline of a run: the jobs' first fires are at ``base`` (a whole second); the window starts
``warmup`` seconds later (``t0``) and lasts ``seconds``; every job's schedule ends with the
window, so no fire is due after it; the driver then waits ``drain`` seconds for late
deliveries and reads the receiver. Only fires scheduled inside the window count. CPU is the
utime+stime delta of the scheduler processes over the window; RSS is sampled every 0.5 s
from the window's start to the end of the drain.
"""

import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import procs
import profile
from belfry_cluster import BelfryCluster, client_session, create_jobs, job_spec

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Load:
    """A load shape: ``jobs`` jobs every second, spread over the second (``steady``) or all at
    once (``burst``); or ``jobs`` fires all due at one instant, the window's first, and no
    other (``once``: how fast a single herd drains)."""

    shape: str
    jobs: int

    @property
    def label(self) -> str:
        """``steady 1000/s``, ``burst 1000`` or ``once 10000``."""
        return f"steady {self.jobs}/s" if self.shape == "steady" else f"{self.shape} {self.jobs}"

    def offset_ms(self, i: int) -> int:
        """Milliseconds into the second at which job ``i`` fires (as apsched_runner.py)."""
        return (i * 1000) // self.jobs if self.shape == "steady" else 0

    def due(self, seconds: int) -> int:
        """Fires due in a window of ``seconds``."""
        return self.jobs if self.shape == "once" else self.jobs * seconds

    def schedule(self, i: int, base: int, t0: int, end: int) -> tuple:
        """``(start_ms, end_ms)`` of job ``i``'s schedule (every 1 s): from the warm-up at
        ``base`` to the window's ``end``, or, for ``once``, the one instant ``t0``."""
        if self.shape == "once":
            return t0, t0 + 500
        return base + self.offset_ms(i), end - 1


@dataclass
class Config:
    """Settings shared by every run of one invocation."""

    binary: str
    workdir: str
    certs_dir: str
    seconds: int = 20
    warmup: int = 3
    drain: int = 10
    create_concurrency: int = 16
    aps_loop: str = "uvloop"
    aps_connections: int = 100
    keep: bool = False
    # Each belfry node's --runtime-threads; 0: belfry's default.
    threads: int = 0
    # Where ``--profile`` writes each node's flame graph; empty: no profile.
    profile_dir: str = ""
    # Creates/s to plan with: updated from each belfry run of the invocation.
    create_rate: float = 300.0
    notes: list = field(default_factory=list)


def ceil_second(ms: float) -> int:
    """The next whole second at or after ``ms``, in ms."""
    return int(math.ceil(ms / 1000.0)) * 1000


async def sleep_until(ms: float) -> None:
    """Sleep until the wall clock reaches Unix ms ``ms``."""
    delay = ms / 1000.0 - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def measure(pids: dict, receiver, session, t0: int, end: int, drain: int, recorder=None) -> dict:
    """Sample CPU and RSS of ``pids`` over the window, wait the drain, read the receiver.

    Also the CPU the rest of the machine used in the window (every process but ``pids`` and
    the receiver), in cores: on a shared machine it says how much was left to the test.
    """
    await sleep_until(t0)
    each0 = {k: procs.cpu_total([p]) for k, p in pids.items()}
    cpu0 = procs.cpu_total(pids.values())
    recv0 = procs.cpu_total([receiver.proc.pid])
    busy0 = procs.machine_busy_seconds()
    sampler = procs.RssSampler(pids)
    sampler.start()
    if recorder:
        recorder.start()
    await sleep_until(end)
    if recorder:
        recorder.stop()
    cpu1 = procs.cpu_total(pids.values())
    each1 = {k: procs.cpu_total([p]) for k, p in pids.items()}
    recv1 = procs.cpu_total([receiver.proc.pid])
    busy1 = procs.machine_busy_seconds()
    others = (busy1 - busy0) - (cpu1 - cpu0) - (recv1 - recv0)
    window_s = (end - t0) / 1000
    load_end = procs.loadavg()
    await sleep_until(end + drain * 1000)
    rss = await sampler.stop()
    records = await receiver.records(session)
    return {
        "cpu_s": cpu1 - cpu0,
        "cores": {k: (each1[k] - each0[k]) / window_s for k in pids},
        "rss_mib": rss,
        "records": records,
        "loadavg": load_end,
        "others_cores": others / window_s,
        "receiver_cores": (recv1 - recv0) / window_s,
    }


def analyze(records: list, t0: int, end: int, due: int) -> dict:
    """Figures of the fires scheduled in ``[t0, end)`` from the receiver's records."""
    keys = {}
    arrived_in_window = 0
    for key, sched, arrival in records:
        if t0 <= arrival < end:
            arrived_in_window += 1
        if sched is None or not t0 <= sched < end:
            continue
        seen = keys.get(key)
        if seen is None:
            keys[key] = [1, arrival - sched]
        else:
            seen[0] += 1
            seen[1] = min(seen[1], arrival - sched)
    lags = sorted(v[1] for v in keys.values())

    def pct(p: float) -> float:
        return lags[round((len(lags) - 1) * p)] if lags else float("nan")

    return {
        "due": due,
        "delivered": len(keys),
        "on_time": sum(1 for lag in lags if lag <= 1000),
        "duplicates": sum(1 for v in keys.values() if v[0] > 1),
        "lag_p50": pct(0.5),
        "lag_p99": pct(0.99),
        "lag_max": lags[-1] if lags else float("nan"),
        "arrived_in_window": arrived_in_window,
    }


def finish(kind: str, load: Load, measured: dict, t0: int, end: int, due: int, notes: list) -> dict:
    """Combine the measurements and the analysis into one result row."""
    row = analyze(measured["records"], t0, end, due)
    if load.shape == "once" and row["delivered"] and not math.isnan(row["lag_max"]):
        # One herd: the last arrival ends it.
        rate = row["delivered"] / max(row["lag_max"], 1) * 1000
        notes.append(f"{row['delivered']} fires drained in {row['lag_max'] / 1000:.2f} s: {rate:.0f}/s")
    n = row["arrived_in_window"]
    row.update(
        {
            "scheduler": kind,
            "load": load.label,
            "shape": load.shape,
            "jobs": load.jobs,
            "cpu_s": measured["cpu_s"],
            "cores": measured["cores"],
            "cpu_per_1000": measured["cpu_s"] / n * 1000 if n else float("nan"),
            "rss_mib": measured["rss_mib"],
            "loadavg": measured["loadavg"],
            "others_cores": measured["others_cores"],
            "receiver_cores": measured["receiver_cores"],
            "notes": notes,
        }
    )
    return row


async def run_belfry(cfg: Config, load: Load, receiver, session) -> dict:
    """One run on a fresh 3-node cluster; jobs are created through a follower."""
    workdir = tempfile.mkdtemp(prefix=f"belfry-{load.shape}-{load.jobs}-", dir=cfg.workdir)
    cluster = BelfryCluster(
        cfg.binary, workdir, cfg.certs_dir, max_jobs=max(100_000, load.jobs + 1000), threads=cfg.threads
    )
    notes = []
    try:
        cluster.start()
        async with client_session() as api:
            await cluster.wait_leader(api)
            await receiver.reset(session)
            plan_s = 2 + load.jobs / cfg.create_rate
            base = ceil_second(time.time() * 1000 + plan_s * 1000)
            t0 = base + cfg.warmup * 1000
            end = t0 + cfg.seconds * 1000
            target = receiver.base + "/belfry"
            specs = iter(job_spec(f"b-{i:06d}", target, *load.schedule(i, base, t0, end)) for i in range(load.jobs))
            began = time.monotonic()
            latencies = await create_jobs(
                api, cluster.url(cluster.follower()), specs, cfg.create_concurrency, deadline=began + 600
            )
            took = time.monotonic() - began
            if len(latencies) < load.jobs:
                raise RuntimeError(f"created only {len(latencies)} of {load.jobs} jobs in 600 s")
            cfg.create_rate = min(max(50.0, 0.7 * load.jobs / took), 2000.0) if load.jobs >= 500 else cfg.create_rate
            late = time.time() * 1000 - base
            if late > 0:
                notes.append(f"jobs created {late / 1000:.1f} s after the first fire (warm-up shortened)")
            if time.time() * 1000 > t0:
                notes.append("INVALID: jobs still being created when the window began")
        recorder = None
        if cfg.profile_dir:
            leader = f"n{cluster.leader}"
            names = {f"{k}{'-leader' if k == leader else ''}": pid for k, pid in cluster.pids.items()}
            label = f"{load.shape}-{load.jobs}"
            recorder = profile.Recorder(names, cfg.profile_dir, f"profile-{label}")
        measured = await measure(cluster.pids, receiver, session, t0, end, cfg.drain, recorder)
        row = finish("belfry", load, measured, t0, end, load.due(cfg.seconds), notes)
        row["leader"] = cluster.leader
        if recorder:
            # Drawn after the run: folding the samples costs CPU too.
            row["profiles"] = recorder.write()
            notes.append("profiled with perf: CPU figures include its sampling")
        return row
    finally:
        cluster.stop()
        if not cfg.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def run_apscheduler(cfg: Config, load: Load, receiver, session) -> dict:
    """One run of a fresh APScheduler process (apsched_runner.py)."""
    await receiver.reset(session)
    notes = []
    base = ceil_second(time.time() * 1000 + 2000 + load.jobs / 10)
    t0 = base + cfg.warmup * 1000
    end = t0 + cfg.seconds * 1000
    args = [sys.executable, os.path.join(HERE, "apsched_runner.py"), "--url", receiver.base + "/apscheduler"]
    start, stop = load.schedule(0, base, t0, end)
    args += ["--jobs", load.jobs, "--base-ms", start, "--end-ms", stop, "--shape", load.shape]
    args += ["--loop", cfg.aps_loop, "--connections", cfg.aps_connections]
    log = os.path.join(cfg.workdir, f"apscheduler-{load.shape}-{load.jobs}.log")
    proc = procs.spawn(args, log_path=log, stdout=-1)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=120)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"APScheduler runner did not start; see {log}")
        if time.time() * 1000 > base:
            notes.append("APScheduler ready after the first fire (warm-up shortened)")
        measured = await measure({"aps": proc.pid}, receiver, session, t0, end, cfg.drain)
        return finish("APScheduler", load, measured, t0, end, load.due(cfg.seconds), notes)
    finally:
        procs.stop(proc)
        if proc.stdout:
            proc.stdout.close()
