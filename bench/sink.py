"""Driver side of the receiver: start it, reset it, read its records, measure its capacity."""

import asyncio
import os
import sys
import time
from datetime import datetime

import aiohttp

import procs
from belfry_cluster import free_ports, rfc3339_ms

HERE = os.path.dirname(os.path.abspath(__file__))


class Receiver:
    """The receiver process (receiver.py) on a free loopback port."""

    def __init__(self, workdir: str):
        """Pick the port; :meth:`start` runs it."""
        self.port = free_ports(1)[0]
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(workdir, "receiver.log")
        self.proc = None

    async def start(self, session: aiohttp.ClientSession, timeout: float = 20) -> None:
        """Spawn the receiver and wait until it answers."""
        self.proc = procs.spawn([sys.executable, os.path.join(HERE, "receiver.py"), "--port", self.port], log_path=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the receiver exited; see {self.log}")
            try:
                async with session.post(self.base + "/_reset") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    async def reset(self, session: aiohttp.ClientSession) -> None:
        """Forget every record."""
        async with session.post(self.base + "/_reset") as r:
            r.raise_for_status()

    async def records(self, session: aiohttp.ClientSession) -> list:
        """Every record as ``(key, scheduled_ms or None, arrival_ms)``."""
        async with session.get(self.base + "/_records", timeout=aiohttp.ClientTimeout(total=120)) as r:
            r.raise_for_status()
            text = await r.text()
        cache = {}
        out = []
        for line in text.splitlines():
            key, sched, arrival = line.split("\t")
            ms = cache.get(sched)
            if ms is None and sched:
                ms = cache[sched] = parse_ms(sched)
            out.append((key, ms, float(arrival) * 1000))
        return out

    def stop(self) -> None:
        """Stop the receiver process."""
        if self.proc:
            procs.stop(self.proc)
            self.proc = None


def parse_ms(text: str):
    """An RFC 3339 instant as Unix milliseconds (None if it does not parse)."""
    try:
        return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


async def capacity(receiver: Receiver, seconds: float = 5, concurrency: int = 64) -> dict:
    """POST to the receiver from ``concurrency`` keep-alive connections for ``seconds``.

    The requests carry the same headers the schedulers send, so the receiver does the same
    work per request; the client side is plain asyncio streams (a request written, the
    answer's header block read), cheaper than an HTTP client library, so that the receiver
    rather than the load generator is the limit. Returns requests/s, the latency p50/p99 in
    ms, and the share of one core the receiver used (near 100%: the receiver is the limit).
    """
    latencies = []
    stop_at = time.monotonic() + seconds
    stamp = rfc3339_ms(int(time.time() * 1000))

    async def worker(w: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        n = 0
        try:
            while time.monotonic() < stop_at:
                request = (
                    f"POST /capacity HTTP/1.1\r\nHost: 127.0.0.1\r\nIdempotency-Key: cap-{w}-{n}\r\n"
                    f"X-Scheduled-At: {stamp}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
                ).encode()
                t = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - t)
                n += 1
        finally:
            writer.close()

    cpu0 = procs.cpu_seconds(receiver.proc.pid)
    began = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.monotonic() - began
    busy = (procs.cpu_seconds(receiver.proc.pid) - cpu0) / elapsed
    async with aiohttp.ClientSession() as session:
        await receiver.reset(session)
    latencies.sort()
    pick = lambda p: latencies[int((len(latencies) - 1) * p)] * 1000 if latencies else float("nan")  # noqa: E731
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "concurrency": concurrency,
        "receiver_cpu": busy,
    }
