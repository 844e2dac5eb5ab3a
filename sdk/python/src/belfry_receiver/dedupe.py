"""Running each fire's work once, by ``Idempotency-Key``."""

import threading
import time
from collections import OrderedDict
from typing import Callable


class Deduper:
    """The keys seen lately, in memory, bounded in count and age, safe across threads.

    belfry delivers each fire at least once: a retry, or a repeat after a worker died in the
    middle of a send, carries the same ``Idempotency-Key``. Call :meth:`first_time` before the
    work; if the work fails, :meth:`forget` the key so belfry's retry runs it. Answer 2xx to a
    repeat: its work was done. Several receiver processes need a shared store instead (a
    database table with the key as its primary key does the same).
    """

    def __init__(self, capacity: int = 100_000, ttl_s: float = 7 * 24 * 3600,
                 clock: Callable[[], float] = time.monotonic):
        self._seen: "OrderedDict[str, float]" = OrderedDict()
        self._capacity = max(1, capacity)
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        """Records ``key``; True only the first time it is seen (within the bounds)."""
        with self._lock:
            now = self._clock()
            while self._seen:
                oldest, at = next(iter(self._seen.items()))
                if now - at < self._ttl:
                    break
                del self._seen[oldest]
            if key in self._seen:
                return False
            while len(self._seen) >= self._capacity:
                self._seen.popitem(last=False)
            self._seen[key] = now
            return True

    def forget(self, key: str) -> None:
        """Forgets ``key``: its work failed, and belfry's retry should run it."""
        with self._lock:
            self._seen.pop(key, None)
