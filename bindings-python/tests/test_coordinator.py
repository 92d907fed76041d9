import asyncio
import logging
import threading

import pytest

import racefree
from racefree.asyncio import TaskCoordinator, current_lease


async def test_hundred_concurrent_starts_one_runs(store):
    coordinator = TaskCoordinator(store, ttl=30)
    runs = 0

    async def task():
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)

    started = await asyncio.gather(*(coordinator.start("task:1", task) for _ in range(100)))
    assert started.count(True) == 1 and started.count(False) == 99
    assert coordinator.running() == ["task:1"] and await coordinator.is_running("task:1")
    await coordinator.wait("task:1")
    assert runs == 1
    # Completed: the key starts again, and nothing is left behind afterwards.
    assert await coordinator.start("task:1", task)
    await coordinator.wait("task:1")
    assert runs == 2
    assert coordinator.running() == [] and not await coordinator.is_running("task:1")
    assert store.stats()["entries"] == 0


async def test_failure_and_cancellation_release_the_key(store):
    coordinator = TaskCoordinator(store, ttl=30)

    async def failing():
        raise RuntimeError("boom")

    async def forever():
        await asyncio.sleep(3600)

    assert await coordinator.start("k", failing)
    await coordinator.wait("k")
    assert not await coordinator.is_running("k")
    assert await coordinator.start("k", forever)
    assert not await coordinator.start("k", forever)
    assert await coordinator.stop("k")
    assert not await coordinator.is_running("k") and store.stats()["entries"] == 0
    assert not await coordinator.stop("k")


async def test_lease_is_renewed_while_the_task_runs():
    # A real TTL, renewed every third of it: the process must stall for most of the 2 s to lose
    # the lease, far more than a loaded 2-core machine delays a loop (then the task is
    # cancelled, as the lost-lease tests check).
    coordinator = TaskCoordinator(racefree.open(), ttl=2)
    done = asyncio.Event()

    async def long_task():
        await done.wait()

    assert await coordinator.start("k", long_task)
    await asyncio.sleep(4.5)  # more than twice the TTL
    assert not await coordinator.start("k", long_task), "the lease expired while the task ran"
    done.set()
    await coordinator.wait("k")
    assert await coordinator.start("k", long_task)
    await coordinator.stop("k")


async def test_a_lost_lease_cancels_the_task(store, clock):
    coordinator = TaskCoordinator(store, ttl=10, renew_every=0.02)
    cancelled = asyncio.Event()

    async def task():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    assert await coordinator.start("k", task)
    clock.advance(10)  # the process stalled past its TTL…
    other = racefree.StartLock(store, "tasks").try_start("k", ttl=10)  # …and another took over
    assert other is not None
    await asyncio.wait_for(cancelled.wait(), 2)
    await coordinator.wait("k")
    assert racefree.StartLock(store, "tasks").holder("k")[0] == other.token, "the new holder lost its lease"


def test_eight_os_threads_one_starter(store):
    coordinator = TaskCoordinator(store, ttl=30)
    barrier = threading.Barrier(8)
    results = []

    async def task():
        await asyncio.sleep(0.05)

    async def start_and_wait():
        started = await coordinator.start("task:1", task)
        await coordinator.wait("task:1")
        return started

    def thread():
        barrier.wait()
        results.append(asyncio.run(start_and_wait()))

    threads = [threading.Thread(target=thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert store.stats()["entries"] == 0


def test_bad_configuration_is_refused_before_anything_is_acquired(store):
    for bad in (
        {"renew_every": 2},
        {"renew_every": 1},
        {"renew_every": 0},
        {"renew_every": -0.5},
        {"renew_every": float("nan")},
        {"max_hold": 0.5},
        {"ttl": 0},
    ):
        with pytest.raises(racefree.InvalidArgument):
            TaskCoordinator(store, **{"ttl": 1, **bad})
    with pytest.raises(TypeError):
        TaskCoordinator(store, ttl=1, renew_every="often")
    assert store.stats()["entries"] == 0


async def test_the_task_sees_its_lease_and_is_cancelled_when_it_is_released_elsewhere(store, caplog):
    coordinator = TaskCoordinator(store, ttl=10, renew_every=0.02)
    tokens = []
    cancelled = asyncio.Event()

    async def task():
        lease = current_lease()
        tokens.append(lease.token)
        await lease.release()  # an operator frees the key under the running task
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.ERROR, logger="racefree"):
        assert await coordinator.start("k", task)
        await asyncio.wait_for(cancelled.wait(), 5)
        await coordinator.wait("k")
    assert tokens and tokens[0] > 0
    assert any("lost its lease (not_owner)" in r.getMessage() for r in caplog.records), caplog.text
    with pytest.raises(LookupError):
        current_lease()


async def test_max_hold_cancels_a_task_that_would_run_forever(store, caplog):
    # A TTL a loaded machine's delays cannot outlast, so max_hold is what ends the task.
    coordinator = TaskCoordinator(store, ttl=1, max_hold=1.5)
    cancelled = asyncio.Event()

    async def forever():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with caplog.at_level(logging.ERROR, logger="racefree"):
        assert await coordinator.start("k", forever)
        await asyncio.wait_for(cancelled.wait(), 10)
        await coordinator.wait("k")
    assert any("max_hold_reached" in r.getMessage() for r in caplog.records), caplog.text
    assert not await coordinator.is_running("k"), "released once cancelled"


def test_stop_waits_for_a_task_on_another_loop(store):
    coordinator = TaskCoordinator(store, ttl=30)
    started, cleaned = threading.Event(), threading.Event()

    async def slow_to_stop():
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.2)  # cleanup takes a while after the cancel
            cleaned.set()

    async def run_on_its_own_loop():
        assert await coordinator.start("k", slow_to_stop)
        await coordinator.wait("k")

    other_loop = threading.Thread(target=asyncio.run, args=(run_on_its_own_loop(),))
    other_loop.start()
    assert started.wait(5)
    assert asyncio.run(coordinator.stop("k"))
    assert cleaned.is_set(), "stop returned before the task had ended"
    assert not racefree.StartLock(store, "tasks").is_held("k"), "stop returned before the lease was released"
    other_loop.join(5)


EXITS_WITH_A_TASK_RUNNING = """
import asyncio, sys
import racefree
from racefree.asyncio import TaskCoordinator

store = racefree.open(sys.argv[1])
coordinator = TaskCoordinator(store, ttl=30)

async def forever():
    await asyncio.sleep(3600)

async def start_and_leave():
    assert await coordinator.start("k", forever)
    await asyncio.sleep(0.05)

# A server that stops its loop without cancelling the tasks on it, then exits (no lifespan).
loop = asyncio.new_event_loop()
loop.run_until_complete(start_and_leave())
print("HELD", racefree.StartLock(store, "tasks").is_held("k"), flush=True)
"""


def test_a_process_that_exits_with_a_task_on_a_stopped_loop_frees_its_key(tmp_path):
    import subprocess
    import sys

    url = f"sqlite://{tmp_path / 'exit.db'}"
    out = subprocess.run([sys.executable, "-c", EXITS_WITH_A_TASK_RUNNING, url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "HELD True", "the task did not run"
    lock = racefree.StartLock(racefree.open(url), "tasks")
    assert not lock.is_held("k"), "the key stays held for the TTL after the process exited"
