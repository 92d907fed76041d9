"""racefree's Python operations against their pure-Python equivalents, measured in the same run.

Run: python bench/bench.py [N]   (the baselines come from shared/bench/py_baselines.py)
Prints ns/op for both and the ratio racefree / baseline (target: <= 0.5).
"""

import asyncio
import os
import sys
import time
from pathlib import Path

import racefree

HERE = Path(__file__).resolve()
BASELINES_DIR = Path(os.environ.get("RACEFREE_BASELINES", HERE.parents[2].parent / "shared" / "bench"))
sys.path.insert(0, str(BASELINES_DIR))
from py_baselines import BASELINES  # noqa: E402


def counter_next(n):
    counter = racefree.Counter(racefree.open(), "task:1")
    for _ in range(n):
        counter.next()


def claim_index(n):
    counter = racefree.Counter(racefree.open(), "task:1")
    for i in range(n):
        counter.claim(f"exec-{i % 1000}")


def guard_once(n):
    guard = racefree.EventGuard(racefree.open(), "streams", ["ended"])
    for i in range(n):
        guard.mark(f"stream-{i % 1000}", "ended")


def start_lock(n):
    lock = racefree.StartLock(racefree.open(), "tasks")

    async def start_task(key):
        return lock.try_start(key, ttl=3600) is not None

    async def main():
        for i in range(n):
            await start_task(f"tests.ExampleTask:{i % 1000}")

    asyncio.run(main())


RACEFREE = {"counter_next": counter_next, "claim_index": claim_index, "guard_once": guard_once, "start_lock": start_lock}


def best_of(fn, n, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"CPython {sys.version.split()[0]}, n={n}, best of 5, both in this process")
    print(f"{'operation':14s} {'baseline ns/op':>15s} {'racefree ns/op':>15s} {'ratio':>7s}")
    for name, baseline in BASELINES.items():
        base = best_of(baseline, n, 5)
        ours = best_of(RACEFREE[name], n, 5)
        print(f"{name:14s} {base:15.1f} {ours:15.1f} {ours / base:7.2f}")


if __name__ == "__main__":
    main()
