"""racefree.asyncio on Redis against redis-py's redis.asyncio and against the blocking call made
inline, all in one run, one event loop and one server (started here on a free 127.0.0.1 port,
stopped by its PID).

Run: python bench/bench_asyncio.py [operations per row]   (default 4000; RACEFREE_BENCH_OPS too)

For 1, 64 and 512 concurrent coroutines it prints op/s of
- ``next``: racefree.asyncio ``Counter.next`` | redis.asyncio ``INCR`` | blocking ``Counter.next`` inline;
- ``mark``: ``EventGuard.mark`` | ``SET NX`` | blocking ``mark`` inline;
- ``lease``: ``try_start`` + ``release`` | redis.asyncio ``Lock`` acquire + release | blocking inline;
and the longest the loop went without running a 10 ms ticker (what a blocking call costs the loop).
Then PostgreSQL (a server of its own, as bench_postgres.py starts it): ``next`` against psycopg's
``AsyncConnection`` running ``INSERT … ON CONFLICT DO UPDATE … RETURNING``, and a lease cycle against
psycopg inserting and deleting a row; both sides on 8 connections (psycopg's spread round-robin).
Targets (issue 23): >= 2x redis.asyncio at 64 and 512 coroutines, >= 0.8x the inline call with 1.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg
import redis.asyncio as aioredis

import racefree
import racefree.asyncio as rasync

OPS = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("RACEFREE_BENCH_OPS", "4000"))
CONCURRENCY = (1, 64, 512)


def start_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    directory = tempfile.mkdtemp()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return server, port
        except OSError:
            time.sleep(0.02)
    server.kill()
    sys.exit("redis-server did not start")


async def run(concurrency, operation):
    """op/s of ``operation(i)`` run OPS times by ``concurrency`` coroutines, and the longest
    ticker gap meanwhile."""
    gaps = [0.0]

    async def ticker():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last - 0.01)
            last = now

    per_worker = OPS // concurrency

    async def worker(w):
        for i in range(per_worker):
            await operation(w * per_worker + i)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    ticking.cancel()
    return per_worker * concurrency / elapsed, max(gaps)


def header(what):
    print(what)
    print(f"{'op':<6} {'coros':>5} {'racefree op/s':>14} {'baseline':>14} {'inline':>10} "
          f"{'vs base':>9} {'vs inline':>10} {'gap racefree':>13} {'gap base':>10} {'gap inline':>11}")


async def table(make_rows):
    for n in CONCURRENCY:
        for name, (ours, theirs, inline) in (await make_rows(n)).items():
            ours_rate, ours_gap = await run(n, ours)
            theirs_rate, theirs_gap = await run(n, theirs)
            inline_rate, inline_gap = await run(n, inline)
            print(f"{name:<6} {n:>5} {ours_rate:>14.0f} {theirs_rate:>14.0f} {inline_rate:>10.0f} "
                  f"{ours_rate / theirs_rate:>8.2f}x {ours_rate / inline_rate:>9.2f}x "
                  f"{ours_gap * 1000:>10.1f} ms {theirs_gap * 1000:>7.1f} ms {inline_gap * 1000:>8.1f} ms")


async def postgres():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_postgres import start_server as start_postgres

    directory = tempfile.mkdtemp()
    server, port = start_postgres(directory)
    try:
        dsn = f"host=127.0.0.1 port={port} user=racefree dbname=postgres"
        store = racefree.open(f"postgres://racefree@127.0.0.1:{port}/postgres?pool_size=8")
        connections = [await psycopg.AsyncConnection.connect(dsn, autocommit=True) for _ in range(8)]
        await connections[0].execute("CREATE TABLE plain_counters (name text PRIMARY KEY, next bigint NOT NULL)")
        await connections[0].execute("CREATE TABLE plain_leases (key text PRIMARY KEY)")
        round_no = iter(range(1_000_000))

        async def rows(n):
            tag = f"{n}-{next(round_no)}"
            counter, blocking_counter = rasync.Counter(store, f"c{tag}"), racefree.Counter(store, f"b{tag}")
            lock, blocking_lock = rasync.StartLock(store, f"l{tag}"), racefree.StartLock(store, f"bl{tag}")

            async def psycopg_next(i):
                await connections[i % 8].execute(
                    "INSERT INTO plain_counters VALUES (%s, 1) ON CONFLICT (name) DO UPDATE "
                    "SET next = plain_counters.next + 1 RETURNING next", (tag,))

            async def psycopg_lease(i):
                connection = connections[i % 8]
                await connection.execute("INSERT INTO plain_leases VALUES (%s) ON CONFLICT DO NOTHING", (f"{tag}:{i}",))
                await connection.execute("DELETE FROM plain_leases WHERE key = %s", (f"{tag}:{i}",))

            async def lease_cycle(i):
                await (await lock.try_start(f"k{i}", ttl=30)).release()

            async def blocking_next(i):
                blocking_counter.next()

            async def blocking_lease(i):
                blocking_lock.try_start(f"k{i}", ttl=30).release()

            return {
                "next": (lambda i: counter.next(), psycopg_next, blocking_next),
                "lease": (lease_cycle, psycopg_lease, blocking_lease),
            }

        for ours, theirs, inline in (await rows(1)).values():
            for op in (ours, theirs, inline):
                await op(0)
        header(f"racefree.asyncio vs psycopg {psycopg.__version__} AsyncConnection, {OPS} operations per cell, PostgreSQL")
        await table(rows)
        for connection in connections:
            await connection.close()
    finally:
        os.kill(server.pid, signal.SIGINT)  # a fast shutdown: clients may still be connected
        server.wait(timeout=30)


async def main():
    server, port = start_server()
    try:
        url = f"redis://127.0.0.1:{port}/0"
        store = racefree.open(url)
        client = aioredis.Redis(host="127.0.0.1", port=port, max_connections=600)
        round_no = iter(range(1_000_000))

        async def rows(n):
            tag = f"{n}-{next(round_no)}"
            counter, blocking_counter = rasync.Counter(store, f"c{tag}"), racefree.Counter(store, f"b{tag}")
            guard = rasync.EventGuard(store, f"g{tag}", ["ended"])
            blocking_guard = racefree.EventGuard(store, f"bg{tag}", ["ended"])
            lock, blocking_lock = rasync.StartLock(store, f"l{tag}"), racefree.StartLock(store, f"bl{tag}")

            async def lease_cycle(i):
                lease = await lock.try_start(f"k{i}", ttl=30)
                await lease.release()

            async def redis_lock_cycle(i):
                held = client.lock(f"rl{tag}:{i}", timeout=30)
                await held.acquire(blocking=False)
                await held.release()

            async def blocking_lease(i):
                blocking_lock.try_start(f"k{i}", ttl=30).release()

            async def blocking_next(i):
                blocking_counter.next()

            async def blocking_mark(i):
                blocking_guard.mark(f"s{i}", "ended")

            return {
                "next": (lambda i: counter.next(), lambda i: client.incr(f"i{tag}"), blocking_next),
                "mark": (lambda i: guard.mark(f"s{i}", "ended"), lambda i: client.set(f"m{tag}:{i}", 1, nx=True, ex=3600), blocking_mark),
                "lease": (lease_cycle, redis_lock_cycle, blocking_lease),
            }

        # Warm every path (connections, scripts) once.
        for ops in (await rows(1)).values():
            for op in ops:
                await op(0)
        header(f"racefree.asyncio vs redis.asyncio {__import__('redis').__version__}, {OPS} operations per cell, "
               "one loop, one server")
        await table(rows)
        await client.aclose()
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
    asyncio.run(postgres())
