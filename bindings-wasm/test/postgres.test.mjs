// racefree.aio on a real PostgreSQL server (started here on a free 127.0.0.1 port, stopped by its
// PID) through the `pg` Pool an application already has, loaded from RACEFREE_CLIENTS (the
// package's devDependencies) as the application's would be.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";

import * as racefree from "racefree";
import { aio, BackendUnavailableError, CorruptDataError, InvalidArgumentError, LeaseLostError, TimeoutError } from "racefree";
import { PostgresServer } from "./postgres_server.mjs";
import { checkEveryPrimitive, raceFourProcessesWithOneKilled, raceThreeLanguages, runEveryScenario } from "./shared_store_checks.mjs";

const clients = createRequire(join(process.env.RACEFREE_CLIENTS ?? process.cwd(), "package.json"));
const { Pool } = clients("pg");

let server;
const pools = [];

before(async () => {
  server = await new PostgresServer().start();
});

after(async () => {
  for (const pool of pools) await pool.end().catch(() => {});
  await server.stop();
});

let namespaces = 0;
const fresh = () => `node-${process.pid}-${namespaces++}`;

function pool(options = {}) {
  const made = new Pool({ connectionString: server.url(options.database), max: 8, ...options });
  made.on("error", () => {}); // an idle client's connection lost (a server restart): the pool drops it
  pools.push(made);
  return made;
}

let databases = 0;
/** A new, empty database (no racefree schema yet). */
function database() {
  const name = `fresh_${process.pid}_${databases++}`;
  server.psql(`CREATE DATABASE ${name}`);
  return name;
}

test("every primitive answers as on the other stores", async () => {
  const store = await aio.openPostgres(pool(), { namespace: fresh() });
  await checkEveryPrimitive(store);
  assert.deepEqual(await store.stats(), { entries: 0, expiredSwept: 0 });
});

test("the cache: concurrent callers share one load that reads the store", async () => {
  const counter = new aio.Counter(await aio.openPostgres(pool(), { namespace: fresh() }), "loads");
  const cache = new aio.Cache();
  const values = await Promise.all(Array.from({ length: 20 }, () => cache.getOrLoad("k", { ttl: 60_000 }, () => counter.next())));
  assert.deepEqual(new Set(values), new Set([0]), "one load for twenty callers");
  assert.equal(await counter.peek(), 1);
  assert.equal(aio.Cache, racefree.Cache);
});

test("concurrent callers on separate pools share one counter and one winner", async () => {
  const namespace = fresh();
  const stores = await Promise.all([pool(), pool()].map((p) => aio.openPostgres(p, { namespace })));
  const indexes = await Promise.all(Array.from({ length: 200 }, (_, i) => new aio.Counter(stores[i % 2], "c").next()));
  assert.deepEqual(indexes.sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i));
  const leases = await Promise.all(Array.from({ length: 40 }, (_, i) => new aio.StartLock(stores[i % 2], "l").tryStart("k", { ttl: 30_000 })));
  assert.equal(leases.filter((lease) => lease !== null).length, 1, "one winner");
});

test("a new database gets racefree's schema once, from 4 processes opening it at the same moment", { timeout: 30_000 }, async () => {
  const name = database();
  const program = `
    import { createRequire } from "node:module";
    import { join } from "node:path";
    import { aio } from "racefree";
    const { Pool } = createRequire(join(process.env.RACEFREE_CLIENTS, "package.json"))("pg");
    const pool = new Pool({ connectionString: process.env.URL });
    const store = await aio.openPostgres(pool, { namespace: "race" });
    const counter = new aio.Counter(store, "c");
    console.log(JSON.stringify(await Promise.all([counter.next(), counter.next(), counter.next()])));
    await pool.end();`;
  const env = { ...process.env, URL: server.url(name), RACEFREE_CLIENTS: process.env.RACEFREE_CLIENTS ?? process.cwd() };
  const runs = await Promise.all(Array.from({ length: 4 }, () =>
    promisify(execFile)(process.execPath, ["--input-type=module", "-e", program], { env, cwd: process.cwd(), encoding: "utf8" })));
  const indexes = runs.flatMap(({ stdout }) => JSON.parse(stdout));
  assert.deepEqual(indexes.sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i));
  assert.equal(server.psql("SELECT value FROM racefree_meta WHERE name = 'schema_version'", name), "2");
});

test("createSchema: false refuses a database without the schema, and nothing is written", async () => {
  const name = database();
  await assert.rejects(aio.openPostgres(pool({ database: name }), { createSchema: false }), (error) =>
    error instanceof BackendUnavailableError && /racefree migrate/.test(error.message));
  assert.equal(server.psql("SELECT to_regclass('racefree_meta') IS NULL", name), "t");
  await aio.openPostgres(pool({ database: name }));
  server.psql("UPDATE racefree_meta SET value = 99 WHERE name = 'schema_version'", name);
  await assert.rejects(aio.openPostgres(pool({ database: name })), (error) =>
    error instanceof BackendUnavailableError && /version 99/.test(error.message));
});

test("bad arguments to openPostgres are typed errors", async () => {
  await assert.rejects(aio.openPostgres({}), TypeError);
  await assert.rejects(aio.openPostgres(pool(), { namespace: "n".repeat(racefree.MAX_KEY_BYTES + 1) }), InvalidArgumentError);
  await assert.rejects(aio.openPostgres(pool(), { namespace: 5 }), TypeError);
  await assert.rejects(aio.openPostgres(pool(), { createSchema: "yes" }), TypeError);
  await assert.rejects(aio.openPostgres(pool(), { prepareStatements: 1 }), TypeError);
  await assert.rejects(aio.openPostgres(pool(), { clock: Date }), TypeError);
  const records = new aio.Records(await aio.openPostgres(pool(), { namespace: fresh() }), "r");
  // Refused, never wrapped to 32 bits (2^32 + 3 would have been 3 attempts) nor clamped.
  await assert.rejects(records.update("k", () => 1, { maxAttempts: 2 ** 32 + 3 }), InvalidArgumentError);
  await assert.rejects(records.update("k", () => 1, { maxAttempts: 0 }), InvalidArgumentError);
  await assert.rejects(records.update("k", () => 1, { maxAttempts: "5" }), TypeError);
  assert.equal(await records.get("k"), null, "nothing was written");
  // The largest costs nothing up front: its delays are drawn one at a time.
  assert.deepEqual(await records.update("big", () => 1, { maxAttempts: 2 ** 32 - 1 }), { value: 1, version: 1 });
});

test("integers are exact: one past 2^53 - 1 is refused, never rounded", async () => {
  const namespace = fresh();
  const store = await aio.openPostgres(pool(), { namespace });
  const counter = new aio.Counter(store, "big");
  await counter.set(Number.MAX_SAFE_INTEGER);
  assert.equal(await counter.peek(), Number.MAX_SAFE_INTEGER);
  assert.equal(await counter.next(), Number.MAX_SAFE_INTEGER);
  assert.equal(server.psql(`SELECT next FROM racefree_counters WHERE ns = '${namespace}'::bytea`), "9007199254740992");
  await assert.rejects(counter.peek(), (error) => error.code === "invalid_argument" || error.code === "corrupt_data");
  server.psql(`UPDATE racefree_counters SET next = -5 WHERE ns = '${namespace}'::bytea`);
  await assert.rejects(counter.peek(), CorruptDataError);
});

test("Node, Python and Rust processes on one schema share one counter, one set of marks and one lock", async () => {
  const namespace = fresh();
  await raceThreeLanguages(await aio.openPostgres(pool(), { namespace }), `${server.url()}?namespace=${namespace}`);
});

test("runExclusive and the task coordinator on PostgreSQL", async () => {
  const namespace = fresh();
  const store = await aio.openPostgres(pool(), { namespace });
  const other = new aio.StartLock(await aio.openPostgres(pool(), { namespace }), "tasks");
  const result = await new aio.StartLock(store, "tasks").runExclusive("k", { ttl: 300, renewEvery: 100 }, async ({ lease, signal }) => {
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await other.tryStart("k", { ttl: 300 }), null, "the key was free while the work ran");
    }
    assert.equal(signal.aborted, false);
    return lease.token;
  });
  assert.ok(result >= 1);
  assert.equal(await other.isHeld("k"), false, "released when the work settled");
  const tasks = new aio.TaskCoordinator(store, { ttl: 30_000 });
  let release;
  const gate = new Promise((r) => (release = r));
  const starts = await Promise.all([1, 2, 3].map(() => tasks.start("job", () => gate)));
  assert.equal(starts.filter(Boolean).length, 1);
  release();
  await tasks.wait("job");
  assert.equal(await tasks.isRunning("job"), false);
});

/** The PIDs of the server's processes: the postmaster and its children (each connection's backend). */
function serverPids(own) {
  const children = execFileSync("ps", ["-o", "pid=", "--ppid", String(own.process.pid)], { encoding: "utf8" });
  return [own.process.pid, ...children.split("\n").map(Number).filter(Boolean)];
}

test("a frozen server: runExclusive's signal aborts before anyone else can start the key, and calls fail promptly and typed", { timeout: 30_000 }, async () => {
  const own = await new PostgresServer().start();
  const signalAll = (signal) => serverPids(own).forEach((pid) => { try { process.kill(pid, signal); } catch {} });
  // The pool's own limits are what bound a call to a frozen server.
  const frozen = new Pool({ connectionString: own.url(), max: 4, query_timeout: 300, connectionTimeoutMillis: 300 });
  frozen.on("error", () => {});
  try {
    const store = await aio.openPostgres(frozen, { namespace: fresh() });
    const lock = new aio.StartLock(store, "tasks");
    const ttl = 900;
    let frozenAt = 0;
    let abortedAt = 0;
    const running = lock.runExclusive("k", { ttl, renewEvery: 200 }, async ({ signal }) => {
      await new Promise((r) => setTimeout(r, 250));
      signalAll("SIGSTOP");
      frozenAt = Date.now();
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      abortedAt = Date.now();
    });
    await assert.rejects(running, LeaseLostError);
    assert.ok(abortedAt - frozenAt < ttl, `aborted ${abortedAt - frozenAt} ms after the freeze, past the ${ttl} ms TTL`);
    const calledAt = Date.now();
    await assert.rejects(new aio.Counter(store, "c").next(), (error) => error instanceof TimeoutError || error instanceof BackendUnavailableError);
    assert.ok(Date.now() - calledAt < 2_000, `a call to the frozen server took ${Date.now() - calledAt} ms`);
    await new Promise((r) => setTimeout(r, Math.max(0, ttl + 100 - (Date.now() - frozenAt))));
    signalAll("SIGCONT");
    let lease = null;
    while (lease === null) lease = await lock.tryStart("k", { ttl: 30_000 }).catch(() => null);
    assert.ok(Date.now() > abortedAt, "another holder started the key only after the work was told to stop");
  } finally {
    signalAll("SIGCONT");
    await frozen.end().catch(() => {});
    await own.stop();
  }
});

test("a query timeout while the statement is in flight is an unknown outcome (timeout), not a failure", async () => {
  const store = await aio.openPostgres(pool({ query_timeout: 200 }), { namespace: fresh() });
  const lock = new aio.StartLock(store, "tasks");
  const holder = pool();
  // Another session holds the lease row locked, so the grant waits on it past the pool's timeout.
  const blocker = await holder.connect();
  await lock.tryStart("k", { ttl: 30_000 }).then((lease) => lease.release());
  await blocker.query("BEGIN");
  await blocker.query("SELECT * FROM racefree_leases FOR UPDATE");
  await blocker.query("SELECT * FROM racefree_lock_tokens FOR UPDATE");
  await assert.rejects(lock.tryStart("k", { ttl: 30_000 }), TimeoutError);
  await blocker.query("ROLLBACK");
  blocker.release();
  const lease = await lock.tryStart("k", { ttl: 30_000 });
  assert.ok(lease === null || lease.token >= 2, "the grant that may have run is never handed out twice");
});

test("4 processes race one key; one is killed while it holds the lease; no two ever hold it at once", { timeout: 30_000 }, async () => {
  await raceFourProcessesWithOneKilled({ RACEFREE_POSTGRES_URL: server.url(), RACEFREE_NAMESPACE: fresh() });
});

test("the server goes away and comes back: calls fail typed meanwhile, then work", { timeout: 60_000 }, async () => {
  const own = await new PostgresServer().start();
  const restarting = new Pool({ connectionString: own.url(), max: 4, connectionTimeoutMillis: 1_000 });
  restarting.on("error", () => {});
  try {
    const store = await aio.openPostgres(restarting, { namespace: fresh() });
    const counter = new aio.Counter(store, "c");
    assert.deepEqual([await counter.next(), await counter.next()], [0, 1]);
    await own.stop();
    await assert.rejects(counter.next(), (error) => error instanceof BackendUnavailableError || error instanceof TimeoutError);
    await own.start();
    let index = null;
    for (let i = 0; index === null && i < 50; i++) index = await counter.next().catch(() => null);
    assert.equal(index, 2, "the counter survived the restart and no index was skipped or repeated");
  } finally {
    await restarting.end().catch(() => {});
    await own.stop().catch(() => {});
  }
});

// The shared scenarios (tests/vectors/) on a PostgreSQL store.
for (const prepareStatements of [false, true]) test(`the shared scenarios on a PostgreSQL store${prepareStatements ? ", statements prepared" : ""}`, async () => {
  const shared = pool();
  const failures = await runEveryScenario((clock) => aio.openPostgres(shared, { namespace: fresh(), clock, prepareStatements }));
  assert.deepEqual(failures, []);
});
