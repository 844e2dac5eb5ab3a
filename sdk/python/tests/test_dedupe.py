import threading

from belfry_receiver import Deduper


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_key_counts_once_until_it_expires_or_is_forgotten():
    clock = Clock()
    d = Deduper(capacity=10, ttl_s=60, clock=clock)
    assert d.first_time("7:1")
    clock.now = 59
    assert not d.first_time("7:1")
    clock.now = 121
    assert d.first_time("7:1"), "expired after the ttl"
    d.forget("7:1")
    assert d.first_time("7:1"), "forgotten after its work failed"


def test_the_oldest_keys_make_room_past_the_capacity():
    d = Deduper(capacity=2, ttl_s=60, clock=Clock())
    assert d.first_time("a") and d.first_time("b") and d.first_time("c")
    assert d.first_time("a"), "a was evicted for c"
    assert not d.first_time("c")


def test_concurrent_deliveries_of_one_key_run_it_once():
    d = Deduper()
    firsts = []
    barrier = threading.Barrier(16)

    def deliver():
        barrier.wait()
        firsts.append(d.first_time("7:1700000000000"))

    threads = [threading.Thread(target=deliver) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert firsts.count(True) == 1
