import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Callable, Iterator, List, Optional, TypeVar

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


def _postgres_bin(program: str) -> str:
    versions = sorted((int(v) for v in os.listdir("/usr/lib/postgresql") if v.isdigit()), reverse=True) if os.path.isdir("/usr/lib/postgresql") else []
    if not versions:
        pytest.fail("PostgreSQL is not installed: run scripts/setup.sh (Debian's postgresql)")
    return f"/usr/lib/postgresql/{versions[0]}/bin/{program}"


class PostgresServer:
    """A real PostgreSQL server (Debian's package): ``initdb`` into a private directory, started
    on a free 127.0.0.1 port as the ``postgres`` user when the tests run as root (PostgreSQL
    refuses root), its socket in that directory; stopped by its PID."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(directory, self.user, self.user)
        subprocess.run(
            [_postgres_bin("initdb"), "-D", f"{directory}/data", "-U", "racefree", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
            check=True, user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory,
        )
        self.port = 0
        self.process: "Optional[subprocess.Popen[bytes]]" = None
        self.start()

    def start(self) -> None:
        for _ in range(5):
            port = self.port or _free_port()
            args = [_postgres_bin("postgres"), "-D", f"{self.directory}/data", "-p", str(port), "-k", self.directory,
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]
            self.process = subprocess.Popen(args, user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.process.poll() is None:
                ready = subprocess.run([_postgres_bin("pg_isready"), "-h", self.directory, "-p", str(port), "-t", "1"], capture_output=True)
                if ready.returncode == 0:
                    self.port = port
                    return
                time.sleep(0.05)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        pytest.fail("postgres did not start")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), by PID."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=30)

    def url(self, database: str = "postgres", options: str = "") -> str:
        return f"postgres://racefree@127.0.0.1:{self.port}/{database}" + (f"?{options}" if options else "")

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", self.directory, "-p", str(self.port),
                              "-U", "racefree", "-d", database, "-c", sql], check=True, capture_output=True, text=True)
        return out.stdout.strip()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    directory = str(tmp_path_factory.mktemp("postgres"))
    # The server user must reach its directory under pytest's temporary root.
    path = directory
    while path != "/":
        path = os.path.dirname(path)
        if os.geteuid() == 0 and path.startswith(tempfile.gettempdir()):
            os.chmod(path, os.stat(path).st_mode | 0o011)
    server = PostgresServer(directory)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A namespace of the session's server that no other test uses: a fresh, empty store."""
    return postgres_server.url(options=f"namespace=t{os.getpid()}-{next(_namespaces)}")
