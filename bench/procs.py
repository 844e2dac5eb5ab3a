"""Child processes and what /proc says about them.

Every process the benchmark starts goes through :func:`spawn`, which records it so that
:func:`kill_all` (run on exit, on error and on Ctrl-C) stops it, and asks the kernel to kill
it if the driver itself dies (``PR_SET_PDEATHSIG``). CPU time and resident memory come from
``/proc/PID/stat`` and ``/proc/PID/status``.
"""

import asyncio
import ctypes
import os
import signal
import subprocess
import time

CHILDREN: list = []
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the driver exits."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def spawn(args, *, log_path=None, env=None, stdout=None) -> subprocess.Popen:
    """Start ``args`` with its output in ``log_path`` (or ``stdout``) and track it."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else log,
        stderr=log,
        env=env,
        preexec_fn=_die_with_parent,
    )
    if log_path:
        log.close()
    CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` seconds, and reap it."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            pass
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def kill_all() -> None:
    """Stop every tracked child that is still running (SIGTERM, then SIGKILL)."""
    for proc in list(CHILDREN):
        if proc.poll() is None:
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
    deadline = time.time() + 3
    for proc in list(CHILDREN):
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    CHILDREN.clear()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, field: str = "VmRSS") -> int:
    """A ``kB`` field of /proc/PID/status (``VmRSS``, ``VmHWM``), in KiB; 0 if absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples VmRSS of some processes every ``every`` seconds and keeps each one's peak."""

    def __init__(self, pids: dict, every: float = 0.5):
        """``pids`` maps a label (``n1``, ``apscheduler``) to a pid."""
        self.pids = pids
        self.every = every
        self.peak = {label: 0 for label in pids}
        self._task = None

    def sample(self) -> None:
        """Take one sample of every process."""
        for label, pid in self.pids.items():
            try:
                self.peak[label] = max(self.peak[label], status_kib(pid))
            except OSError:
                pass

    async def _run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        """Start sampling in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict:
        """Stop sampling; return the peaks in MiB by label."""
        self.sample()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        return {label: kib / 1024 for label, kib in self.peak.items()}


def cpu_total(pids) -> float:
    """Sum of :func:`cpu_seconds` over ``pids`` (a process that has exited counts 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all of /proc/stat's cpu line but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def machine_info() -> dict:
    """nproc, kernel, CPU model, memory and the load average right now."""
    info = {"nproc": os.cpu_count(), "kernel": os.uname().release, "machine": os.uname().machine}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        info["mem_gib"] = round(status_meminfo("MemTotal") / 1024 / 1024, 1)
    except OSError:
        pass
    info["loadavg"] = loadavg()
    return info


def status_meminfo(field: str) -> int:
    """A field of /proc/meminfo in KiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
