// Type-checked against the package's declarations (dist/*.d.ts, made from js/*.ts) with `tsc --noEmit` (never run). The
// expect-error directives below prove the types reject what the runtime rejects.
import {
  Cache,
  ConflictError,
  Counter,
  EventGuard,
  LeaseLostError,
  Mark,
  Records,
  StartLock,
  TaskCoordinator,
  aio,
  open,
  newExecutionId,
  type Json,
  type Lease,
  type LockStats,
  type Store,
  type Versioned,
} from "racefree";

const store = open();
const counter = new Counter(store, "task:1");
const claim = counter.claim(newExecutionId());
const index: number = claim.index;
const isNew: boolean = claim.isNew;
const maybe: number | null = counter.indexOf("x");

const guard = new EventGuard(store, "streams", ["started", "ended"], { retention: 60_000 });
const mark: Mark = guard.mark("s", "started");
const first: boolean = mark === Mark.First;

const lock = new StartLock(store, "tasks");
const lease: Lease | null = lock.tryStart("k", { ttl: 30_000 });
const token: number | undefined = lease?.token;
const lockStats: LockStats = lock.stats();
const lostByMaxHold: number = new TaskCoordinator(store).lock.stats().lostMaxHold + lockStats.lostRenewalsFailed;

async function waiting(signal: AbortSignal): Promise<string> {
  const held: Lease = await lock.acquire("k", { ttl: 30_000, timeout: 1_000, signal });
  held.renew({ ttl: 30_000 });
  held.release();
  return lock.runExclusive("k", { ttl: 30_000, renewEvery: 5_000, maxHold: 60_000 }, async ({ lease, signal }) => {
    signal.throwIfAborted();
    return `ran with token ${lease.token}`;
  });
}

async function coordinated(store: Store): Promise<boolean> {
  const tasks = new TaskCoordinator(store, { ttl: 10_000, onError: (error: unknown, key: string) => console.log(key, error) });
  const started: boolean = await tasks.start("k", async ({ signal }) => signal.aborted);
  await tasks.wait("k");
  const keys: string[] = tasks.running();
  try {
    await lock.runExclusive("k", { ttl: 100 }, () => 1);
  } catch (error) {
    if (error instanceof LeaseLostError) {
      const why: "not_owner" | "renewals_failed" | "max_hold_reached" = error.reason;
      console.log(why, error.lastError?.code, error.result, keys);
    }
  }
  return started;
}

const records = new Records(store, "pods");
const updated: Versioned<{ phase: string }> = records.update("p", () => ({ phase: "Running" }));
const value: Json | undefined = records.get("p")?.value;
try {
  records.put("p", { phase: "x" });
} catch (error) {
  if (error instanceof ConflictError) {
    const current: number | null = error.currentVersion;
    void current;
  }
}

const cache = new Cache({ maxEntries: 100 });
const engines: Promise<string[]> = cache.getOrLoad("engines", { ttl: 2_000 }, async () => ["a"]);
const cachedFetch: (region: string) => Promise<number> = cache.wrap(async (region: string) => region.length, { ttl: 1_000 });

// @ts-expect-error keys are strings
new Counter(store, 42);
// @ts-expect-error ttl is required
lock.tryStart("k", {});
// @ts-expect-error record values are JSON
records.put("p", new Map());
// @ts-expect-error marks are "first" or "duplicate"
const wrong: Mark = "maybe";

void [index, isNew, maybe, first, token, waiting, updated, value, engines, cachedFetch, wrong];

// The aio store: the same classes, each call a Promise; a memory Store is not one.
declare const ioredisClient: aio.IoredisLike;
async function onRedis(): Promise<number> {
  const shared = aio.openRedis(ioredisClient, { namespace: "app" });
  const replicated: aio.RedisStore = aio.openRedis(ioredisClient, { namespace: "app", replicas: 1, replicasTimeoutMs: 500 });
  // @ts-expect-error replicas is a number
  aio.openRedis(ioredisClient, { replicas: "1" });
  void replicated;
  const index: number = await new aio.Counter(shared, "jobs").next();
  const mark: "first" | "duplicate" = await new aio.EventGuard(shared, "s", ["started"]).mark("x", "started");
  const lease: aio.Lease | null = await new aio.StartLock(shared, "tasks").tryStart("k", { ttl: 1000 });
  const record: Versioned | null = await new aio.Records(shared, "pods").get("p");
  const token: number = await new aio.StartLock(shared, "tasks").runExclusive("k", { ttl: 1000 }, async ({ lease, signal }) => (signal.aborted ? 0 : lease.token));
  const started: boolean = await new aio.TaskCoordinator(shared, { ttl: 1000 }).start("k", async () => {});
  // @ts-expect-error a memory store is not an aio store
  new aio.Counter(open(), "jobs");
  // @ts-expect-error an aio call is a Promise, not a number
  const wrong: number = new aio.Counter(shared, "jobs").next();
  return index + (mark === "first" ? 1 : 0) + (lease?.token ?? 0) + (record?.version ?? 0) + wrong + token + Number(started);
}
void onRedis;

// Cluster clients: an ioredis Cluster and a node-redis cluster are taken as they are.
declare const ioredisCluster: aio.IoredisClusterLike;
declare const nodeRedisCluster: aio.NodeRedisClusterLike;
declare const nodeRedisSentinel: aio.NodeRedisSentinelLike;
const clusterStores: aio.RedisStore[] = [aio.openRedis(ioredisCluster), aio.openRedis(nodeRedisCluster, { namespace: "app" }), aio.openRedis(nodeRedisSentinel)];
// @ts-expect-error a client is one of the four kinds
aio.openRedis({ sendCommand: 1 });
void clusterStores;

// PostgreSQL through a pg Pool: openPostgres resolves to the store once the schema is checked.
declare const pgPool: aio.PgPoolLike;
async function onPostgres(): Promise<number> {
  const shared: aio.PostgresStore = await aio.openPostgres(pgPool, { namespace: "app", createSchema: false });
  const either: aio.SharedStore = Math.random() < 0.5 ? shared : aio.openRedis(ioredisClient);
  const index: number = await new aio.Counter(either, "jobs").next();
  // @ts-expect-error openPostgres is a Promise of the store, not the store
  new aio.Counter(aio.openPostgres(pgPool), "jobs");
  // @ts-expect-error createSchema is a boolean
  await aio.openPostgres(pgPool, { createSchema: "no" });
  return index;
}
void onPostgres;
