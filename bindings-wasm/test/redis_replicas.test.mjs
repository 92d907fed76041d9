// `replicas` on the npm package's Redis store: each write waits (`WAIT`) until that many replicas
// acknowledged it, on a real primary and replica (Debian's redis-server, started here on free
// 127.0.0.1 ports and stopped by PID), through ioredis and node-redis. A write the replica does
// not acknowledge — the replica frozen by SIGSTOP — fails after `replicasTimeoutMs` instead of
// being reported as done; a grant is released first; a waiting write holds up no other call; the
// connections the waiting writes use close with the application's client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";

import { freePorts, reachableRedis, spawnRedis } from "./servers.mjs";
import { aio, BackendUnavailableError, InvalidArgumentError, TimeoutError } from "racefree";

const clients = createRequire(join(process.env.RACEFREE_CLIENTS ?? process.cwd(), "package.json"));
const Redis = clients("ioredis");
const { createClient } = clients("redis");

const WAIT_MS = 600;
let primary, replica, servers, admin, replicaAdmin;
const opened = [];

before(async () => {
  [primary, replica] = await freePorts(2);
  servers = [spawnRedis(primary), spawnRedis(replica, { extra: ["--replicaof", "127.0.0.1", String(primary)] })];
  admin = await reachableRedis(Redis, primary);
  replicaAdmin = await reachableRedis(Redis, replica);
  const startedAt = Date.now();
  while (!(await replicaAdmin.info("replication")).includes("master_link_status:up")) {
    assert.ok(Date.now() - startedAt < 30_000, "the replica did not connect in 30 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  // The replica's "link up" can come before the primary counts it for `WAIT`: wait until the
  // primary has it online with the whole replication stream so far acknowledged.
  const counted = (info) => {
    const offset = info.match(/master_repl_offset:(\d+)/)?.[1];
    const replica = info.match(/slave0:[^\r\n]*/)?.[0] ?? "";
    return offset !== undefined && replica.includes("state=online") && replica.includes(`offset=${offset},`);
  };
  while (!counted(await admin.info("replication"))) {
    assert.ok(Date.now() - startedAt < 30_000, "the primary did not count the replica in 30 s");
    await new Promise((r) => setTimeout(r, 20));
  }
});

after(async () => {
  for (const client of [...opened, admin, replicaAdmin]) await Promise.resolve(client?.quit()).catch(() => {});
  for (const server of servers ?? []) try { process.kill(server.pid, "SIGCONT"); process.kill(server.pid, "SIGTERM"); } catch {}
});

let namespaces = 0;
const fresh = () => `node-replicas-${process.pid}-${namespaces++}`;

async function ioredis(port = primary) {
  const client = new Redis({ port, host: "127.0.0.1" });
  opened.push(client);
  return client;
}

async function nodeRedis(resp, port = primary) {
  const client = createClient({ socket: { port, host: "127.0.0.1" }, RESP: resp });
  client.on("error", () => {});
  await client.connect();
  opened.push(client);
  return client;
}

const CLIENTS = [["ioredis", ioredis], ["node-redis", () => nodeRedis(2)], ["node-redis RESP3", () => nodeRedis(3)]];

/** Runs `call`: what it resolved or rejected with, and how long it took (ms). */
async function timed(call) {
  const startedAt = performance.now();
  const outcome = await call().then((value) => ({ value }), (error) => ({ error }));
  return { ...outcome, took: performance.now() - startedAt };
}

/** Freezes (`SIGSTOP`) the replica while `work` runs: frozen, it acknowledges nothing. */
async function replicaFrozen(work) {
  process.kill(servers[1].pid, "SIGSTOP");
  try {
    return await work();
  } finally {
    process.kill(servers[1].pid, "SIGCONT");
  }
}

for (const [name, connect] of CLIENTS) {
  test(`${name}: every write the replica acknowledged is on it when the call resolves`, async () => {
    const namespace = fresh();
    const store = aio.openRedis(await connect(), { namespace, replicas: 1, replicasTimeoutMs: WAIT_MS });
    // Read on the replica straight away: no waiting, no retry.
    const onReplica = aio.openRedis(await ioredis(replica), { namespace });
    const counter = new aio.Counter(store, "jobs");
    for (let i = 0; i < 20; i++) {
      assert.equal(await counter.next(), i);
      assert.equal(await new aio.Counter(onReplica, "jobs").peek(), i + 1);
    }
    const lock = new aio.StartLock(store, "tasks");
    const lease = await lock.tryStart("k", { ttl: 30_000 });
    assert.equal((await new aio.StartLock(onReplica, "tasks").holder("k"))?.token, lease.token);
    await lease.renew({ ttl: 60_000 });
    await lease.release();
    const records = new aio.Records(store, "pods");
    assert.equal(await records.put("p", { phase: "Running" }), 1);
    assert.deepEqual(await new aio.Records(onReplica, "pods").get("p"), { value: { phase: "Running" }, version: 1 });
    assert.equal(await new aio.EventGuard(store, "streams", ["start"]).mark("s", "start"), "first");
    assert.equal((await counter.claim("job-1")).index, 20);
    assert.equal(await records.delete("p", { expectedVersion: 1 }), true);
  });

  test(`${name}: a write the replica does not acknowledge fails, a grant is released first, and no other call waits for it`, async () => {
    const namespace = fresh();
    const client = await connect();
    const store = aio.openRedis(client, { namespace, replicas: 1, replicasTimeoutMs: WAIT_MS });
    const counter = new aio.Counter(store, "jobs");
    const lock = new aio.StartLock(store, "tasks");
    assert.equal(await counter.next(), 0);
    await replicaFrozen(async () => {
      const waiting = timed(() => counter.next());
      // While that write waits for the replica (applied on the primary by now), a read on the
      // same store and the application's own request on its client are answered at once: the
      // write has a connection of its own.
      await new Promise((r) => setTimeout(r, 100));
      const read = await timed(() => counter.peek());
      const own = await timed(() => client.ping());
      const next = await waiting;
      assert.ok(next.error instanceof TimeoutError, `applied on the primary, not replicated: ${next.error ?? next.value}`);
      assert.ok(next.took >= WAIT_MS - 5 && next.took < 2_500, `the write took ${next.took} ms`);
      assert.equal(read.value, 2);
      assert.ok(read.took < WAIT_MS / 2 && own.took < WAIT_MS / 2, `a read took ${read.took} ms, the client's PING ${own.took} ms`);

      const grant = await timed(() => lock.tryStart("k", { ttl: 30_000 }));
      assert.ok(grant.error instanceof BackendUnavailableError, `${grant.error ?? grant.value}`);
      assert.match(grant.error.message, /0 of 1 replicas/);
      assert.ok(grant.took < 2_500, `the grant took ${grant.took} ms`);
    });
    // Released before the error: the primary holds no lease on the key.
    assert.equal(await new aio.StartLock(aio.openRedis(client, { namespace }), "tasks").holder("k"), null);
    const lease = await lock.tryStart("k", { ttl: 30_000 });
    assert.ok(lease, "the key is free again");
    await lease.release();
    // The refused `next` was applied on the primary all the same (its outcome was unknown).
    assert.equal(await counter.next(), 2);
  });
}

test("more replicas than the server has fail every write and no read", async () => {
  const store = aio.openRedis(await ioredis(), { namespace: fresh(), replicas: 2, replicasTimeoutMs: 100 });
  const counter = new aio.Counter(store, "jobs");
  await assert.rejects(counter.next(), TimeoutError);
  assert.equal(await counter.peek(), 1, "reads wait for no replica");
});

test("the connections of waiting writes close when the application's client ends", async () => {
  const clientsNow = async () => Number(/connected_clients:(\d+)/.exec(await admin.info("clients"))[1]);
  const baseline = await clientsNow();
  for (const [name, connect] of CLIENTS) {
    const client = await connect();
    const store = aio.openRedis(client, { namespace: fresh(), replicas: 1, replicasTimeoutMs: WAIT_MS });
    const counter = new aio.Counter(store, "jobs");
    const indexes = await Promise.all(Array.from({ length: 16 }, () => counter.next()));
    assert.deepEqual(indexes.sort((a, b) => a - b), Array.from({ length: 16 }, (_, i) => i));
    const during = await clientsNow();
    assert.ok(during > baseline + 1, `${name}: the waiting writes opened connections of their own (${during} clients, ${baseline} before)`);
    await client.quit();
    opened.splice(opened.indexOf(client), 1);
    const deadline = Date.now() + 5_000;
    while ((await clientsNow()) > baseline) {
      assert.ok(Date.now() < deadline, `${name}: ${(await clientsNow()) - baseline} connections left after the client ended`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});

test("replication options are checked before any request", async () => {
  const client = await ioredis();
  const refused = (opts, type) => assert.throws(() => aio.openRedis(client, { namespace: fresh(), ...opts }), type, JSON.stringify(opts));
  refused({ replicas: -1 }, InvalidArgumentError);
  refused({ replicas: 1.5 }, InvalidArgumentError);
  refused({ replicas: 2 ** 32 }, InvalidArgumentError);
  refused({ replicas: "1" }, TypeError);
  refused({ replicas: 1, replicasTimeoutMs: 0 }, InvalidArgumentError);
  refused({ replicas: 1, replicasTimeoutMs: 2.5 }, InvalidArgumentError);
  refused({ replicas: 1, replicasTimeoutMs: "600" }, TypeError);
  // A client that opens no connection of its own.
  const sendOnly = { evalsha: async () => 0, call: async () => 0 };
  assert.throws(() => aio.openRedis(sendOnly, { replicas: 1 }), /opens connections of its own/);
  assert.ok(aio.openRedis(sendOnly, { replicas: 0 }), "0 replicas waits for none");
});
