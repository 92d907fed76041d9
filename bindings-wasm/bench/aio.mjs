// racefree's aio store on Redis through ioredis, against the client's own raw round trips and
// against the lock libraries Node services use, all in one run on one server (started here on a
// free 127.0.0.1 port, stopped by its PID). Run after building: node bench/aio.mjs [n]
// Prints op/s and the ratio of time per op to the baseline: target <= 1.2x the raw round trip,
// and a lease cycle faster than redlock 4.2 (the `latest` tag) and redis-semaphore.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import Redis from "ioredis";
import Redlock from "redlock";
import { Mutex } from "redis-semaphore";

import { aio } from "../dist/esm/node.js";
import { rate } from "./rate.mjs";

// 20,000: fewer leave the wasm and JS compilers warming up inside the first rows.
const n = Number(process.argv[2] ?? 20_000);
const CONCURRENCY = [1, 64];

const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, "127.0.0.1", () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});
const server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
  "--dir", mkdtempSync(join(tmpdir(), "racefree-bench-"))], { stdio: "ignore" });

try {
  const client = new Redis({ port, host: "127.0.0.1", retryStrategy: () => 20 });
  client.on("error", () => {}); // refused until the server listens
  while ((await client.ping().catch(() => null)) !== "PONG") await new Promise((r) => setTimeout(r, 20));
  const store = aio.openRedis(client, { namespace: "bench" });
  const trivial = await client.script("LOAD", "return 1");
  const redlock = new Redlock([client], { retryCount: 0 });

  let round = 0;
  const rows = () => {
    const tag = round++;
    const counter = new aio.Counter(store, `c${tag}`);
    const guard = new aio.EventGuard(store, `g${tag}`, ["ended"]);
    const lock = new aio.StartLock(store, `l${tag}`);
    return [
      ["next vs INCR", (i) => counter.next(), (i) => client.incr(`raw${tag}`)],
      ["mark vs EVALSHA return 1", (i) => guard.mark(`s${i}`, "ended"), (i) => client.evalsha(trivial, 0)],
      ["lease vs redlock 4.2", async (i) => (await lock.tryStart(`k${i}`, { ttl: 30_000 })).release(),
        async (i) => (await redlock.lock(`rl${tag}:${i}`, 30_000)).unlock()],
      ["lease vs redis-semaphore", async (i) => (await lock.tryStart(`k${i}`, { ttl: 30_000 })).release(),
        async (i) => {
          const mutex = new Mutex(client, `rs${tag}:${i}`, { lockTimeout: 30_000, acquireAttemptsLimit: 1, refreshInterval: 0 });
          await mutex.acquire();
          await mutex.release();
        }],
    ];
  };
  for (const [, ours, theirs] of rows()) { await ours(0); await theirs(0); } // warm: connections, scripts

  console.log(`racefree aio (ioredis ${(await import("ioredis/package.json", { with: { type: "json" } })).default.version}) vs baselines, ${n} ops per cell, one server`);
  console.log(`${"operation".padEnd(28)} ${"callers".padStart(7)} ${"racefree op/s".padStart(14)} ${"baseline op/s".padStart(14)} ${"time ratio".padStart(10)}`);
  for (const concurrency of CONCURRENCY) {
    for (const [name, ours, theirs] of rows()) {
      const oursRate = await rate(n, concurrency, ours);
      const theirsRate = await rate(n, concurrency, theirs);
      console.log(`${name.padEnd(28)} ${String(concurrency).padStart(7)} ${oursRate.toFixed(0).padStart(14)} ${theirsRate.toFixed(0).padStart(14)} ${(theirsRate / oursRate).toFixed(2).padStart(9)}x`);
    }
  }
  client.disconnect();
} finally {
  process.kill(server.pid, "SIGTERM");
}
