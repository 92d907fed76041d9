"""A key never runs twice at once, under real faults: two processes run key "k" through the
asyncio TaskCoordinator while the store stalls past the 1 s lease TTL — a Redis server frozen by
SIGSTOP, a SQLite file whose write lock a third process holds. Each run prints its own start and
end on the wall clock, and the two runs must not overlap."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from conftest import _free_port, start_redis

WORKER = Path(__file__).with_name("lease_fault_worker.py")
STALL = 2.5


class Worker:
    """A worker process whose stdout lines are collected as it prints them."""

    def __init__(self, role: str, url: str, run_for: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), role, url, str(run_for)], stdout=subprocess.PIPE, text=True
        )
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in list(self.lines)):
            assert time.monotonic() < deadline, f"no {prefix!r} in {self.lines}"
            time.sleep(0.01)

    def finish(self) -> List[str]:
        assert self.process.wait(timeout=60) == 0, self.lines
        self._reader.join(timeout=10)
        return self.lines


def run_of(who: str, lines: List[str]) -> Tuple[int, int]:
    stamp: Dict[str, int] = {}
    for line in lines:
        parts = line.split()
        if parts[:2] == ["RUN", who] and parts[2] in ("start", "end"):
            stamp.setdefault(parts[2], int(parts[3]))
    assert set(stamp) == {"start", "end"}, f"{who} did not run: {lines}"
    return stamp["start"], stamp["end"]


def no_overlap_through(url: str, stall: Callable[[], None]) -> None:
    holder = Worker("holder", url, 6.0)
    holder.wait_for("RUN holder start")
    starter = Worker("starter", url, 0.3)
    starter.wait_for("READY")  # its own open must not meet the stall
    time.sleep(0.3)
    stall()
    held, started = run_of("holder", holder.finish()), run_of("starter", starter.finish())
    assert held[1] < started[0], f"the runs overlap by {(held[1] - started[0]) / 1000:.0f} ms"
    assert any("lost its lease" in line and "renewals_failed" in line for line in holder.lines), holder.lines


def test_redis_frozen_longer_than_the_ttl(tmp_path: Path) -> None:
    port = _free_port()
    server = start_redis(port, str(tmp_path), "--appendonly", "no")
    try:

        def freeze() -> None:
            os.kill(server.pid, signal.SIGSTOP)
            time.sleep(STALL)
            os.kill(server.pid, signal.SIGCONT)

        no_overlap_through(f"redis://127.0.0.1:{port}/0?timeout_ms=300", freeze)
    finally:
        os.kill(server.pid, signal.SIGCONT)
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_sqlite_write_locked_longer_than_the_ttl(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = f"sqlite://{path}?busy_timeout_ms=300"
    import racefree

    racefree.open(url)  # the schema exists before the lock is taken

    def lock_the_file() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        time.sleep(STALL)
        db.execute("COMMIT")
        db.close()

    no_overlap_through(url, lock_the_file)
