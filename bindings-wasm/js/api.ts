// The `racefree` npm package's API: the idiomatic JavaScript layer over the wasm module (wired up
// by `install`, native.ts): options objects, promises, AbortSignal, null for "none", error
// classes. One module per primitive, as in the Rust core; argument checks in checks.ts, lease
// keeping in keeping.ts. Types convert here; every decision is made in the Rust core.
//
// Indexes, versions and tokens are `number`s: exact up to Number.MAX_SAFE_INTEGER (2^53 - 1); a
// value past that throws InvalidArgumentError instead of rounding. Durations (`ttl`, `timeout`,
// `retention`) are milliseconds.


export * from "./errors.js";
export * as aio from "./aio.js";
export { MAX_KEY_BYTES, errorCodes, newExecutionId } from "./native.js";
export { ManualClock, Store, open } from "./store.js";
export { Counter } from "./counter.js";
export type { Claim } from "./counter.js";
export { EventGuard, Mark } from "./event_guard.js";
export type { Holding, KeepOptions } from "./keeping.js";
export { Lease, StartLock } from "./start_lock.js";
export type { AcquireOptions, LockStats, RunExclusiveOptions } from "./start_lock.js";
export { TaskCoordinator } from "./coordinator.js";
export type { CoordinatorOptions } from "./coordinator.js";
export { Records } from "./records.js";
export type { Json, Versioned } from "./records.js";
export { Cache } from "./cache.js";
