"""An in-memory, bounded, expiring record of `Idempotency-Key`s, safe across threads."""

import threading
import time
from collections import OrderedDict
from typing import Callable

_CLAIMED, _DONE = "claimed", "done"


class Deduper:
    """Tracks keys as claimed (work in progress) or done, each with an expiry.

    first_time(key) claims a key atomically: True for exactly one caller until the key is
    forgotten or expires. Call mark_done(key) once the work has succeeded, or forget(key)
    when it failed, so belfry's retry is processed instead of being taken for a duplicate.

    ttl_s: how long a done key is remembered; at least the jobs' retry.max_age (default 1 h).
    claim_ttl_s: how long a claim lasts without mark_done/forget (a crashed handler).
    max_keys: the bound; beyond it the oldest entries are dropped first.
    clock: monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        max_keys: int = 100_000,
        ttl_s: float = 86_400,
        claim_ttl_s: float = 600,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_keys < 1 or ttl_s <= 0 or claim_ttl_s <= 0:
            raise ValueError("max_keys, ttl_s and claim_ttl_s must be positive")
        self.max_keys, self.ttl_s, self.claim_ttl_s, self._clock = max_keys, ttl_s, claim_ttl_s, clock
        self._entries: "OrderedDict[str, tuple]" = OrderedDict()  # key -> (state, expires_at)
        self._lock = threading.Lock()

    def _state(self, key: str, now: float):
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def _put(self, key: str, state: str, expires_at: float) -> None:
        self._entries[key] = (state, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def _sweep(self, now: float) -> None:
        # Drops expired entries at the old end; the bound caps whatever this leaves.
        while self._entries:
            key, (_, expires_at) = next(iter(self._entries.items()))
            if expires_at > now:
                break
            del self._entries[key]

    def first_time(self, key: str) -> bool:
        """Claims `key`: True when it was neither claimed nor done (the caller does the work)."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            if self._state(key, now) is not None:
                return False
            self._put(key, _CLAIMED, now + self.claim_ttl_s)
            return True

    def mark_done(self, key: str) -> None:
        """Records that the work for `key` succeeded: later deliveries are duplicates."""
        with self._lock:
            now = self._clock()
            self._put(key, _DONE, now + self.ttl_s)

    def forget(self, key: str) -> None:
        """Drops `key` (the work failed): the next delivery with it is processed."""
        with self._lock:
            self._entries.pop(key, None)

    def seen_before(self, key: str) -> bool:
        """True when `key` is claimed or done; records nothing."""
        with self._lock:
            return self._state(key, self._clock()) is not None

    def is_done(self, key: str) -> bool:
        """True when the work for `key` has been marked done."""
        with self._lock:
            return self._state(key, self._clock()) == _DONE

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
