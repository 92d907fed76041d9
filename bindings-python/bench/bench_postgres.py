"""PostgreSQL from 4 processes: racefree against psycopg doing the equivalent steps, same server, same run.

Run: python bench/bench_postgres.py [ops_per_process]
Starts its own server (Debian's PostgreSQL: initdb into a temporary directory, a free 127.0.0.1
port, fsync off, as the postgres user when run as root) and stops it by its PID. racefree runs
twice, with its default unnamed statements (PgBouncer-safe) and with `prepare_statements=true`:
- `next` on one counter: racefree's `Counter.next` against psycopg's
  `INSERT … ON CONFLICT DO UPDATE SET next = next + 1 RETURNING` in autocommit, with psycopg's
  default prepared statements and without them (what PgBouncer's transaction pooling needs);
- a lease cycle on a key of its own per call: racefree's `try_start` + `release` (a TTL and a
  fencing token) against psycopg's `pg_try_advisory_lock` + `pg_advisory_unlock` (what
  django-pglock does: no TTL, no token, nothing written, a session lock that PgBouncer's
  transaction pooling breaks), and against psycopg inserting and deleting a row (the two durable
  writes of a lease, without its TTL or token).
Both sides over TCP on 127.0.0.1, one connection per process. Target: at least as fast as each.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg

import processes
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
    counter = racefree.Counter(racefree.open(url + "&pool_size=1"), "task:1")
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
    lock = racefree.StartLock(racefree.open(url + "&pool_size=1"), "tasks")
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


def psycopg_lease_row(dsn, n, start, out, prepare_threshold=5):
    # The durable writes a lease needs without its TTL or token: insert a row, delete it.
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=prepare_threshold) as conn:
        me = os.getpid()
        start.wait()
        t0 = time.perf_counter()
        for i in range(n):
            assert conn.execute("INSERT INTO plain_leases VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1",
                                (f"{me}:{i}",)).fetchone()
            assert conn.execute("DELETE FROM plain_leases WHERE key = %s RETURNING 1", (f"{me}:{i}",)).fetchone()
        out.put(time.perf_counter() - t0)


def run(target, arg, n):
    return processes.run(target, arg, n, PROCESSES)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    directory = tempfile.mkdtemp(prefix="racefree-bench-pg-")
    os.chmod(directory, 0o755)
    server, port = start_server(directory)
    try:
        url = f"postgres://racefree@127.0.0.1:{port}/postgres?namespace=bench"
        prepared = url + "&prepare_statements=true"
        dsn = f"host=127.0.0.1 port={port} user=racefree dbname=postgres"
        racefree.open(url)  # schema
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE plain_counters (name text PRIMARY KEY, next bigint NOT NULL)")
            conn.execute("CREATE TABLE plain_leases (key text PRIMARY KEY)")
        rows = {}
        # Best of ROUNDS for each side, the sides interleaved (a shared machine varies run to run).
        for _ in range(ROUNDS):
            for name, target, arg in [("psycopg upsert RETURNING", psycopg_next, dsn),
                                      ("psycopg upsert, unprepared", psycopg_next_unprepared, dsn),
                                      ("racefree next", racefree_next, url),
                                      ("racefree next, prepare_statements", racefree_next, prepared),
                                      ("psycopg advisory lock + unlock", psycopg_lease, dsn),
                                      ("psycopg insert + delete a row", psycopg_lease_row, dsn),
                                      ("racefree try_start + release", racefree_lease, url),
                                      ("racefree lease, prepare_statements", racefree_lease, prepared)]:
                rows[name] = max(rows.get(name, 0.0), run(target, arg, n))
        total = racefree.Counter(racefree.open(url), "task:1").peek()
        assert total == 2 * ROUNDS * PROCESSES * n, f"racefree issued {total} indexes for {2 * ROUNDS * PROCESSES * n} calls"
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{PROCESSES} processes x {n} calls, one PostgreSQL server (fsync off), best of {ROUNDS}, same run")
    print(f"{'':38s} {'ops/s':>10s}   racefree, unnamed | prepare_statements")
    pairs = [("psycopg upsert RETURNING", "racefree next", "racefree next, prepare_statements"),
             ("psycopg upsert, unprepared", "racefree next", "racefree next, prepare_statements"),
             ("psycopg advisory lock + unlock", "racefree try_start + release", "racefree lease, prepare_statements"),
             ("psycopg insert + delete a row", "racefree try_start + release", "racefree lease, prepare_statements")]
    for base, unnamed, prepared in pairs:
        print(f"{base:38s} {rows[base]:10.0f}   {rows[unnamed] / rows[base]:15.2f}x | {rows[prepared] / rows[base]:.2f}x")
    for name in ["racefree next", "racefree next, prepare_statements", "racefree try_start + release",
                 "racefree lease, prepare_statements"]:
        print(f"{name:38s} {rows[name]:10.0f}")


if __name__ == "__main__":
    main()
