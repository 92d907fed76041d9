// The shared stores of the `aio` API: a Redis or PostgreSQL server reached with the
// application's own client, each a wasm `HostedStore` the async primitives run on.

import type * as Native from "../node-hosted/racefree_wasm.js";
import { options, str } from "./checks.js";
import { hostedModule } from "./native.js";
import { ManualClock } from "./store.js";
import { postgresRunner } from "./postgres_client.js";
import type { PgPoolLike } from "./postgres_client.js";
import { redisSender } from "./redis_client.js";
import type { RedisClientLike } from "./redis_client.js";

/** What every shared store offers, whatever its server. */
export abstract class HostedStore {
  #native: Native.HostedStore;
  // `unknown`: the shipped declarations name none of the wasm module's types.
  protected constructor(nativeStore: unknown) {
    this.#native = nativeStore as Native.HostedStore;
  }
  /** @internal the wasm store behind a shared store */
  static native(store: unknown): Native.HostedStore {
    if (!(store instanceof HostedStore)) {
      throw new TypeError("store must be a racefree aio store (from aio.openRedis() or aio.openPostgres())");
    }
    return store.#native;
  }
  /** The namespace that prefixes every key. */
  get namespace(): string {
    return this.#native.namespace;
  }
  /** Removes every expired lease and mark; resolves to how many. */
  sweep(): Promise<number> {
    return this.#native.sweep() as Promise<number>;
  }
  /** What the namespace holds (`entries`) and what this handle has swept. */
  async stats(): Promise<{ entries: number; expiredSwept: number }> {
    const [entries, expiredSwept] = (await this.#native.stats()) as [number, number];
    return { entries, expiredSwept };
  }
}

/** A Redis store reached through the application's own client. */
export class RedisStore extends HostedStore {
  /** @internal made by `openRedis` */
  static wrap(nativeStore: Native.HostedStore): RedisStore {
    return new RedisStore(nativeStore);
  }
}

/** A PostgreSQL store reached through the application's own `pg` Pool. */
export class PostgresStore extends HostedStore {
  /** @internal made by `openPostgres` */
  static wrap(nativeStore: Native.HostedStore): PostgresStore {
    return new PostgresStore(nativeStore);
  }
}

/** Any shared store: what the `aio` primitives run on. */
export type SharedStore = RedisStore | PostgresStore;

/** Hands what a host call settles to to the core's operation waiting in `slot` (see
 * `src/host_tasks.rs`: the operation goes on at once). */
function answer(module: ReturnType<typeof hostedModule>, slot: number, pending: Promise<unknown>): void {
  pending.then(
    (value) => module.hostAnswered(slot, value),
    (error) => module.hostFailed(slot, error),
  );
}

/** What reads a `ManualClock` from the hosted stores' module (a wasm instance of its own). */
function manualNowMs(clock: unknown): (() => number) | undefined {
  if (clock === undefined) return undefined;
  if (!(clock instanceof ManualClock)) throw new TypeError("clock must be a racefree ManualClock");
  return () => clock.nowMs();
}

/**
 * The store on the Redis server `client` (an ioredis or node-redis client, connected or
 * connecting) talks to, keys under `namespace`: the keys the Python and Rust stores of
 * `redis://…?namespace=<namespace>` use. Deadlines are judged by the server's clock; a
 * `ManualClock` (tests) judges them instead, as a manual clock does on every store.
 *
 * A Redis Cluster is reached through an ioredis `Cluster` or a node-redis `createCluster()`
 * client (the keys of `redis+cluster://…?namespace=<namespace>`): each request goes to the
 * primary of its hash tag, as the client routes it (it follows `MOVED` and `ASK`; replicas are
 * never read), and `sweep`, `stats` and scripts the nodes lost reach every primary. A Sentinel
 * group is reached through an ioredis client with `sentinels` or a node-redis `createSentinel()`
 * client (requests to the primary the sentinels name).
 *
 * Replication is asynchronous: a write the primary acknowledged can be lost with it in a failover.
 * With `replicas` (as `replicas=N` in Python and Rust), every write waits (`WAIT`) until that many
 * replicas acknowledged it, for up to `replicasTimeoutMs` (default 1000): a write fewer
 * acknowledged fails with `TimeoutError` (applied on the primary, its outcome unknown), a grant
 * is released first and fails with `BackendUnavailableError`. Each waiting write goes on a
 * connection of its own (`WAIT` blocks the connection it is sent on): a duplicate of the client,
 * kept idle for the next write and closed when the client ends, or for a node-redis Sentinel
 * client its connection to the primary, lent by `acquire()` for the write (every other call
 * waits meanwhile; keep its default `masterPoolSize` of 1: with more, node-redis 5 can keep one
 * leased after concurrent first commands and leave calls waiting for good — a write that gets no
 * connection within `replicasTimeoutMs` fails with `BackendUnavailableError`, unsent). On a
 * cluster client, a duplicate of the client of the primary the client's slot table names for the
 * write's hash slot (a write that meets a resharding there fails unsent: `MOVED` is the cluster
 * client's to follow).
 *
 * @throws {TypeError} when `client` is none of those clients, or an option is of the wrong type.
 * @throws {DOMException} `NotSupportedError` in the browser build.
 * @throws {InvalidArgumentError} for an ioredis client or Cluster with a `keyPrefix`, a bad
 *   namespace, `replicas` that is not a whole number, a `replicasTimeoutMs` of 0 or not a whole
 *   number, or `replicas` on a client that opens no connection of its own.
 */
export function openRedis(
  client: RedisClientLike,
  opts?: { namespace?: string; clock?: ManualClock; replicas?: number; replicasTimeoutMs?: number },
): RedisStore {
  const { namespace = "", clock, replicas, replicasTimeoutMs } = options(opts, "openRedis options");
  const module = hostedModule();
  const { send, nodes } = redisSender(client, module, typeof replicas === "number" && replicas > 0);
  const native = module.HostedStore.redis(send, str("namespace", namespace), manualNowMs(clock), nodes, replicas, replicasTimeoutMs);
  return RedisStore.wrap(native);
}

/**
 * The store in the PostgreSQL database `pool` (a `pg` Pool) connects to, rows under `namespace`:
 * the tables and namespace the Python and Rust stores of `postgres://…?namespace=<namespace>`
 * use. Resolves once racefree's schema is in place: created when missing unless `createSchema`
 * is `false`. Deadlines are judged by the server's clock; a `ManualClock` (tests) judges them.
 * Each call checks a client out of the pool for one transaction; the pool's own settings
 * (`query_timeout`, `statement_timeout`, TLS) apply. `prepareStatements` prepares each statement
 * once per connection (faster; only on a direct connection or a pooler that tracks prepared
 * statements, as `prepare_statements` in Python and Rust).
 *
 * @throws {TypeError} when `pool` is not a pg Pool.
 * @throws {DOMException} `NotSupportedError` in the browser build.
 * @throws {InvalidArgumentError} for a bad namespace.
 * @throws {BackendUnavailableError} when the server cannot be reached, or the schema is missing
 *   (and may not be created) or of another version.
 */
export async function openPostgres(
  pool: PgPoolLike,
  opts?: { namespace?: string; clock?: ManualClock; createSchema?: boolean; prepareStatements?: boolean },
): Promise<PostgresStore> {
  const { namespace = "", clock, createSchema = true, prepareStatements = false } = options(opts, "openPostgres options");
  if (typeof createSchema !== "boolean") throw new TypeError("createSchema must be a boolean");
  if (typeof prepareStatements !== "boolean") throw new TypeError("prepareStatements must be a boolean");
  const run = postgresRunner(pool, prepareStatements);
  const module = hostedModule();
  const native = (await module.HostedStore.postgres(
    (begin: string | null, statements: [string, unknown[]][], slot: number) => answer(module, slot, run(begin, statements)),
    str("namespace", namespace),
    manualNowMs(clock),
    createSchema,
  )) as Native.HostedStore;
  return PostgresStore.wrap(native);
}
