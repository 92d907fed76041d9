// racefree.aio on a real redis-server (started here on a free 127.0.0.1 port, stopped by its
// PID) through both clients an application may already have: ioredis and node-redis. Each client
// is loaded from RACEFREE_CLIENTS (the package's devDependencies), as the application's would be.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";

import { checkEveryPrimitive, raceFourProcessesWithOneKilled, raceThreeLanguages, runEveryScenario } from "./shared_store_checks.mjs";
import { freePort, reachableRedis, spawnRedis } from "./servers.mjs";
import { aio, InvalidArgumentError, LeaseLostError, TimeoutError } from "racefree";

const clients = createRequire(join(process.env.RACEFREE_CLIENTS ?? process.cwd(), "package.json"));
const Redis = clients("ioredis");
const { createClient } = clients("redis");

let server;
let port;
const opened = [];

before(async () => {
  port = await freePort();
  server = spawnRedis(port);
  (await reachableRedis(Redis, port)).disconnect();
});

after(async () => {
  for (const client of opened) await client.quit().catch(() => {});
  process.kill(server.pid, "SIGTERM");
});

let namespaces = 0;
const fresh = () => `node-${process.pid}-${namespaces++}`;

async function ioredis() {
  const client = new Redis({ port, host: "127.0.0.1" });
  opened.push(client);
  return client;
}

async function nodeRedis(resp = 2) {
  const client = createClient({ socket: { port, host: "127.0.0.1" }, RESP: resp });
  await client.connect();
  opened.push(client);
  return client;
}

const CLIENTS = [["ioredis", ioredis], ["node-redis", () => nodeRedis(2)], ["node-redis RESP3", () => nodeRedis(3)]];

for (const [name, connect] of CLIENTS) {
  test(`${name}: every primitive answers as on the other stores`, async () => {
    await checkEveryPrimitive(aio.openRedis(await connect(), { namespace: fresh() }));
  });


  test(`${name}: concurrent callers on separate connections share one counter and one winner`, async () => {
    const namespace = fresh();
    const stores = await Promise.all([connect(), connect(), connect()]).then((cs) => cs.map((c) => aio.openRedis(c, { namespace })));
    const indexes = await Promise.all(stores.flatMap((store) => Array.from({ length: 100 }, () => new aio.Counter(store, "c").next())));
    assert.deepEqual(indexes.sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i));
    const leases = await Promise.all(stores.flatMap((store) => Array.from({ length: 10 }, () => new aio.StartLock(store, "l").tryStart("one", { ttl: 30_000 }))));
    assert.equal(leases.filter((lease) => lease !== null).length, 1, "exactly one caller starts the key");
  });

  test(`${name}: scripts the server lost (a restart, a failover) are loaded again`, async () => {
    const client = await connect();
    const store = aio.openRedis(client, { namespace: fresh() });
    const guard = new aio.EventGuard(store, "g", ["started"]);
    const flush = await ioredis();
    await flush.script("FLUSH");
    assert.equal(await guard.mark("s", "started"), "first");
    await flush.script("FLUSH");
    assert.equal(await guard.mark("s", "started"), "duplicate");
  });
}

test("the hosted stores' module is loaded by the first shared store, not by the memory store", async () => {
  // A process of its own: this one has loaded it already.
  const script = `
    import { createRequire } from "node:module";
    import { aio, Counter, open } from "racefree";
    const Redis = createRequire(process.env.RACEFREE_CLIENTS + "/package.json")("ioredis");
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => /node-hosted.racefree_wasm\\.js$/.test(path));
    new Counter(open(), "k").next();
    const before = loaded();
    const client = new Redis({ port: ${port}, host: "127.0.0.1" });
    const index = await new aio.Counter(aio.openRedis(client, { namespace: "loading-${process.pid}" }), "k").next();
    client.disconnect();
    console.log(JSON.stringify([before, loaded(), index]));`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, RACEFREE_CLIENTS: process.env.RACEFREE_CLIENTS ?? process.cwd() },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk) => (out += chunk));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(out), [false, true, 0]);
});

test("an ioredis client with a keyPrefix is refused, and so is anything that is not a client", async () => {
  const prefixed = new Redis({ port, keyPrefix: "app:", lazyConnect: true });
  assert.throws(() => aio.openRedis(prefixed), InvalidArgumentError);
  assert.throws(() => aio.openRedis({}), TypeError);
  assert.throws(() => new aio.Counter({}, "c"), TypeError);
});

test("each answer reaches its own operation, and no operation or host call outlives its end", async () => {
  // A client answering INCR with the counter's own number after 0-2 ms (in any order), or failing
  // it (a closed socket: outcome unknown), or answering what is no index; 3,000 operations at once.
  const settleAfter = (value) => new Promise((resolve, reject) =>
    setTimeout(() => (value instanceof Error ? reject(value) : resolve(value)), Math.floor(Math.random() * 3)));
  const client = {
    call(command, key) {
      const own = Number(/:n(\d+)\}c$/.exec(key)[1]);
      if (own % 7 === 3) return settleAfter(new Error("Connection is closed."));
      if (own % 11 === 5) return settleAfter("not a number");
      return settleAfter(own + 1); // INCR's new value: the index is `own`
    },
    evalsha: () => settleAfter(new Error("not used")),
  };
  const store = aio.openRedis(client, { namespace: "answers" });
  const outcomes = await Promise.allSettled(Array.from({ length: 3000 }, (_, n) => new aio.Counter(store, `n${n}`).next()));
  outcomes.forEach((outcome, n) => {
    if (n % 7 === 3) assert.equal(outcome.reason?.code, "timeout", `operation ${n}`);
    else if (n % 11 === 5) assert.equal(outcome.reason?.code, "corrupt_data", `operation ${n}`);
    else assert.equal(outcome.value, n, `operation ${n}`);
  });
  // The hosted module this process loaded, and what it still holds: no task, no answer slot.
  const require = createRequire(import.meta.url);
  const hostedPath = Object.keys(require.cache).find((path) => /node-hosted.racefree_wasm\.js$/.test(path));
  assert.deepEqual(Array.from(require(hostedPath).hostPending()), [0, 0]);
});

test("a server that is gone rejects with a typed error: backend_unavailable, the request never written", async () => {
  const client = new Redis({ port: await freePort(), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on("error", () => {}); // the refused connection is this test's point
  const store = aio.openRedis(client, { namespace: fresh() });
  await assert.rejects(new aio.Counter(store, "c").next(), (error) => error.code === "backend_unavailable");
  const closed = createClient({ socket: { port, host: "127.0.0.1" } });
  await assert.rejects(new aio.Counter(aio.openRedis(closed, { namespace: fresh() }), "c").next(), (error) => error.code === "backend_unavailable");
});

/** A client `make` builds (ioredis or node-redis, as `clientName` says), once it has reached its
 * server (which may still be starting): each refused attempt's client is closed, and another made. */
async function connected(clientName, make) {
  for (;;) {
    const client = make();
    client.on("error", () => {});
    try {
      if (clientName === "ioredis") await client.ping();
      else await client.connect();
      return client;
    } catch {
      // node-redis: a client whose connect was refused may be closed already, and say so.
      try {
        clientName === "ioredis" ? client.disconnect() : await client.destroy?.();
      } catch {}
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

for (const clientName of ["ioredis", "node-redis"]) test(`${clientName}: a server killed while a call is in flight: timeout, the outcome unknown`, { timeout: 15_000 }, async () => {
  const ownPort = await freePort();
  const own = spawnRedis(ownPort);
  let client;
  try {
    // No reconnection: the closed socket fails the call instead of a resend.
    client = await connected(clientName, () => clientName === "ioredis"
      ? new Redis({ port: ownPort, host: "127.0.0.1", retryStrategy: () => null })
      : createClient({ socket: { port: ownPort, host: "127.0.0.1", reconnectStrategy: false } }));
    const counter = new aio.Counter(aio.openRedis(client, { namespace: fresh() }), "c");
    assert.equal(await counter.next(), 0);
    // Frozen, the server reads nothing; the call is written to its socket, then the server dies.
    process.kill(own.pid, "SIGSTOP");
    const inFlight = counter.next();
    await new Promise((r) => setTimeout(r, 100));
    process.kill(own.pid, "SIGKILL");
    await assert.rejects(inFlight, (error) => error.code === "timeout");
  } finally {
    try { process.kill(own.pid, "SIGKILL"); } catch {}
    try { clientName === "ioredis" ? client?.disconnect() : client?.destroy?.(); } catch {} // node-redis: already closed
  }
});

test("Node, Python and Rust processes on one namespace share one counter, one set of marks and one lock", async () => {
  const namespace = fresh();
  await raceThreeLanguages(aio.openRedis(await ioredis(), { namespace }), `redis://127.0.0.1:${port}/0?namespace=${namespace}`);
});

test("acquire waits for a release, times out, and stops when its signal aborts", async () => {
  const store = aio.openRedis(await ioredis(), { namespace: fresh() });
  const lock = new aio.StartLock(store, "tasks");
  const held = await lock.tryStart("k", { ttl: 30_000 });
  setTimeout(() => held.release(), 100);
  const started = performance.now();
  const lease = await lock.acquire("k", { ttl: 30_000, timeout: 5_000 });
  assert.ok(performance.now() - started >= 90 && lease.token > held.token);
  await assert.rejects(lock.acquire("k", { ttl: 30_000, timeout: 100 }), TimeoutError);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("shutting down")), 50);
  await assert.rejects(lock.acquire("k", { ttl: 30_000, signal: controller.signal }), /shutting down/);
  await assert.rejects(lock.acquire("k", { ttl: 0 }), InvalidArgumentError);
  await lease.release();
});

test("runExclusive keeps the lease past its TTL while the work runs, then releases it", async () => {
  const store = aio.openRedis(await ioredis(), { namespace: fresh() });
  const lock = new aio.StartLock(store, "tasks");
  const other = new aio.StartLock(aio.openRedis(await nodeRedis(), { namespace: store.namespace }), "tasks");
  const result = await lock.runExclusive("k", { ttl: 300, renewEvery: 100 }, async ({ lease, signal }) => {
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await other.tryStart("k", { ttl: 300 }), null, "the key was free while the work ran");
    }
    assert.equal(signal.aborted, false);
    return lease.token;
  });
  assert.ok(result >= 1);
  assert.equal(await lock.isHeld("k"), false, "released when the work settled");
});

for (const clientName of ["ioredis", "node-redis"]) test(`${clientName}, a frozen server: the work's signal aborts at the safe deadline, before anyone else can start the key`, { timeout: 15_000 }, async () => {
  const ownPort = await freePort();
  const own = spawnRedis(ownPort);
  const mine = [];
  try {
    const connect = async () => {
      // No command timeout (the default of both clients): a renewal to the frozen server never
      // answers, and only the keeper's own deadline can stop the work in time.
      const client = await connected(clientName, () => clientName === "ioredis"
        ? new Redis({ port: ownPort, host: "127.0.0.1", maxRetriesPerRequest: 1 })
        : createClient({ socket: { port: ownPort, host: "127.0.0.1", reconnectStrategy: 25 } }));
      mine.push(client);
      return client;
    };
    const namespace = fresh();
    const lock = new aio.StartLock(aio.openRedis(await connect(), { namespace }), "tasks");
    const ttl = 600;
    let frozenAt = 0;
    let abortedAt = 0;
    const running = lock.runExclusive("k", { ttl, renewEvery: 150 }, async ({ signal }) => {
      await new Promise((r) => setTimeout(r, 200));
      process.kill(own.pid, "SIGSTOP");
      frozenAt = Date.now();
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      abortedAt = Date.now();
    });
    await assert.rejects(running, LeaseLostError);
    assert.ok(abortedAt - frozenAt < ttl, `aborted ${abortedAt - frozenAt} ms after the freeze, past the ${ttl} ms TTL`);
    await new Promise((r) => setTimeout(r, ttl + 100 - (Date.now() - frozenAt)));
    process.kill(own.pid, "SIGCONT");
    const other = new aio.StartLock(aio.openRedis(await connect(), { namespace }), "tasks");
    let lease = null;
    while (lease === null) lease = await other.tryStart("k", { ttl: 30_000 }).catch(() => null);
    assert.ok(Date.now() > abortedAt, "another holder started the key only after the work was told to stop");
  } finally {
    try { process.kill(own.pid, "SIGCONT"); } catch {}
    process.kill(own.pid, "SIGTERM");
    for (const client of mine) clientName === "ioredis" ? client.disconnect() : client.destroy();
  }
});

test("the task coordinator runs one task per key across stores and releases when it ends", async () => {
  const namespace = fresh();
  const one = new aio.TaskCoordinator(aio.openRedis(await ioredis(), { namespace }), { ttl: 30_000 });
  const two = new aio.TaskCoordinator(aio.openRedis(await nodeRedis(), { namespace }), { ttl: 30_000 });
  let release;
  const gate = new Promise((r) => (release = r));
  const starts = await Promise.all([one, two, one, two].map((c) => c.start("job", () => gate)));
  assert.equal(starts.filter(Boolean).length, 1, "one start across both coordinators");
  assert.equal(await two.isRunning("job"), true);
  release();
  await Promise.all([one.wait("job"), two.wait("job")]);
  assert.equal(await one.isRunning("job"), false);
  assert.equal(await one.start("job", async ({ signal }) => new Promise((r) => signal.addEventListener("abort", r))), true);
  assert.equal(await one.stop("job"), true);
  assert.equal(await two.isRunning("job"), false, "stop waits for the release");
});

test("4 processes race one key; one is killed while it holds the lease; no two ever hold it at once", { timeout: 30_000 }, async () => {
  await raceFourProcessesWithOneKilled({ RACEFREE_PORT: String(port), RACEFREE_NAMESPACE: fresh() });
});

test("the server goes away and comes back: calls fail typed meanwhile, then work (scripts loaded again)", { timeout: 30_000 }, async () => {
  const ownPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "racefree-restart-"));
  const start = () => spawnRedis(ownPort, { dir, extra: ["--appendonly", "yes", "--appendfsync", "always"] });
  let own = start();
  const client = new Redis({ port: ownPort, host: "127.0.0.1", maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client.on("error", () => {});
  opened.push(client);
  try {
    while ((await client.ping().catch(() => null)) !== "PONG") await new Promise((r) => setTimeout(r, 20));
    const store = aio.openRedis(client, { namespace: fresh() });
    const counter = new aio.Counter(store, "c");
    const guard = new aio.EventGuard(store, "g", ["started", "ended"]);
    assert.equal(await counter.next(), 0);
    assert.equal(await guard.mark("s", "started"), "first");
    const gone = new Promise((resolve) => own.on("exit", resolve));
    process.kill(own.pid, "SIGTERM");
    await gone;
    await assert.rejects(counter.next(), (error) => ["backend_unavailable", "timeout"].includes(error.code));
    own = start();
    let next;
    for (;;) {
      try {
        next = await counter.next();
        break;
      } catch (error) {
        assert.ok(["backend_unavailable", "timeout"].includes(error.code), `an untyped error: ${error}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    assert.ok(next >= 1, "the counter kept its value across the restart");
    assert.equal(await guard.mark("s", "started"), "duplicate", "the mark survived the restart");
    assert.equal(await guard.mark("s", "ended"), "first", "a script on the restarted server (NOSCRIPT, loaded again)");
  } finally {
    process.kill(own.pid, "SIGTERM");
  }
});

// The shared scenarios (tests/vectors/) on the aio store, with each client.
for (const [name, connect] of CLIENTS) {
  test(`${name}: the shared scenarios on a Redis store`, async () => {
    const client = await connect();
    assert.deepEqual(await runEveryScenario((clock) => aio.openRedis(client, { namespace: fresh(), clock })), []);
  });
}
