"""bench/compare: belfry and APScheduler side by side on this machine.

Run through ``bench/compare`` (which builds belfry and makes the virtualenv). Two modes:

- the sweep (default): for each load, a fresh belfry cluster and then a fresh APScheduler
  process (never both at once) fire K jobs every second into one recording receiver; the
  figures go to ``bench/results/<date>-<HHMM>-<sha>.md`` and ``.svg``.
- ``--memory N``: N idle jobs; RSS per node and per job, and creates/s.

Every process it starts is stopped when it ends, on error and on Ctrl-C; all traffic stays
on 127.0.0.1.
"""

import argparse
import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version

import aiohttp
import uvloop

import memory
import procs
import profile
import report
import sink
from belfry_cluster import make_certs
from workload import Config, Load, run_apscheduler, run_belfry

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_LOADS = "steady:100,steady:1000,steady:3000,steady:5000,steady:10000,burst:1000,burst:10000"


def parse_loads(text: str) -> list:
    """``steady:1000,burst:1000,once:10000`` as a list of :class:`Load`."""
    loads = []
    for part in text.split(","):
        shape, _, jobs = part.strip().partition(":")
        if shape not in ("steady", "burst", "once") or not jobs.isdigit() or int(jobs) < 1:
            raise argparse.ArgumentTypeError(f"bad load {part!r}: use steady:K, burst:K or once:K")
        loads.append(Load(shape, int(jobs)))
    return loads


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="bench/compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--belfry-bin", required=True, help="the belfry binary (bench/compare builds one)")
    p.add_argument("--loads", type=parse_loads, default=parse_loads(DEFAULT_LOADS), help=f"default {DEFAULT_LOADS}")
    p.add_argument("--seconds", type=int, default=20, help="measured window per run (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of firing before the window (default 3)")
    p.add_argument("--drain", type=int, default=10, help="seconds to wait for late deliveries after the window")
    p.add_argument("--only", choices=["both", "belfry", "apscheduler"], default="both")
    p.add_argument("--memory", type=int, metavar="N", help="memory mode with N idle jobs")
    p.add_argument("--memory-time-bound", type=float, default=900, help="seconds allowed to create the N jobs")
    p.add_argument("--create-concurrency", type=int, default=16)
    p.add_argument(
        "--belfry-threads",
        type=int,
        default=max(1, (os.cpu_count() or 1) // 3),
        help="each node's --runtime-threads: by default the machine's cores shared among the three "
        "nodes, at least 1; 0 leaves belfry's own default (one per core, in every node)",
    )
    p.add_argument("--apscheduler-loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--apscheduler-connections", type=int, default=100)
    p.add_argument("--capacity-seconds", type=float, default=5, help="receiver capacity check (0 skips)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    p.add_argument("--keep", action="store_true", help="keep the temp dirs (node data and logs)")
    p.add_argument(
        "--profile", action="store_true", help="perf flame graphs of each belfry node over the window (bench/profile.py)"
    )
    args = p.parse_args(argv)
    if args.seconds < 1 or args.warmup < 0 or args.drain < 0:
        p.error("--seconds must be positive, --warmup and --drain not negative")
    return args


def git_sha() -> str:
    """The short commit of the work tree (``+dirty`` when crates/ has local changes)."""
    try:
        sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "crates", "Cargo.lock"], capture_output=True, text=True).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except OSError:
        return "unknown"


def code_sha() -> str:
    """The last commit that changed belfry's code (crates/, proto/, the Cargo files)."""
    cmd = ["git", "-C", ROOT, "log", "-1", "--format=%h", "--", "crates", "proto", "Cargo.lock", "Cargo.toml"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def base_meta(args) -> dict:
    """What every result file says about the run."""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "time": datetime.now(timezone.utc).strftime("%H%M"),
        "commit": git_sha(),
        "code_commit": code_sha(),
        "command": "bench/compare " + " ".join(sys.argv[1:]),
        "machine": procs.machine_info(),
        "load_start": procs.loadavg(),
        "apscheduler": version("APScheduler"),
        "aiohttp": version("aiohttp"),
        "aps_loop": args.apscheduler_loop,
        "aps_connections": args.apscheduler_connections,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "drain": args.drain,
        "create_concurrency": args.create_concurrency,
        "belfry_threads": args.belfry_threads,
    }


def out_path(args, meta: dict, suffix: str) -> str:
    """``bench/results/<date>-<HHMM>-<sha><suffix>``: two runs at one commit keep both files."""
    os.makedirs(args.out_dir, exist_ok=True)
    return os.path.join(args.out_dir, f"{meta['date']}-{meta['time']}-{meta['commit']}{suffix}")


async def sweep(args, cfg: Config) -> None:
    """Every load on belfry then APScheduler; write and print the result file."""
    meta = base_meta(args)
    rows = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        receiver = sink.Receiver(cfg.workdir)
        await receiver.start(session)
        try:
            nan = float("nan")
            cap = {"rps": nan, "p50_ms": nan, "p99_ms": nan, "concurrency": 64, "receiver_cpu": nan}
            if args.capacity_seconds > 0:
                cap = await sink.capacity(receiver, args.capacity_seconds)
                print(f"receiver capacity: {cap['rps']:.0f} requests/s ({cap['receiver_cpu']:.0%} of a core)", flush=True)
            kinds = [("belfry", run_belfry), ("APScheduler", run_apscheduler)]
            kinds = [k for k in kinds if args.only in ("both", k[0].lower())]
            for load in args.loads:
                for name, run in kinds:
                    t = time.monotonic()
                    print(f"{load.label}: {name} ...", end=" ", flush=True)
                    row = await run(cfg, load, receiver, session)
                    rows.append(row)
                    print(
                        f"delivered {row['delivered']}/{row['due']}, p50 {report.fmt_ms(row['lag_p50'])}, "
                        f"p99 {report.fmt_ms(row['lag_p99'])}, dups {row['duplicates']} ({time.monotonic() - t:.0f} s)",
                        flush=True,
                    )
        finally:
            receiver.stop()
    meta["load_end"] = procs.loadavg()
    md_path = out_path(args, meta, ".md")
    svg_path = out_path(args, meta, ".svg")
    title = f"belfry vs APScheduler {meta['apscheduler']}: lag against load ({meta['commit']}, {meta['date']})"
    with open(svg_path, "w") as f:
        f.write(report.svg(rows, title))
    text = report.markdown(rows, meta, cap, os.path.basename(svg_path))
    with open(md_path, "w") as f:
        f.write(text)
    with open(out_path(args, meta, ".json"), "w") as f:
        json.dump({"meta": meta, "capacity": cap, "rows": rows}, f, indent=1, default=str)
    print()
    print(report.table(rows))
    print(f"\nwrote {md_path}\n      {svg_path}")


async def memory_mode(args, cfg: Config) -> None:
    """belfry with N idle jobs, then APScheduler with none and with N; write the file."""
    meta = base_meta(args)
    n = args.memory
    print(f"belfry: creating {n} idle jobs ...", flush=True)
    res = await memory.belfry_memory(cfg, n, time_bound=args.memory_time_bound)
    aps_empty = aps_full = None
    if args.only != "belfry":
        print("APScheduler: idle jobs ...", flush=True)
        aps_empty = await memory.apscheduler_rss(cfg, 0)
        aps_full = await memory.apscheduler_rss(cfg, n, timeout=args.memory_time_bound)
    meta["load_end"] = procs.loadavg()
    text = memory.markdown(res, aps_empty, aps_full, meta)
    path = out_path(args, meta, f"-memory-{n}.md")
    with open(path, "w") as f:
        f.write(text)
    print("\n" + text + f"\nwrote {path}")


def on_signal(signum, _frame) -> None:
    """Turn SIGTERM (and SIGINT) into an exit, so the cleanup runs."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Parse, prepare the certificates, run the mode, and always stop the children."""
    args = parse_args()
    atexit.register(procs.kill_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workdir = tempfile.mkdtemp(prefix="belfry-compare-")
    cfg = Config(
        binary=os.path.abspath(args.belfry_bin),
        workdir=workdir,
        certs_dir=os.path.join(workdir, "certs"),
        seconds=args.seconds,
        warmup=args.warmup,
        drain=args.drain,
        create_concurrency=args.create_concurrency,
        aps_loop=args.apscheduler_loop,
        aps_connections=args.apscheduler_connections,
        keep=args.keep,
        threads=args.belfry_threads,
        profile_dir=args.out_dir if args.profile else "",
    )
    if args.profile:
        missing = profile.available()
        if missing:
            sys.exit(f"--profile: {missing}")
    try:
        if args.memory or args.only != "apscheduler":
            make_certs(cfg.binary, cfg.certs_dir)
        uvloop.run(memory_mode(args, cfg) if args.memory else sweep(args, cfg))
    finally:
        procs.kill_all()
        if args.keep:
            print(f"kept {workdir}")
        else:
            subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
