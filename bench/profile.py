"""``--profile``: a CPU profile of each belfry node over a run's window, as flame graphs.

``perf record`` (Debian's linux-perf) samples each node's threads with call graphs for the
window; ``perf script`` turns the samples into stacks, and inferno (the Rust port of the
FlameGraph tools, installed by ``bench/compare --profile`` into ``bench/.tools``) folds them
and draws one SVG per node. Beside each SVG a ``.txt`` lists where the samples went, by the
leaf frame's group (kernel, allocator, belfry, sled, rustls, ...), so a reader can say where
the CPU goes without opening the picture.
"""

import collections
import os
import shutil
import signal
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, ".tools", "bin")
# Samples per second per CPU: prime, so it does not beat with timers.
FREQUENCY = 499


def available() -> str:
    """An error message when ``perf`` or inferno is missing, else the empty string."""
    if not shutil.which("perf"):
        return "perf is not installed (Debian: apt-get install linux-perf)"
    for tool in ("inferno-collapse-perf", "inferno-flamegraph"):
        if not os.path.exists(os.path.join(TOOLS, tool)):
            return f"{tool} is missing from {TOOLS} (bench/compare --profile installs it)"
    return ""


class Recorder:
    """``perf record`` of some processes, one file per process."""

    def __init__(self, pids: dict, out_dir: str, label: str):
        self.pids = pids
        self.out_dir = out_dir
        self.label = label
        self.procs = {}

    def path(self, name: str, suffix: str) -> str:
        """The output file for process ``name``."""
        return os.path.join(self.out_dir, f"{self.label}-{name}{suffix}")

    def start(self) -> None:
        """Starts sampling every process; perf's messages go to a ``.log`` beside its data."""
        os.makedirs(self.out_dir, exist_ok=True)
        for name, pid in self.pids.items():
            # DWARF call graphs: the release build keeps its debug info but no frame pointers.
            args = ["perf", "record", "-F", str(FREQUENCY), "--call-graph", "dwarf", "-p", str(pid)]
            args += ["-o", self.path(name, ".perf")]
            with open(self.path(name, ".log"), "wb") as log:
                self.procs[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> None:
        """Stops sampling."""
        for p in self.procs.values():
            p.send_signal(signal.SIGINT)
        for p in self.procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()

    def write(self) -> list:
        """Writes the flame graphs and their summaries; returns the SVG paths."""
        svgs = []
        for name in self.procs:
            data = self.path(name, ".perf")
            if not os.path.exists(data):
                continue
            script = subprocess.run(["perf", "script", "-i", data], capture_output=True, check=False)
            collapse = os.path.join(TOOLS, "inferno-collapse-perf")
            folded = subprocess.run([collapse], input=script.stdout, capture_output=True, check=False).stdout
            with open(self.path(name, ".folded"), "wb") as f:
                f.write(folded)
            title = f"belfry node {name}: {self.label}"
            graph = os.path.join(TOOLS, "inferno-flamegraph")
            # The narrowest frames are left out (inferno's --minwidth 0.5): DWARF stacks are deep,
            # and the picture would be megabytes of slivers.
            args = [graph, "--title", title, "--minwidth", "0.5"]
            svg = subprocess.run(args, input=folded, capture_output=True, check=False).stdout
            with open(self.path(name, ".svg"), "wb") as f:
                f.write(svg)
            with open(self.path(name, ".txt"), "w") as f:
                f.write(summary(folded.decode(errors="replace")))
            os.remove(data)
            svgs.append(self.path(name, ".svg"))
        return svgs


# Leaf frames by what they belong to, first match wins.
GROUPS = [
    ("kernel: network (tcp, loopback)", ("tcp_", "ip_", "__dev_", "loopback", "skb", "__netif", "net_rx", "sock_")),
    ("kernel: futex and scheduling", ("futex", "schedule", "__switch_to", "finish_task_switch", "try_to_wake_up")),
    ("kernel: file and fsync", ("ext4", "jbd2", "sync_file", "fdatasync", "file_write", "blk_", "xfs_", "iomap")),
    ("kernel: other", ("[kernel", "entry_SYSCALL", "do_syscall", "syscall_exit", "__x64_sys", "_raw_spin")),
    ("allocator (malloc/free)", ("malloc", "free", "realloc", "calloc", "_int_", "cfree", "mi_", "je_", "tcache")),
    ("memcpy/memmove", ("memcpy", "memmove", "memset")),
    ("json (serde_json)", ("serde_json",)),
    ("tls (rustls, ring)", ("rustls", "ring::", "ring_core", "aes_", "gcm_", "chacha", "sha256", "sha512")),
    ("http/2 and grpc (h2, hyper, tonic)", ("h2::", "hyper", "tonic", "tower", "http::")),
    ("sled", ("sled::",)),
    ("openraft", ("openraft",)),
    ("tokio runtime", ("tokio::",)),
    ("belfry", ("belfry",)),
]


def group(frame: str) -> str:
    """The group of a leaf frame."""
    for name, needles in GROUPS:
        if any(n in frame for n in needles):
            return name
    return "other"


def summary(folded: str) -> str:
    """Samples by leaf group and by the belfry frame nearest the leaf, as text."""
    leaves = collections.Counter()
    nearest = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaves[group(frames[-1])] += n
        ours = next((f for f in reversed(frames) if "belfry" in f), "(no belfry frame)")
        nearest[ours.split("::{{closure}}")[0][:110]] += n
    lines = [f"{total} cycles sampled (perf's sample periods, summed)", "", "by leaf frame:"]
    lines += [f"  {100 * n / max(total, 1):5.1f} %  {name}" for name, n in leaves.most_common()]
    lines += ["", "by the belfry frame nearest the leaf (top 25):"]
    lines += [f"  {100 * n / max(total, 1):5.1f} %  {name}" for name, n in nearest.most_common(25)]
    return "\n".join(lines) + "\n"
