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


def _start_time(pid: int) -> Optional[str]:
    """When ``pid`` started (clock ticks after boot, field 22 of ``/proc/<pid>/stat``). With the
    PID it names one process: a PID that a stopped server freed and another process got is left
    alone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Field 2, the command name, is in parentheses and may hold spaces: count after it.
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_when_this_process_exits(pid: int, sig: str) -> None:
    """Starts a watchdog that sends ``sig`` to ``pid`` once this process has exited, if ``pid``
    is still the process it was: a killed or aborted pytest run leaves no server behind (the
    same watchdog as the Rust tests')."""
    started = _start_time(pid)
    if started is None:
        return
    script = (
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 0.3; done\n"
        f"stat=$(cat /proc/{pid}/stat 2>/dev/null) || exit 0\n"
        'rest=${stat##*") "}\n'
        "set -- $rest\n"
        f'[ "${{20}}" = {started} ] && kill -{sig} {pid}'
    )
    subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def spawn_server(args: List[str], sig: str, ready: Callable[[], bool], within: float, what: str, **popen: object) -> "Optional[subprocess.Popen[bytes]]":
    """Starts a test server (``args``), stopped by ``sig`` after this process exits whatever
    happens to it, and waits up to ``within`` seconds for ``ready()``. ``None`` when it exited
    first (most likely its port was taken meanwhile) or never got ready (then it is killed)."""
    if shutil.which(args[0]) is None and not os.path.exists(args[0]):
        pytest.fail(f"{what} is not installed: run scripts/setup.sh")
    server = subprocess.Popen(args, stdin=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]
    stop_when_this_process_exits(server.pid, sig)
    deadline = time.monotonic() + within
    while not ready():
        if server.poll() is not None:
            return None
        if time.monotonic() > deadline:
            server.kill()
            server.wait()
            return None
        time.sleep(0.02)
    return server


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
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory, *config]
    server = spawn_server(args, "TERM", lambda: _answers_ping(port), 10, "redis-server (Debian's redis-server)",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if server is None:
        pytest.fail(f"redis-server did not start on port {port}")
    return server


def start_redis_sentinel(port: int, config: str) -> "subprocess.Popen[bytes]":
    """Starts a Redis Sentinel (``redis-server <config> --sentinel``) on 127.0.0.1:``port`` and
    returns once it answers PING; stop it by its PID."""
    args = ["redis-server", config, "--sentinel"]
    sentinel = spawn_server(args, "TERM", lambda: _answers_ping(port), 10, "redis-server (Debian's redis-server)",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if sentinel is None:
        pytest.fail(f"redis-server --sentinel did not start on port {port}")
    return sentinel


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


def reachable_by_postgres(directory: str) -> str:
    """``directory``, with the directories above it under the temporary root made traversable:
    the server runs as the ``postgres`` user when the tests run as root."""
    path = directory
    while path != "/":
        path = os.path.dirname(path)
        if os.geteuid() == 0 and path.startswith(tempfile.gettempdir()):
            os.chmod(path, os.stat(path).st_mode | 0o011)
    return directory


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

            def ready() -> bool:
                check = [_postgres_bin("pg_isready"), "-h", self.directory, "-p", str(port), "-t", "1"]
                return subprocess.run(check, capture_output=True).returncode == 0

            # SIGINT: PostgreSQL's fast shutdown (sessions are ended).
            self.process = spawn_server(args, "INT", ready, 30, "postgres (Debian's postgresql)",
                                        user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self.process is not None:
                self.port = port
                return
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
    server = PostgresServer(reachable_by_postgres(str(tmp_path_factory.mktemp("postgres"))))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A namespace of the session's server that no other test uses: a fresh, empty store."""
    return postgres_server.url(options=f"namespace=t{os.getpid()}-{next(_namespaces)}")
