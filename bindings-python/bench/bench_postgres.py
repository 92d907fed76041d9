"""PostgreSQL from 4 processes: racefree against psycopg doing the equivalent steps, same server, same run.

Run: python bench/bench_postgres.py [ops_per_process]
Starts its own server (Debian's PostgreSQL: initdb into a temporary directory, a free 127.0.0.1
port, fsync off, as the postgres user when run as root) and stops it by its PID. Two rows each:
- `next` on one counter: racefree's `Counter.next` against psycopg's
  `INSERT … ON CONFLICT DO UPDATE SET next = next + 1 RETURNING` in autocommit, with psycopg's
  default prepared statements and without them (what PgBouncer's transaction pooling needs);
- a lease cycle on a key of its own per call: racefree's `try_start` + `release` (a TTL and a
  fencing token) against psycopg's `pg_try_advisory_lock` + `pg_advisory_unlock` (what
  django-pglock does: no TTL, no token, a session lock that PgBouncer's transaction pooling breaks).
Both sides over TCP on 127.0.0.1, one connection per process. Target: at least as fast as each.
"""

import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg

import racefree

PROCESSES = 4
ROUNDS = 3


def pg_bin(program):
    versions = sorted((int(v) for v in os.listdir("/usr/lib/postgresql") if v.isdigit()), reverse=True)
    return f"/usr/lib/postgresql/{versions[0]}/bin/{program}"


def start_server(directory):
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(directory, user, user)
    subprocess.run([pg_bin("initdb"), "-D", f"{directory}/data", "-U", "racefree", "--auth=trust", "--no-sync"],
                   check=True, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([pg_bin("postgres"), "-D", f"{directory}/data", "-p", str(port), "-k", directory,
                               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                              user=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while subprocess.run([pg_bin("pg_isready"), "-h", directory, "-p", str(port)], capture_output=True).returncode:
        time.sleep(0.05)
    return server, port


def racefree_next(url, n, start, out):
    counter = racefree.Counter(racefree.open(url + "?pool_size=1"), "task:1")
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        counter.next()
    out.put(time.perf_counter() - t0)


def psycopg_next(dsn, n, start, out, prepare_threshold=5):
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=prepare_threshold) as conn:
        start.wait()
        t0 = time.perf_counter()
        for _ in range(n):
            conn.execute("INSERT INTO plain_counters VALUES ('task:1', 1) ON CONFLICT (name) DO UPDATE "
                         "SET next = plain_counters.next + 1 RETURNING next - 1").fetchone()
        out.put(time.perf_counter() - t0)


def psycopg_next_unprepared(dsn, n, start, out):
    # No server-side prepared statements: what works behind PgBouncer's transaction pooling,
    # as racefree's unnamed statements do.
    psycopg_next(dsn, n, start, out, prepare_threshold=None)


def racefree_lease(url, n, start, out):
    lock = racefree.StartLock(racefree.open(url + "?pool_size=1"), "tasks")
    me = os.getpid()
    start.wait()
    t0 = time.perf_counter()
    for i in range(n):
        lock.try_start(f"{me}:{i}", ttl=30).release()
    out.put(time.perf_counter() - t0)


def psycopg_lease(dsn, n, start, out):
    with psycopg.connect(dsn, autocommit=True) as conn:
        me = os.getpid()
        start.wait()
        t0 = time.perf_counter()
        for i in range(n):
            assert conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"{me}:{i}",)).fetchone()[0]
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"{me}:{i}",)).fetchone()
        out.put(time.perf_counter() - t0)


def run(target, arg, n):
    start, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=target, args=(arg, n, start, out)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
        assert p.exitcode == 0, f"{target.__name__} failed"
    return PROCESSES * n / (time.perf_counter() - t0)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    directory = tempfile.mkdtemp(prefix="racefree-bench-pg-")
    os.chmod(directory, 0o755)
    server, port = start_server(directory)
    try:
        url = f"postgres://racefree@127.0.0.1:{port}/postgres"
        dsn = f"host=127.0.0.1 port={port} user=racefree dbname=postgres"
        racefree.open(url)  # schema
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE plain_counters (name text PRIMARY KEY, next bigint NOT NULL)")
        rows = {}
        # Best of ROUNDS for each side, the sides interleaved (a shared machine varies run to run).
        for _ in range(ROUNDS):
            for name, target, arg in [("psycopg upsert RETURNING", psycopg_next, dsn),
                                      ("psycopg upsert, unprepared", psycopg_next_unprepared, dsn),
                                      ("racefree next", racefree_next, url),
                                      ("psycopg advisory lock + unlock", psycopg_lease, dsn),
                                      ("racefree try_start + release", racefree_lease, url)]:
                rows[name] = max(rows.get(name, 0.0), run(target, arg, n))
        total = racefree.Counter(racefree.open(url), "task:1").peek()
        assert total == ROUNDS * PROCESSES * n, f"racefree issued {total} indexes for {ROUNDS * PROCESSES * n} calls"
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{PROCESSES} processes x {n} calls, one PostgreSQL server (fsync off), best of {ROUNDS}, same run")
    print(f"{'':34s} {'ops/s':>10s} {'racefree is':>12s}")
    for base, ours in [("psycopg upsert RETURNING", "racefree next"), ("psycopg upsert, unprepared", "racefree next"),
                       ("psycopg advisory lock + unlock", "racefree try_start + release")]:
        print(f"{base:34s} {rows[base]:10.0f} {rows[ours] / rows[base]:11.2f}x")
        print(f"{ours:34s} {rows[ours]:10.0f}")


if __name__ == "__main__":
    main()
