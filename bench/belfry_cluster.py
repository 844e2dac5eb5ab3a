"""A 3-node belfry cluster of `belfry serve` processes on loopback, and job creation.

Started the way the test harness (tests/src/lib.rs) starts one: peer certificates from
``belfry certs``, a bootstrap token, private targets allowed (the receiver is on loopback),
the API rate limit raised out of the way, each node in its own data dir.
"""

import asyncio
import os
import socket
import subprocess
import time
from datetime import datetime, timezone

import aiohttp

import procs

TOKEN = "bf_bootstrap_bench-compare-loopback-only"
RATE_LIMIT = "1000000"


def free_ports(n: int) -> list:
    """``n`` free loopback TCP ports (bound to :0, then released)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def rfc3339_ms(ms: int) -> str:
    """Unix milliseconds as RFC 3339 UTC with milliseconds (``2026-03-29T01:00:00.000Z``)."""
    dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def make_certs(binary: str, directory: str) -> None:
    """``belfry certs --nodes 1-4 --dir directory`` (the fourth for a node that joins)."""
    out = subprocess.run([binary, "certs", "--nodes", "1-4", "--dir", directory], capture_output=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"belfry certs failed: {out.stderr.decode(errors='replace')}")


class BelfryCluster:
    """Three `belfry serve` processes forming one cluster under ``workdir``."""

    def __init__(self, binary: str, workdir: str, certs_dir: str, max_jobs: int = 100_000, threads: int = 0):
        """Pick ports and data dirs; nothing runs until :meth:`start`. ``threads``: each node's
        ``--runtime-threads`` (0: belfry's default)."""
        self.threads = threads
        self.binary = binary
        self.workdir = workdir
        self.certs_dir = certs_dir
        self.max_jobs = max_jobs
        ports = free_ports(6)
        self.http = [f"127.0.0.1:{ports[2 * i]}" for i in range(3)]
        self.grpc = [f"127.0.0.1:{ports[2 * i + 1]}" for i in range(3)]
        self.procs = []
        self.args = []
        self.env = None
        self.leader = None

    def start(self) -> None:
        """Spawn the three nodes."""
        initial = ",".join(f"{i + 1}={self.grpc[i]}" for i in range(3))
        env = dict(os.environ)
        env.update(
            {
                "BELFRY_LOG": os.environ.get("BELFRY_LOG", "warn"),
                "BELFRY_ALLOW_PRIVATE_TARGETS": "true",
                "BELFRY_BOOTSTRAP_TOKEN": TOKEN,
                "BELFRY_PEER_CERTS_DIR": self.certs_dir,
                "BELFRY_RATE_LIMIT": RATE_LIMIT,
                "BELFRY_RATE_BURST": RATE_LIMIT,
            }
        )
        if self.threads > 0:
            env["BELFRY_RUNTIME_THREADS"] = str(self.threads)
        self.env = env
        for i in range(3):
            data = os.path.join(self.workdir, f"n{i + 1}")
            os.makedirs(data, exist_ok=True)
            args = [self.binary, "serve", "--id", i + 1, "--http-addr", self.http[i], "--grpc-addr", self.grpc[i]]
            args += ["--data-dir", data, "--initial-cluster", initial, "--max-jobs", self.max_jobs]
            self.args.append(args)
            self.procs.append(procs.spawn(args, log_path=os.path.join(self.workdir, f"n{i + 1}.log"), env=env))

    def restart(self, node: int) -> None:
        """Stop node ``node`` (SIGTERM, then SIGKILL after 10 s) and start it again with the
        same arguments and data dir."""
        i = node - 1
        procs.stop(self.procs[i], grace=10)
        log = os.path.join(self.workdir, f"n{node}.log")
        self.procs[i] = procs.spawn(self.args[i], log_path=log, env=self.env)

    def join(self, via: int) -> int:
        """Start a fourth node with an empty data dir and ``--join`` through node ``via``, as
        docs/OPERATIONS.md adds a node; returns its number (4)."""
        http, grpc = free_ports(2)
        self.http.append(f"127.0.0.1:{http}")
        self.grpc.append(f"127.0.0.1:{grpc}")
        node = len(self.http)
        data = os.path.join(self.workdir, f"n{node}")
        os.makedirs(data, exist_ok=True)
        args = [self.binary, "serve", "--id", node, "--http-addr", self.http[-1], "--grpc-addr", self.grpc[-1]]
        args += ["--data-dir", data, "--join", self.url(via), "--max-jobs", self.max_jobs]
        self.args.append(args)
        self.procs.append(procs.spawn(args, log_path=os.path.join(self.workdir, f"n{node}.log"), env=self.env))
        return node

    async def wait_ready(self, session: aiohttp.ClientSession, node: int, timeout: float) -> float:
        """Seconds until node ``node`` answers ``/readyz`` with 200 (a leader known and its state
        caught up with the leader's commit), polled every 50 ms."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if self.procs[node - 1].poll() is not None:
                raise RuntimeError(f"node {node} exited ({self.procs[node - 1].returncode}):\n{self.log_tail()}")
            try:
                async with session.get(self.url(node) + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return time.monotonic() - began
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"node {node} not ready within {timeout} s:\n{self.log_tail()}")

    @property
    def pids(self) -> dict:
        """``n1``..``n3`` (and ``n4`` once joined) to pid."""
        return {f"n{i + 1}": p.pid for i, p in enumerate(self.procs)}

    def url(self, node: int) -> str:
        """Base URL of node ``node`` (1-based)."""
        return f"http://{self.http[node - 1]}"

    def follower(self) -> int:
        """A node that is not the leader."""
        return next(n for n in (1, 2, 3) if n != self.leader)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of every node's log, for error messages."""
        out = []
        for i in range(len(self.procs)):
            try:
                with open(os.path.join(self.workdir, f"n{i + 1}.log"), errors="replace") as f:
                    out.append(f"--- n{i + 1}\n" + "".join(f.readlines()[-lines:]))
            except OSError:
                pass
        return "\n".join(out)

    async def wait_leader(self, session: aiohttp.ClientSession, timeout: float = 60) -> int:
        """Wait until all three nodes name the same leader and a follower is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a belfry node exited ({p.returncode}):\n{self.log_tail()}")
            seen = set()
            try:
                for n in (1, 2, 3):
                    async with session.get(self.url(n) + "/v1/cluster", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        seen.add((await r.json()).get("leader") if r.status == 200 else None)
                if len(seen) == 1 and None not in seen:
                    self.leader = seen.pop()
                    async with session.get(self.url(self.follower()) + "/readyz") as r:
                        if r.status == 200:
                            return self.leader
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"no leader within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop every node (SIGTERM, SIGKILL after 10 s) and wait for them to exit."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            procs.stop(p, grace=10)
        self.procs = []


def client_session(connections: int = 64) -> aiohttp.ClientSession:
    """An aiohttp session that sends the bootstrap token."""
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {TOKEN}"},
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=60),
    )


def job_spec(name: str, target: str, start_ms: int, end_ms=None) -> dict:
    """A job every 1 s from ``start_ms`` (until ``end_ms``) POSTing ``{}`` to ``target``."""
    schedule = {"every": "1s", "start_at": rfc3339_ms(start_ms)}
    if end_ms is not None:
        schedule["end_at"] = rfc3339_ms(end_ms)
    return {
        "name": name,
        "schedule": schedule,
        "target": {
            "url": target,
            "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": "{}",
            "timeout": "30s",
        },
    }


async def post_retrying(session, url: str, body: dict, ok=(201,), deadline=None):
    """POST ``body``; retry 429 and 503 (and connection errors) until ``deadline``.

    Returns ``(status, seconds of the successful attempt)``; a 409 ``already_exists`` after
    a retried attempt counts as success (the earlier attempt applied).
    """
    retried = False
    while True:
        t = time.perf_counter()
        try:
            async with session.post(url, json=body) as r:
                text = await r.text()
                if r.status in ok or (retried and r.status == 409 and "already_exists" in text):
                    return r.status, time.perf_counter() - t
                if r.status not in (429, 503):
                    raise RuntimeError(f"POST {url}: {r.status} {text[:300]}")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        retried = True
        if deadline is not None and time.monotonic() > deadline:
            raise RuntimeError(f"POST {url}: still failing at the deadline")
        await asyncio.sleep(0.2)


async def create_jobs(session, base_url: str, specs, concurrency: int = 16, deadline=None) -> list:
    """Create every spec with single ``POST /v1/jobs`` from ``concurrency`` clients.

    ``specs`` is an iterator shared by the clients; returns the latencies in seconds. Stops
    early (returning what was done) once ``deadline`` (monotonic) has passed.
    """
    latencies = []
    url = base_url + "/v1/jobs"

    async def client():
        for spec in specs:
            if deadline is not None and time.monotonic() > deadline:
                return
            _, secs = await post_retrying(session, url, spec, deadline=deadline)
            latencies.append(secs)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies
