import threading
import time
from datetime import timedelta

import pytest

import racefree
from conftest import on_threads


def test_hundred_threads_one_lease_then_restart(store):
    def work(_):
        return racefree.StartLock(store, "tasks").try_start("tests.ExampleTask:1", ttl=30)

    leases = [lease for lease in on_threads(100, work) if lease is not None]
    assert len(leases) == 1
    lock = racefree.StartLock(store, "tasks")
    leases[0].release()
    again = lock.try_start("tests.ExampleTask:1", ttl=30)
    assert again is not None and again.token > leases[0].token


def test_expiry_hands_the_key_to_the_next_starter(store, clock):
    lock = racefree.StartLock(store, "tasks")
    first = lock.try_start("k", ttl=10)
    assert lock.try_start("k", ttl=10) is None
    clock.advance(10)
    second = lock.try_start("k", ttl=10)
    assert second is not None and second.token > first.token
    with pytest.raises(racefree.NotOwner) as err:
        first.release()
    assert (err.value.key, err.value.token, err.value.code) == ("k", first.token, "not_owner")
    with pytest.raises(racefree.NotOwner):
        first.renew(ttl=10)
    clock.advance(9)
    second.renew(ttl=10)
    clock.advance(5)
    assert lock.holder("k") == (second.token, second.deadline_ms)
    assert second.time_left == pytest.approx(5.0)
    second.release()
    store.sweep()
    assert store.stats()["entries"] == 0


def test_with_block_releases(store):
    lock = racefree.StartLock(store, "tasks")
    with lock.hold("k", ttl=30) as lease:
        assert lock.is_held("k") and lease.key == "k"
    assert not lock.is_held("k")
    with pytest.raises(RuntimeError):
        with lock.hold("k", ttl=30):
            raise RuntimeError("task failed")
    assert not lock.is_held("k"), "a failing block kept its lease"


def test_with_block_reports_a_lease_lost_inside_it(store, clock):
    lock = racefree.StartLock(store, "tasks")
    with pytest.raises(racefree.NotOwner):
        with lock.hold("k", ttl=1):
            clock.advance(2)


def test_acquire_times_out_and_releases_the_gil(store):
    lock = racefree.StartLock(store, "tasks")
    held = lock.try_start("k", ttl=30)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.005)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        with pytest.raises(racefree.Timeout) as err:
            lock.acquire("k", ttl=30, timeout=0.3)
    finally:
        stop.set()
        t.join()
    assert isinstance(err.value, TimeoutError) and err.value.waited >= 0.3
    assert len(ticks) >= 20, f"the ticker thread ran only {len(ticks)} times: the GIL was held"
    held.release()
    assert lock.acquire("k", ttl=30, timeout=1).token > held.token


def test_acquire_gets_the_key_once_released(store):
    lock = racefree.StartLock(store, "tasks")
    held = lock.try_start("k", ttl=30)
    threading.Timer(0.05, held.release).start()
    assert lock.acquire("k", ttl=30, timeout=5).token > held.token


@pytest.mark.parametrize("ttl", [0, -1, 0.0001, float("nan"), float("inf"), 10**12, 2**63, 10**30, -(10**30)])
def test_bad_ttls(store, ttl):
    with pytest.raises(racefree.InvalidArgument):
        racefree.StartLock(store, "tasks").try_start("k", ttl=ttl)
    assert store.stats()["entries"] == 0


@pytest.mark.parametrize("ttl", [None, "30", True, object()])
def test_wrong_ttl_types(store, ttl):
    with pytest.raises(TypeError, match="ttl must be"):
        racefree.StartLock(store, "tasks").try_start("k", ttl=ttl)


@pytest.mark.parametrize("ttl", [30, 30.0, timedelta(seconds=30)])
def test_int_float_and_timedelta_ttls_agree(store, ttl):
    lease = racefree.StartLock(store, "tasks").try_start("k", ttl=ttl)
    assert lease is not None and abs(lease.time_left - 30) < 1
