"""The asyncio TaskCoordinator's start and finish of an empty task, against a raw try_start +
release and against the same by hand (try_start, run the task, release) — all in this process.

Run: python bench/bench_coordinator.py [N]   (memory store; prints ns/op and ratios; target <= 2x raw)
"""

import asyncio
import sys
import time

import racefree
from racefree.asyncio import TaskCoordinator


async def empty() -> None:
    pass


async def raw(n: int) -> None:
    lock = racefree.StartLock(racefree.open(), "tasks")
    for i in range(n):
        lock.try_start(f"k{i % 1000}", ttl=30).release()


async def by_hand(n: int) -> None:
    """What the coordinator does, minus keeping the lease alive: grant, run in a task, release."""
    lock = racefree.StartLock(racefree.open(), "tasks")
    loop = asyncio.get_running_loop()
    for i in range(n):
        lease = lock.try_start(f"k{i % 1000}", ttl=30)
        await loop.create_task(empty())
        lease.release()


async def coordinated(n: int) -> None:
    coordinator = TaskCoordinator(racefree.open(), ttl=30)
    for i in range(n):
        key = f"k{i % 1000}"
        await coordinator.start(key, empty)
        await coordinator.wait(key)


def best_of(fn, n: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        asyncio.run(fn(n))
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    print(f"CPython {sys.version.split()[0]}, n={n}, best of 5, memory store, all in this process")
    base = best_of(raw, n)
    hand = best_of(by_hand, n)
    ours = best_of(coordinated, n)
    print(f"{'operation':40s} {'ns/op':>9s} {'vs raw':>7s}")
    print(f"{'try_start + release (raw)':40s} {base:9.0f} {1:7.2f}")
    print(f"{'try_start + task + release (by hand)':40s} {hand:9.0f} {hand / base:7.2f}")
    print(f"{'coordinator start + wait (kept lease)':40s} {ours:9.0f} {ours / base:7.2f}")
    print(f"coordinator / by hand: {ours / hand:.2f}")


if __name__ == "__main__":
    main()
