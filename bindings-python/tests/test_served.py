"""The Django test project served as production serves it: gunicorn with four uvicorn workers and
``--preload`` (the store is opened at import, before the workers fork), hundreds of concurrent
HTTP requests from a real client, on SQLite and on Redis. Every run appends its own start and end
to a log; a key must never run twice at once, must start again once done, and must be free again
soon after its worker is killed (kill -9: within the TTL + 1 s) or stopped (SIGTERM: within 1 s,
the lifespan shutdown releases it)."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import httpx
import pytest

from conftest import _free_port, stop_when_this_process_exits

HERE = Path(__file__).resolve().parent
TTL = 3.0
WORKERS = 4
REQUESTS = int(os.environ.get("RACEFREE_SERVED_REQUESTS", "400"))
KEYS = 20


class Served:
    def __init__(self, store_url: str, tmp: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "runs.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "django_project.settings",
            "RACEFREE_TEST_STORE": store_url,
            "RACEFREE_TEST_TTL": str(TTL),
            "RACEFREE_TEST_DB": str(tmp / "django.sqlite3"),
            "RACEFREE_RUN_LOG": str(self.log),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--preload", "-w", str(WORKERS), "-k", "uvicorn.workers.UvicornWorker",
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "10", "django_project.asgi:application"],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "gunicorn.log", "w"),
        )
        stop_when_this_process_exits(self.process.pid, "TERM")
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.base}/held/none", timeout=1)
                break
            except httpx.HTTPError:
                assert self.process.poll() is None, (tmp / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def runs(self) -> Dict[str, List[Tuple[int, int, int]]]:
        """Per key, each run's (start, end, token) from the log."""
        started: Dict[Tuple[str, int], int] = {}
        runs: Dict[str, List[Tuple[int, int, int]]] = defaultdict(list)
        for line in self.log.read_text().splitlines() if self.log.exists() else []:
            what, key, _pid, token, at = line.split()
            if what == "start":
                started[(key, int(token))] = int(at)
            else:
                runs[key].append((started.pop((key, int(token))), int(at), int(token)))
        assert not started, f"runs that never ended: {started}"
        return runs

    def start(self, key: str, seconds: float = 0.2) -> dict:
        response = httpx.post(f"{self.base}/run/{key}", params={"seconds": seconds}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def held(self, key: str) -> bool:
        return bool(httpx.get(f"{self.base}/held/{key}", timeout=10).json()["held"])

    def wait_free(self, key: str, within: float) -> float:
        """Seconds until `key` could be started again (by starting it), at most `within`."""
        began = time.monotonic()
        while time.monotonic() - began < within:
            if self.start(key, seconds=0.01)["started"]:
                return time.monotonic() - began
            time.sleep(0.02)
        raise AssertionError(f"{key} was still held after {within} s")


@pytest.fixture(params=["sqlite", "redis"])
def served(request, tmp_path) -> Iterator[Served]:
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    else:
        url = f"sqlite://{tmp_path / 'racefree.db'}"
    server = Served(url, tmp_path)
    yield server
    server.stop()


def assert_no_overlap(runs: Dict[str, List[Tuple[int, int, int]]]) -> None:
    for key, intervals in runs.items():
        intervals.sort()
        for (_, end, token), (start, _, next_token) in zip(intervals, intervals[1:]):
            assert end <= start, f"{key} ran twice at once: token {token} ended at {end}, {next_token} began at {start}"


def test_hundreds_of_concurrent_requests_one_run_per_key_and_restart_after(served):
    async def flood() -> List[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=served.base, timeout=30, limits=limits) as client:
            return await asyncio.gather(
                *(client.post(f"/run/k{i % KEYS}", params={"seconds": 0.3}) for i in range(REQUESTS))
            )

    responses = asyncio.run(flood())
    assert [r.status_code for r in responses if r.status_code != 200] == [], "server errors"
    pids = {r.json()["pid"] for r in responses}
    assert len(pids) > 1, "one worker served everything: the test would not cross processes"
    deadline = time.monotonic() + 10
    while any(served.held(f"k{i}") for i in range(KEYS)):
        assert time.monotonic() < deadline, "a key stayed held after its run"
        time.sleep(0.05)
    runs = served.runs()
    assert set(runs) == {f"k{i}" for i in range(KEYS)}, "a key never ran"
    assert sum(r.json()["started"] for r in responses) == sum(map(len, runs.values()))
    assert_no_overlap(runs)
    for i in range(KEYS):  # done: every key starts again
        assert served.start(f"k{i}", seconds=0.01)["started"]


def test_a_killed_worker_frees_its_key_within_the_ttl(served):
    pid = served.start("crash", seconds=60)["pid"]
    os.kill(pid, signal.SIGKILL)
    freed_after = served.wait_free("crash", within=TTL + 1)
    assert freed_after <= TTL + 1


def test_a_stopped_worker_frees_its_key_within_a_second(served):
    pid = served.start("deploy", seconds=60)["pid"]
    os.kill(pid, signal.SIGTERM)
    freed_after = served.wait_free("deploy", within=1.0)
    assert freed_after <= 1.0
    deadline = time.monotonic() + 10
    while served.held("deploy"):  # the probe that started it again runs 10 ms
        assert time.monotonic() < deadline, "the probe's run never ended"
        time.sleep(0.02)
    ran = served.runs()["deploy"]
    assert len(ran) == 2, "the stopped run ends (its task was cancelled), then the probe runs"
    assert_no_overlap({"deploy": ran})
