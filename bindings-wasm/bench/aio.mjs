// racefree's aio store on Redis through ioredis, against the client's own raw round trips and
// against the lock libraries Node services use, all in one run on one server (started here on a
// free 127.0.0.1 port, stopped by its PID). Run after building: node bench/aio.mjs [n]
// Prints op/s and the ratio of time per op to the baseline: target <= 1.2x the raw round trip,
// and a lease cycle faster than redlock 4.2 (the `latest` tag) and redis-semaphore; and beside
// them racefree's own requests sent by ioredis alone, which tells the server's share of the
// time (its scripts' work) from racefree's own (planning, decoding, the wasm crossing). Then the
// server's time per operation alone (`INFO commandstats`), racefree's against the baseline's.
import { randomBytes } from "node:crypto";

import Redis from "ioredis";
import Redlock from "redlock";
import { Mutex } from "redis-semaphore";

import { aio } from "../dist/esm/node.js";
import { rate, rates } from "./rate.mjs";
import { freePort, spawnRedis } from "../test/servers.mjs";

// 20,000: fewer leave the wasm and JS compilers warming up inside the first rows.
const n = Number(process.argv[2] ?? 20_000);
const CONCURRENCY = [1, 64];

const port = await freePort();
const server = spawnRedis(port);

try {
  const client = new Redis({ port, host: "127.0.0.1", retryStrategy: () => 20 });
  client.on("error", () => {}); // refused until the server listens
  while ((await client.ping().catch(() => null)) !== "PONG") await new Promise((r) => setTimeout(r, 20));
  const store = aio.openRedis(client, { namespace: "bench" });
  const trivial = await client.script("LOAD", "return 1");
  const redlock = new Redlock([client], { retryCount: 0 });

  // racefree's own requests, sent by the client itself: what the server's work costs (the
  // scripts' fencing tokens, request ids and server-side time) apart from racefree's planning
  // and decoding. Each request is captured once from a call through a recording client, then
  // replayed with its key made fresh per call and its last argument (a request id, or the
  // release's token) replaced.
  const captured = [];
  const recording = new Proxy(client, {
    get: (target, name) => name === "evalsha"
      ? (...request) => (captured.push(request), target.evalsha(...request))
      : (typeof target[name] === "function" ? target[name].bind(target) : target[name]),
  });
  const recorded = aio.openRedis(recording, { namespace: "bench" });
  await new aio.EventGuard(recorded, "captured", ["ended"]).mark("STREAM", "ended");
  await (await new aio.StartLock(recorded, "captured").tryStart("LEASE", { ttl: 30_000 })).release();
  const [markRequest, grantRequest, releaseRequest] = captured;
  const freshId = () => randomBytes(16).toString("hex");
  const replay = (request, from, to, last) => request.map((part) =>
    typeof part === "string" && part.includes(from) ? part.replace(from, to) : part === request.at(-1) && last ? last : part);

  let round = 0;
  const rows = () => {
    const tag = round++;
    const counter = new aio.Counter(store, `c${tag}`);
    const guard = new aio.EventGuard(store, `g${tag}`, ["ended"]);
    const lock = new aio.StartLock(store, `l${tag}`);
    const rawLease = async (i) => {
      const key = `r${tag}:${i}`;
      const [, token] = await client.evalsha(...replay(grantRequest, "LEASE", key, freshId()));
      await client.evalsha(...replay(releaseRequest, "LEASE", key, String(token)));
    };
    // [name, racefree, its requests sent by the client, the baseline]
    return [
      ["next vs INCR", (i) => counter.next(), (i) => client.incr(`own${tag}`), (i) => client.incr(`raw${tag}`)],
      ["mark vs EVALSHA return 1", (i) => guard.mark(`s${i}`, "ended"),
        (i) => client.evalsha(...replay(markRequest, "STREAM", `o${tag}:${i}`, freshId())), (i) => client.evalsha(trivial, 0)],
      ["lease vs redlock 4.2", async (i) => (await lock.tryStart(`k${i}`, { ttl: 30_000 })).release(), rawLease,
        async (i) => (await redlock.lock(`rl${tag}:${i}`, 30_000)).unlock()],
      ["lease vs redis-semaphore", async (i) => (await lock.tryStart(`k${i}`, { ttl: 30_000 })).release(), rawLease,
        async (i) => {
          const mutex = new Mutex(client, `rs${tag}:${i}`, { lockTimeout: 30_000, acquireAttemptsLimit: 1, refreshInterval: 0 });
          await mutex.acquire();
          await mutex.release();
        }],
    ];
  };
  for (const [, ours, own, theirs] of rows()) { await ours(0); await own(0); await theirs(0); } // warm: connections, scripts

  console.log(`racefree aio (ioredis ${(await import("ioredis/package.json", { with: { type: "json" } })).default.version}) vs baselines, ${n} ops per cell in 5 rounds taking turns (best round), one server`);
  console.log("own requests: racefree's requests sent by ioredis itself (the server's share of racefree's time)");
  console.log(`${"operation".padEnd(28)} ${"callers".padStart(7)} ${"racefree op/s".padStart(14)} ${"own requests".padStart(13)} ${"baseline op/s".padStart(14)} ${"time ratio".padStart(10)} ${"own vs base".padStart(11)}`);
  for (const concurrency of CONCURRENCY) {
    for (const [name, ours, own, theirs] of rows()) {
      const [oursRate, ownRate, theirsRate] = await rates(n, concurrency, [ours, own, theirs]);
      console.log(`${name.padEnd(28)} ${String(concurrency).padStart(7)} ${oursRate.toFixed(0).padStart(14)} ${ownRate.toFixed(0).padStart(13)} ${theirsRate.toFixed(0).padStart(14)} ${(theirsRate / oursRate).toFixed(2).padStart(9)}x ${(theirsRate / ownRate).toFixed(2).padStart(10)}x`);
    }
  }
  // The server's own share, apart from the network and either client: the time it spends running
  // the commands each operation sends (`INFO commandstats`; a script's time holds the commands it
  // calls), each variant alone at 64 callers (at 1 the server idles between requests and runs
  // each one cold: up to twice the time, and noisier).
  const ops = Math.ceil(n / 4);
  const serverUs = async (op) => {
    const sent = new Map();
    const send = client.sendCommand;
    await client.config("RESETSTAT");
    client.sendCommand = function (command, ...rest) {
      const name = command.name.toLowerCase(); // as `INFO commandstats` names it
      sent.set(name, (sent.get(name) ?? 0) + 1);
      return send.call(this, command, ...rest);
    };
    try {
      await rate(ops, 64, op);
    } finally {
      delete client.sendCommand; // the prototype's again
    }
    const stats = new Map(
      [...(await client.info("commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)].map(([, name, calls, usec]) => [name, [Number(calls), Number(usec)]]),
    );
    let usec = 0;
    for (const [name, count] of sent) {
      const [calls, spent] = stats.get(name) ?? [0, 0];
      // A command also called by a script would be counted twice.
      if (calls !== count) throw new Error(`${name}: sent ${count}, the server ran ${calls}`);
      usec += spent;
    }
    return usec / ops;
  };
  console.log(`server time per operation (INFO commandstats of the commands it sends), ${ops} ops at 64 callers, best of 3`);
  console.log(`${"operation".padEnd(28)} ${"racefree µs".padStart(12)} ${"baseline µs".padStart(12)} ${"ratio".padStart(7)}`);
  for (const [name, ours, , theirs] of rows()) {
    const best = [Infinity, Infinity];
    for (let round = 0; round < 3; round++) {
      best[0] = Math.min(best[0], await serverUs((i) => ours(i + round * ops)));
      best[1] = Math.min(best[1], await serverUs((i) => theirs(i + round * ops)));
    }
    console.log(`${name.padEnd(28)} ${best[0].toFixed(1).padStart(12)} ${best[1].toFixed(1).padStart(12)} ${(best[0] / best[1]).toFixed(2).padStart(6)}x`);
  }
  client.disconnect();
} finally {
  process.kill(server.pid, "SIGTERM");
}
