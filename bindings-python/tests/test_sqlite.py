"""The embedded SQLite store from Python: shared by threads and by separate processes (the
persistence test also runs on Redis)."""

import subprocess
import sys

import pytest

import racefree
from conftest import on_threads


def test_threads_share_one_file(tmp_path):
    url = f"sqlite:///{tmp_path}/racefree.db"

    def work(_):
        counter = racefree.Counter(racefree.open(url), "task:1")
        return [counter.next() for _ in range(500)]

    indexes = sorted(i for batch in on_threads(8, work) for i in batch)
    assert indexes == list(range(4_000))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_state_outlives_the_process(tmp_path, request, backend):
    """A process writes and exits; another reads it all back. (Redis: the same across clients.)"""
    if backend == "sqlite":
        url, other_url = f"sqlite:///{tmp_path}/racefree.db?namespace=app", f"sqlite:///{tmp_path}/racefree.db?namespace=other"
    else:
        url = request.getfixturevalue("redis_url")
        other_url = url + "-other"
    writer = (
        "import racefree, sys\n"
        "store = racefree.open(sys.argv[1])\n"
        "racefree.Counter(store, 'task:1').claim('exec-a')\n"
        "racefree.Records(store, 'pods').put('web-1', {'phase': 'Running'})\n"
        "print(racefree.StartLock(store, 'tasks').try_start('k', ttl=3600).token)\n"
    )
    out = subprocess.run([sys.executable, "-c", writer, url], capture_output=True, text=True, timeout=60, check=True)
    store = racefree.open(url)
    assert racefree.Counter(store, "task:1").index_of("exec-a") == 0
    assert racefree.Records(store, "pods").get("web-1").value == {"phase": "Running"}
    assert racefree.StartLock(store, "tasks").holder("k")[0] == int(out.stdout)
    # Another namespace of the same file or server sees none of it.
    other = racefree.open(other_url)
    assert racefree.Counter(other, "task:1").index_of("exec-a") is None


async def test_coordinator_on_sqlite_keeps_the_loop_free(tmp_path):
    import asyncio

    from racefree.asyncio import StartLock, TaskCoordinator

    store = racefree.open(f"sqlite:///{tmp_path}/racefree.db")
    assert not store.is_local
    coordinator = TaskCoordinator(store, ttl=30)
    runs = 0

    async def task():
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)

    started = await asyncio.gather(*(coordinator.start("tests.ExampleTask:1", task) for _ in range(50)))
    assert started.count(True) == 1
    await coordinator.wait("tests.ExampleTask:1")
    assert runs == 1 and not await coordinator.is_running("tests.ExampleTask:1")

    lock = StartLock(store, "tasks")
    held = await lock.try_start("k", ttl=30)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    with pytest.raises(racefree.Timeout):
        await lock.acquire("k", ttl=30, timeout=0.2)
    tick_task.cancel()
    await held.release()
    assert ticks >= 10
