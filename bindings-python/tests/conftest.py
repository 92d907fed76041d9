import threading
from typing import Callable, List, TypeVar

import pytest

import racefree

T = TypeVar("T")


@pytest.fixture
def clock() -> racefree.ManualClock:
    return racefree.ManualClock(1_000_000)


@pytest.fixture
def store(clock: racefree.ManualClock) -> racefree.Store:
    return racefree.open("memory://", clock=clock)


def on_threads(n: int, work: Callable[[int], T]) -> List[T]:
    """Runs ``work(i)`` on ``n`` OS threads released together by a barrier; returns the results."""
    barrier = threading.Barrier(n)
    results: List[T] = [None] * n  # type: ignore[list-item]
    errors: List[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
