"""Stores used after fork(): a child inherits the parent's store, connections and all, and must
never use them (on Redis a reply would go to whichever process reads first; SQLite forbids using a
connection carried across fork). Parent and children work on one counter and lock at once; every
index is issued exactly once and every call succeeds."""

import asyncio
import multiprocessing
import os
from typing import List

import pytest

import racefree
from racefree.asyncio import TaskCoordinator

CHILDREN = 3
CALLS = 500


@pytest.fixture(params=["sqlite", "redis"])
def url(request, tmp_path):
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return f"sqlite://{tmp_path / 'forked.db'}"


def work(store: racefree.Store, who: int) -> List[int]:
    """Indexes from one counter, a lease grant and release after each (replies of other shapes),
    then a coordinated task (its release runs on the module's release threads)."""
    counter = racefree.Counter(store, "forked")
    lock = racefree.StartLock(store, "forked")
    indexes = []
    for i in range(CALLS):
        indexes.append(counter.next())
        lease = lock.try_start(f"p{who}-{i % 7}", ttl=60)
        assert lease is not None, "a key only this process uses was held"
        lease.release()

    async def one_task() -> None:
        coordinator = TaskCoordinator(store, name="forked-tasks", ttl=30)
        ran = asyncio.Event()

        async def task() -> None:
            ran.set()

        assert await coordinator.start(f"task-{who}", task)
        await coordinator.wait(f"task-{who}")
        assert ran.is_set() and not await coordinator.is_running(f"task-{who}")

    asyncio.run(asyncio.wait_for(one_task(), 20))
    return indexes


def check_each_index_once(indexes: List[int], first: int) -> None:
    expected = list(range((CHILDREN + 1) * CALLS + 1))
    assert sorted(indexes + [first]) == expected, f"{len(set(indexes))} distinct of {len(indexes)}"


def test_os_fork_children_and_their_parent_share_one_store(url):
    store = racefree.open(url)
    first = racefree.Counter(store, "forked").next()  # the parent's connections are open and pooled
    work(store, 0)  # and its release threads are running
    base = racefree.Counter(store, "forked").peek()
    children = []
    for who in range(1, CHILDREN + 1):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_end)
            code = 1
            try:
                text, code = ",".join(map(str, work(store, who))), 0
            except BaseException as error:  # reported to the parent through the pipe
                text = repr(error)
            os.write(write_end, text.encode())
            os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    indexes = work(store, 0)
    for pid, read_end in children:
        with os.fdopen(read_end) as pipe:
            text = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child {pid}: {text}"
        indexes.extend(int(n) for n in text.split(","))
    assert sorted(indexes) == list(range(base, base + (CHILDREN + 1) * CALLS)), "an index was issued twice or lost"
    assert first == 0


_INHERITED: "racefree.Store | None" = None


def _work_in_pool(who: int) -> List[int]:
    assert _INHERITED is not None
    return work(_INHERITED, who)


def test_a_multiprocessing_fork_pool_shares_the_parents_store(url):
    global _INHERITED
    _INHERITED = racefree.open(url)
    first = racefree.Counter(_INHERITED, "forked").next()
    with multiprocessing.get_context("fork").Pool(CHILDREN) as pool:
        results = pool.map_async(_work_in_pool, range(1, CHILDREN + 1))
        indexes = work(_INHERITED, 0)
        for child in results.get(timeout=120):
            indexes.extend(child)
    check_each_index_once(indexes, first)
