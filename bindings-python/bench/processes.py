"""The multi-process benchmarks' runner: one body in several processes, started together."""

import multiprocessing as mp
import time


def run(target, arg, n, processes):
    """Runs ``target(arg, n, start, out)`` in ``processes`` processes, sets ``start`` once all are
    up, and returns the calls per second of all of them together; a process that fails fails the
    run."""
    start, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=target, args=(arg, n, start, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
        assert p.exitcode == 0, f"{target.__name__} failed"
    return processes * n / (time.perf_counter() - t0)
