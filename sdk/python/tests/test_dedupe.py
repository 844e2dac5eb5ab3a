import threading

import pytest

from belfry_receiver import Deduper


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_claim_done_and_forget():
    d = Deduper(clock=Clock())
    assert not d.seen_before("k")
    assert d.first_time("k")
    assert d.seen_before("k") and not d.is_done("k")
    assert not d.first_time("k")  # claimed: a concurrent duplicate
    d.mark_done("k")
    assert d.is_done("k") and not d.first_time("k")
    d.forget("k")
    assert not d.seen_before("k") and d.first_time("k")


def test_failed_work_is_forgotten_so_the_retry_runs():
    d = Deduper(clock=Clock())
    assert d.first_time("job:1")
    d.forget("job:1")  # the handler failed and answered 5xx
    assert d.first_time("job:1")  # belfry's retry is processed


def test_ttl_expiry_with_injected_clock():
    clock = Clock()
    d = Deduper(ttl_s=60, claim_ttl_s=10, clock=clock)
    assert d.first_time("a")
    clock.now += 9.9
    assert not d.first_time("a")
    clock.now += 0.2  # the claim ran out: a crashed handler does not block the key forever
    assert d.first_time("a")
    d.mark_done("a")
    clock.now += 59.9
    assert d.is_done("a")
    clock.now += 0.2
    assert not d.seen_before("a") and d.first_time("a")


def test_expired_entries_are_swept():
    clock = Clock()
    d = Deduper(ttl_s=5, clock=clock)
    for i in range(100):
        d.first_time(f"k{i}")
        d.mark_done(f"k{i}")
    clock.now += 6
    d.first_time("new")
    assert len(d) == 1


def test_bound_evicts_oldest_first():
    d = Deduper(max_keys=3, clock=Clock())
    for k in "abcd":
        assert d.first_time(k)
    assert len(d) == 3
    assert not d.seen_before("a")
    assert all(d.seen_before(k) for k in "bcd")
    d.mark_done("b")  # touched: now the newest
    d.first_time("e")
    assert not d.seen_before("c") and d.seen_before("b")


def test_bad_settings_are_refused():
    for kwargs in ({"max_keys": 0}, {"ttl_s": 0}, {"claim_ttl_s": -1}):
        with pytest.raises(ValueError):
            Deduper(**kwargs)


def test_concurrent_first_time_has_one_winner_per_key():
    d = Deduper(max_keys=10_000)
    keys = [f"job:{i}" for i in range(200)]
    wins = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker():
        start.wait()
        mine = [k for k in keys if d.first_time(k)]
        with lock:
            wins.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == sorted(keys)


def test_concurrent_mixed_operations_keep_the_bound():
    d = Deduper(max_keys=50)

    def worker(n):
        for i in range(2000):
            k = f"{n}:{i % 120}"
            if d.first_time(k):
                (d.mark_done if i % 3 else d.forget)(k)
            d.seen_before(k)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(d) <= 50
