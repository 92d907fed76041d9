import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from typing import Callable, Iterator, List, TypeVar

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int, directory: str, *config: str) -> "subprocess.Popen[bytes]":
    """Starts Debian's redis-server on 127.0.0.1:``port`` (RDB snapshots off, plus ``config``)
    and returns once it answers PING; stop it by its PID."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: run scripts/setup.sh (Debian's redis-server)")
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory, *config]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not _answers_ping(port):
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.02)
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian's package) on a free 127.0.0.1 port, stopped by its PID."""
    port = _free_port()
    # DEBUG SLEEP stalls the server on purpose in the event-loop and GIL tests.
    config = ("--appendonly", "no", "--enable-debug-command", "local")
    server = start_redis(port, str(tmp_path_factory.mktemp("redis")), *config)
    yield f"redis://127.0.0.1:{port}/0"
    os.kill(server.pid, signal.SIGTERM)
    server.wait(timeout=10)


_namespaces = itertools.count()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A namespace of the session's server that no other test uses: a fresh, empty store."""
    return f"{redis_server}?namespace=t{os.getpid()}-{next(_namespaces)}"


def pytest_terminal_summary(terminalreporter):  # type: ignore[no-untyped-def]
    """The shared scenarios' report (tests/vectors/README.md): steps run, and skipped because
    they are only for other languages."""
    import sys

    vectors = sys.modules.get("test_vectors")
    if vectors is not None and vectors.REPORT["run"]:
        report = vectors.REPORT
        terminalreporter.write_line(
            f"shared scenarios: {report['run']} steps run, {report['skipped']} only for other languages, skipped"
        )
