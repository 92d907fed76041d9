// The primitives on a Redis or PostgreSQL server shared with other processes (Node, Python,
// Rust), reached with the client the application already has (ioredis or node-redis; a pg Pool):
// the same class names as the in-memory API, each call a Promise. The host's client carries the
// bytes; the Rust core plans every request and decodes every reply, so keys, scripts, tables and
// tokens are the other languages'.
//
//     import Redis from "ioredis";
//     import { aio } from "racefree";
//     const store = aio.openRedis(new Redis(), { namespace: "app" });
//     // or: const store = await aio.openPostgres(new pg.Pool(), { namespace: "app" });
//     const counter = new aio.Counter(store, "jobs");
//     await counter.next();

export { PostgresStore, RedisStore, openPostgres, openRedis } from "./stores.js";
export type { SharedStore } from "./stores.js";
export type { IoredisClusterLike, IoredisLike, NodeRedisClusterLike, NodeRedisLike, NodeRedisSentinelLike, RedisClientLike } from "./redis_client.js";
export type { PgPoolLike } from "./postgres_client.js";
export { Counter } from "./aio_counter.js";
export { EventGuard } from "./aio_event_guard.js";
export { Lease, StartLock } from "./aio_start_lock.js";
export type { Holding } from "./aio_keeping.js";
export { TaskCoordinator } from "./aio_coordinator.js";
export type { CoordinatorOptions } from "./coordinator.js";
export { Records } from "./aio_records.js";
/** The single-flight cache: one process's loads, whatever store the loaders use (the same class as
 * the in-memory API's, every call already a Promise). */
export { Cache } from "./cache.js";
