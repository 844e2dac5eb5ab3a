"""The APScheduler side: one process running an AsyncIOScheduler with K interval jobs.

Each job runs every second from its own ``start_date`` and POSTs with aiohttp to the receiver,
with the same headers belfry sends: ``Idempotency-Key`` (``<job id>:<scheduled ms>``) and the
run's *scheduled* instant (``X-Scheduled-At``, RFC 3339 with milliseconds), so the receiver
measures true lag: arrival minus the instant APScheduler meant to run the job.

APScheduler 3.x does not pass the scheduled time to a job. ``ScheduledTimeExecutor`` is the
stock ``AsyncIOExecutor`` with one change: it runs each of a submission's ``run_times``
through the stock ``run_coroutine_job`` (so misfire handling and events are unchanged) with a
context variable set to that run time, which the job reads.

Settings chosen to match belfry's defaults where APScheduler has an equivalent: every missed
instant is run (``coalesce=False``) as long as it is at most ``--misfire-grace`` seconds late
(belfry: 60 s), and runs of one job may overlap (``max_instances`` high; belfry: ``allow``).
APScheduler has no retries; a failed POST is counted and printed at exit.

With ``--idle`` the jobs start a year from now (the memory mode): nothing fires.

The process prints ``ready <seconds it took>`` on stdout once every job is in the scheduler, and runs until
SIGTERM or SIGINT.
"""

import argparse
import asyncio
import contextvars
import signal
import sys
import time
from datetime import datetime, timedelta, timezone

import aiohttp
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.executors.base import run_coroutine_job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

SCHEDULED_AT: contextvars.ContextVar = contextvars.ContextVar("scheduled_at")


class ScheduledTimeExecutor(AsyncIOExecutor):
    """AsyncIOExecutor that exposes each run's scheduled time through ``SCHEDULED_AT``."""

    def _do_submit_job(self, job, run_times):
        """Run every run time of this submission in one task, as the stock executor does."""

        async def run_each():
            events = []
            for run_time in run_times:
                token = SCHEDULED_AT.set(run_time)
                try:
                    events += await run_coroutine_job(job, job._jobstore_alias, [run_time], self._logger.name)
                finally:
                    SCHEDULED_AT.reset(token)
            return events

        def callback(f):
            self._pending_futures.discard(f)
            try:
                events = f.result()
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        f = self._eventloop.create_task(run_each())
        f.add_done_callback(callback)
        self._pending_futures.add(f)


class Deliverer:
    """Holds the shared aiohttp session and the failure count."""

    def __init__(self, url: str, connections: int):
        """Remember the target; the session is made inside the running loop."""
        self.url = url
        self.connections = connections
        self.session = None
        self.failures = 0
        self.sent = 0

    async def open(self) -> None:
        """Create the client session (connection pool of ``connections``)."""
        connector = aiohttp.TCPConnector(limit=self.connections)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))

    async def deliver(self, job_id: str) -> None:
        """The job body: POST to the receiver with the key and the scheduled instant."""
        run_time = SCHEDULED_AT.get()
        ms = round(run_time.timestamp() * 1000)
        headers = {
            "Idempotency-Key": f"{job_id}:{ms}",
            "X-Scheduled-At": run_time.astimezone(timezone.utc).isoformat(timespec="milliseconds"),
            "Content-Type": "application/json",
        }
        try:
            async with self.session.post(self.url, data=b"{}", headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    self.failures += 1
        except Exception:
            self.failures += 1
        self.sent += 1


def parse_args() -> argparse.Namespace:
    """Command-line flags (set by the driver)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="receiver URL")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--base-ms", type=int, help="Unix ms of the first fire (whole second)")
    p.add_argument("--end-ms", type=int, help="no fire after this Unix ms")
    p.add_argument("--shape", choices=["steady", "burst", "once"], default="steady")
    p.add_argument("--idle", action="store_true", help="schedule every job a year ahead")
    p.add_argument("--misfire-grace", type=int, default=60)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    return p.parse_args()


def offset_ms(i: int, jobs: int, shape: str) -> int:
    """Milliseconds into the second at which job ``i`` fires (the same rule as belfry's side)."""
    return (i * 1000) // jobs if shape == "steady" else 0


async def run(args: argparse.Namespace) -> None:
    """Start the scheduler with every job, say ``ready``, and wait for a stop signal."""
    deliverer = Deliverer(args.url, args.connections)
    await deliverer.open()
    scheduler = AsyncIOScheduler(
        timezone=timezone.utc,
        executors={"default": ScheduledTimeExecutor()},
        job_defaults={"coalesce": False, "max_instances": 1000, "misfire_grace_time": args.misfire_grace},
    )
    utc = timezone.utc
    if args.idle:
        far = datetime.now(utc).replace(microsecond=0) + timedelta(days=365)
    end = datetime.fromtimestamp(args.end_ms / 1000, utc) if args.end_ms else None
    began = time.monotonic()
    for i in range(args.jobs):
        if args.idle:
            start = far
        else:
            start = datetime.fromtimestamp((args.base_ms + offset_ms(i, args.jobs, args.shape)) / 1000, utc)
        job_id = f"aps-{i:07d}"
        trigger = IntervalTrigger(seconds=1, start_date=start, end_date=end, timezone=utc)
        scheduler.add_job(deliverer.deliver, trigger, args=[job_id], id=job_id)
    scheduler.start()
    print(f"ready {time.monotonic() - began:.3f}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    scheduler.shutdown(wait=False)
    await deliverer.session.close()
    print(f"sent {deliverer.sent} failed {deliverer.failures}", file=sys.stderr, flush=True)


def main() -> None:
    """Entry point: pick the event loop and run."""
    args = parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
