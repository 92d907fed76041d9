"""One process of test_lease_faults.py: runs key "k" through an asyncio TaskCoordinator and
prints its run's start, heartbeats and end on the wall clock (microseconds), plus what the
coordinator logs. The holder starts at once; the starter keeps trying until it runs."""

import asyncio
import logging
import sys
import time

import racefree
from racefree.asyncio import TaskCoordinator


def say(line: str) -> None:
    print(line, flush=True)


class Printed(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say(f"LOG {record.getMessage()}")


async def main(role: str, url: str, run_for: float) -> None:
    logging.getLogger("racefree").addHandler(Printed())
    store = racefree.open(url)
    say("READY")  # the store is open: the test may stall it from now on
    coordinator = TaskCoordinator(store, ttl=1.0)
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    async def run() -> None:
        say(f"RUN {role} start {time.time_ns() // 1000}")
        began = loop.time()
        try:
            while loop.time() - began < run_for:
                say(f"RUN {role} beat {time.time_ns() // 1000}")
                await asyncio.sleep(0.02)
        finally:
            say(f"RUN {role} end {time.time_ns() // 1000}")
            ended.set()

    give_up = loop.time() + 20
    while True:
        try:
            if await coordinator.start("k", run):
                break
        except racefree.RacefreeError:
            pass  # the store is stalled: keep trying
        if loop.time() > give_up:
            sys.exit(f"{role} never started")
        await asyncio.sleep(0.005)
    await ended.wait()
    await coordinator.wait("k")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
