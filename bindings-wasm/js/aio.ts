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

import type * as Native from "../node/racefree_wasm.js";
import { jsonText, ms, nativeModule, options, str } from "./api.js";
import type { AcquireOptions, Claim, Json, KeepOptions, Versioned } from "./api.js";
import type { LeaseLostError } from "./errors.js";
import { NotOwnerError } from "./errors.js";

import { HostedStore, hostedModule } from "./stores.js";
import type { SharedStore } from "./stores.js";

export { PostgresStore, RedisStore, openPostgres, openRedis } from "./stores.js";
export type { SharedStore } from "./stores.js";
export type { IoredisLike, NodeRedisLike } from "./redis_client.js";
export type { PgPoolLike } from "./postgres_client.js";
/** The single-flight cache: one process's loads, whatever store the loaders use (the same class as
 * the in-memory API's, every call already a Promise). */
export { Cache } from "./api.js";

/** Runs `work` so that a bad argument rejects the returned promise instead of throwing. */
async function call<T>(work: () => Promise<T>): Promise<T> {
  return work();
}

/** A per-key sequential index counter on a shared store: 0, 1, 2, … unique and gap-free. */
export class Counter {
  #native: Native.AsyncCounter;
  constructor(store: SharedStore, key: string) {
    this.#native = new (hostedModule().AsyncCounter)(HostedStore.native(store), str("counter key", key));
  }
  /** The next index. @throws {BackendUnavailableError} @throws {TimeoutError} when the outcome is unknown */
  next(): Promise<number> {
    return this.#native.next() as Promise<number>;
  }
  /** The index of `executionId`, assigned on its first claim and stable afterwards. */
  claim(executionId: string): Promise<Claim> {
    return call(async () => {
      const [index, isNew] = (await this.#native.claim(str("execution id", executionId))) as [number, boolean];
      return { index, isNew };
    });
  }
  indexOf(executionId: string): Promise<number | null> {
    return call(() => this.#native.indexOf(str("execution id", executionId)) as Promise<number | null>);
  }
  peek(): Promise<number> {
    return this.#native.peek() as Promise<number>;
  }
  set(next: number): Promise<void> {
    return call(() => this.#native.set(next) as Promise<void>);
  }
  reset(): Promise<void> {
    return this.#native.reset() as Promise<void>;
  }
  stats(): { newClaims: number; repeatedClaims: number } {
    const [newClaims, repeatedClaims] = Array.from(this.#native.stats());
    return { newClaims, repeatedClaims };
  }
}

/** Ordered lifecycle events, each delivered once per stream, on a shared store. */
export class EventGuard {
  #native: Native.AsyncEventGuard;
  constructor(store: SharedStore, name: string, events: readonly string[], opts?: { retention?: number }) {
    const { retention } = options(opts, "guard options");
    if (!Array.isArray(events)) throw new TypeError("events must be an array of event names");
    const names = events.map((event) => str("event name", event));
    const keep = retention === undefined ? undefined : ms("retention", retention);
    this.#native = new (hostedModule().AsyncEventGuard)(HostedStore.native(store), str("guard name", name), names, keep);
  }
  /** `"first"`: deliver the event; `"duplicate"`: it was delivered. @throws {OutOfOrderError} */
  mark(stream: string, event: string): Promise<"first" | "duplicate"> {
    return call(async () =>
      ((await this.#native.mark(str("stream id", stream), str("event name", event))) ? "first" : "duplicate"),
    );
  }
  isMarked(stream: string, event: string): Promise<boolean> {
    return call(() => this.#native.isMarked(str("stream id", stream), str("event name", event)) as Promise<boolean>);
  }
  lastMarked(stream: string): Promise<string | null> {
    return call(() => this.#native.lastMarked(str("stream id", stream)) as Promise<string | null>);
  }
  forget(stream: string): Promise<boolean> {
    return call(() => this.#native.forget(str("stream id", stream)) as Promise<boolean>);
  }
  stats(): { delivered: number; duplicatesSuppressed: number; outOfOrder: number } {
    const [delivered, duplicatesSuppressed, outOfOrder] = Array.from(this.#native.stats());
    return { delivered, duplicatesSuppressed, outOfOrder };
  }
}

/** A granted lease of a shared store's `StartLock`. */
export class Lease {
  #native: Native.AsyncLease;
  private constructor(nativeLease: Native.AsyncLease) {
    this.#native = nativeLease;
  }
  /** @internal made by `StartLock.tryStart` */
  static granted(nativeLease: Native.AsyncLease): Lease {
    return new Lease(nativeLease);
  }
  get key(): string {
    return this.#native.key;
  }
  /** The fencing token: larger than every token the lock granted before. */
  get token(): number {
    return this.#native.token;
  }
  get deadlineMs(): number {
    return this.#native.deadlineMs;
  }
  /** @throws {NotOwnerError} once it was released or has expired */
  renew(opts: { ttl: number }): Promise<void> {
    return call(() => this.#native.renew(ms("ttl", options(opts, "renew options").ttl)) as Promise<void>);
  }
  /** @throws {NotOwnerError} once it was released or has expired */
  release(): Promise<void> {
    return this.#native.release() as Promise<void>;
  }
}

/** One winner per key, with TTL leases and fencing tokens, on a shared store. */
export class StartLock {
  #native: Native.AsyncStartLock;
  constructor(store: SharedStore, name: string) {
    this.#native = new (hostedModule().AsyncStartLock)(HostedStore.native(store), str("lock name", name));
  }
  /** A lease on `key` for `ttl` ms if nobody holds one, else `null`. */
  tryStart(key: string, opts: { ttl: number }): Promise<Lease | null> {
    return call(async () => {
      const granted = (await this.#native.tryStart(str("lease key", key), ms("ttl", options(opts, "tryStart options").ttl))) as
        | Native.AsyncLease
        | null;
      return granted === null ? null : Lease.granted(granted);
    });
  }
  isHeld(key: string): Promise<boolean> {
    return call(() => this.#native.isHeld(str("lease key", key)) as Promise<boolean>);
  }
  holder(key: string): Promise<{ token: number; deadlineMs: number } | null> {
    return call(async () => {
      const found = (await this.#native.holder(str("lease key", key))) as [number, number] | null;
      return found === null ? null : { token: found[0], deadlineMs: found[1] };
    });
  }
  /**
   * Waits for the lease: `timeout` in ms (default: forever), `signal` aborts the wait. Retries by
   * the core's schedule. @throws {TimeoutError} when the time is up
   */
  async acquire(key: string, opts: AcquireOptions): Promise<Lease> {
    return (await this.#acquire(key, opts)).lease;
  }
  async #acquire(key: string, opts: AcquireOptions): Promise<{ lease: Lease; requestedAt: number }> {
    const { ttl, timeout, signal } = options(opts, "acquire options");
    key = str("lease key", key);
    const ttlMs = ms("ttl", ttl);
    const timeoutMs = timeout === undefined ? undefined : ms("timeout", timeout);
    const wait = new (nativeModule().Acquisition)(ttlMs, timeoutMs, performance.now()); // refused before anything is tried
    try {
      for (;;) {
        signal?.throwIfAborted();
        const requestedAt = performance.now();
        const lease = await this.tryStart(key, { ttl: ttlMs });
        if (lease !== null) {
          if (signal?.aborted) {
            await lease.release().catch(() => {}); // aborted while it was granted: nobody holds it
            signal.throwIfAborted();
          }
          return { lease, requestedAt };
        }
        await sleep(wait.retryAfterMs(performance.now()), signal);
      }
    } finally {
      wait.free();
    }
  }
  /**
   * Runs `fn({ lease, signal })` under the lease, renewed while `fn` runs, and releases it when
   * `fn` settles. `signal` aborts with a `LeaseLostError` when the lease is lost — a renewal
   * refused, or none confirmed by the safe deadline on the local clock, whether or not the server
   * answers — before another holder can start the key.
   * @throws {LeaseLostError} when the lease was lost before `fn` fulfilled (its `result` is `fn`'s value)
   */
  async runExclusive<T>(key: string, opts: AcquireOptions & KeepOptions, fn: (held: Holding) => T | Promise<T>): Promise<T> {
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const { ttl, renewEvery, maxHold, signal } = options(opts, "runExclusive options");
    const keeping = keepOptions(ttl, renewEvery, maxHold); // refused before anything is acquired
    const { lease, requestedAt } = await this.#acquire(key, opts);
    const run = new KeptRun(this.#native, keeping, lease, requestedAt, fn);
    if (signal === undefined) return run.done as Promise<T>;
    const forward = () => run.abort(signal.reason);
    signal.addEventListener("abort", forward, { once: true });
    try {
      return (await run.done) as T;
    } finally {
      signal.removeEventListener("abort", forward);
    }
  }
  /** @internal the wasm lock behind a StartLock */
  static native(lock: StartLock): Native.AsyncStartLock {
    return lock.#native;
  }
  /** @throws {NotOwnerError} when `token` does not hold `key` */
  releaseToken(key: string, token: number): Promise<void> {
    return call(() => this.#native.releaseToken(str("lease key", key), token) as Promise<void>);
  }
  stats(): { granted: number; contended: number; renewed: number; released: number; rejectedNotOwner: number } {
    const [granted, contended, renewed, released, rejectedNotOwner] = Array.from(this.#native.stats());
    return { granted, contended, renewed, released, rejectedNotOwner };
  }
}

const sleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });

/** What a kept task receives: its lease (for its fencing token) and a signal that aborts with a `LeaseLostError` when the lease is lost. */
export interface Holding {
  readonly lease: Lease;
  readonly signal: AbortSignal;
}

interface Keeping {
  ttl: number;
  renewEvery: number | undefined;
  maxHold: number | undefined;
  firstWakeAfter: number;
}

/** Keep options the core accepts, checked now, with when a fresh lease first needs its keeper. */
function keepOptions(ttl: unknown, renewEvery: unknown, maxHold: unknown): Keeping {
  const optional = (what: string, value: unknown) => (value === undefined ? undefined : ms(what, value));
  const checked = { ttl: ms("ttl", ttl), renewEvery: optional("renewEvery", renewEvery), maxHold: optional("maxHold", maxHold) };
  return { ...checked, firstWakeAfter: nativeModule().firstWakeAfterMs(checked.ttl, checked.renewEvery, checked.maxHold) };
}

/**
 * One run of `fn({ lease, signal })` under `lease`: the core's keeper says when to renew; each
 * renewal is an async call, and while one is in flight a timer waits for the safe deadline, so a
 * server that does not answer cannot keep the signal from aborting in time. Then the lease is
 * released; `done` settles with `fn`'s outcome, or rejects with the loss.
 */
class KeptRun implements Holding {
  readonly lease: Lease;
  readonly done: Promise<unknown>;
  #lock: Native.AsyncStartLock;
  #keeping: Keeping;
  #requestedAt: number;
  #keeper: Native.LeaseKeeper | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #controller = new AbortController();
  #lost: unknown = null;
  constructor(lock: Native.AsyncStartLock, keeping: Keeping, lease: Lease, requestedAt: number, fn: (held: Holding) => unknown) {
    this.lease = lease;
    this.#lock = lock;
    this.#keeping = keeping;
    this.#requestedAt = requestedAt;
    this.#schedule(requestedAt + keeping.firstWakeAfter);
    this.done = this.#run(fn);
  }
  get signal(): AbortSignal {
    return this.#controller.signal;
  }
  abort(reason: unknown): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }
  #schedule(at: number): void {
    clearTimeout(this.#timer);
    if (!this.#stopped) this.#timer = setTimeout(() => this.#step(), Math.max(0, at - performance.now()));
  }
  #step(): void {
    if (this.#stopped) return;
    const now = performance.now();
    try {
      const { ttl, renewEvery, maxHold } = this.#keeping;
      this.#keeper ??= nativeModule().LeaseKeeper.hosted(this.#lock, this.lease.key, this.lease.token, this.#requestedAt, ttl, renewEvery, maxHold);
      this.#keeper.settle(now); // the reply of a renewal that has answered, if any
      let wake = this.#keeper.poll(now);
      if (wake === undefined) {
        (this.#keeper.renewAsync() as Promise<void>).then(() => this.#step());
        wake = this.#keeper.poll(now); // the safe deadline, while the renewal is in flight
      }
      this.#schedule(wake!);
    } catch (error) {
      this.#stop();
      this.#lost = error as LeaseLostError;
      this.abort(error);
    }
  }
  #stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
  async #run(fn: (held: Holding) => unknown): Promise<unknown> {
    let value: unknown;
    try {
      value = await fn(this);
    } finally {
      this.#stop();
      this.#keeper?.free();
      if (this.#lost !== null) {
        // Lost: its loss is the outcome. The release is still sent, to free the key at once if
        // the lease outlived its safe deadline, but not awaited: a server that stopped answering
        // (often why the lease was lost) must not hold the outcome back.
        this.lease.release().catch(() => {});
      } else {
        try {
          await this.lease.release();
        } catch (error) {
          if (!(error instanceof NotOwnerError)) throw error;
          this.#lost = error; // taken from it since the last renewal
        }
      }
    }
    if (this.#lost !== null) {
      (this.#lost as { result?: unknown }).result = value;
      throw this.#lost;
    }
    return value;
  }
}

export interface CoordinatorOptions extends KeepOptions {
  /** The lock's name (default "tasks"). */
  name?: string;
  /** The lease TTL in milliseconds (default 30,000). */
  ttl?: number;
  /** Called with a task's failure or lost lease (default: console.error). */
  onError?: (error: unknown, key: string) => void;
}

interface Running {
  run: KeptRun;
  stopped: DOMException | null;
  done: Promise<void> | null;
}

/**
 * Runs at most one task per key across every process sharing the store: `await start(key, fn)`
 * is `true` and runs `fn({ lease, signal })` under a lease kept alive while it runs, or `false`
 * when the key is held anywhere. `signal` aborts when the lease is lost or the task is stopped.
 */
export class TaskCoordinator {
  #lock: StartLock;
  #keeping: Keeping;
  #onError: (error: unknown, key: string) => void;
  #running = new Map<string, Running>();
  constructor(store: SharedStore, opts?: CoordinatorOptions) {
    const { name = "tasks", ttl = 30_000, renewEvery, maxHold, onError } = options(opts, "coordinator options");
    if (onError !== undefined && typeof onError !== "function") throw new TypeError("onError must be a function");
    this.#keeping = keepOptions(ttl, renewEvery, maxHold);
    this.#lock = new StartLock(store, name);
    this.#onError = onError ?? ((error, key) => console.error(`racefree: task ${JSON.stringify(key)} failed:`, error));
  }
  /** Runs `fn` unless `key` is held anywhere; resolves to whether it started. */
  async start(key: string, fn: (held: Holding) => unknown): Promise<boolean> {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = performance.now();
    const lease = await this.#lock.tryStart(key, { ttl: this.#keeping.ttl });
    if (lease === null) return false;
    const run = new KeptRun(StartLock.native(this.#lock), this.#keeping, lease, requestedAt, fn);
    const entry: Running = { run, stopped: null, done: null };
    entry.done = this.#settle(key, entry);
    this.#running.set(key, entry);
    return true;
  }
  async #settle(key: string, entry: Running): Promise<void> {
    try {
      await entry.run.done;
    } catch (error) {
      if (entry.stopped === null || error !== entry.stopped) this.#onError(error, key);
    } finally {
      if (this.#running.get(key) === entry) this.#running.delete(key);
    }
  }
  /** Aborts this coordinator's task for `key` and waits until it has settled and released; whether one ran. */
  async stop(key: string): Promise<boolean> {
    const entry = this.#running.get(str("task key", key));
    if (entry === undefined) return false;
    entry.stopped = new DOMException("the task was stopped", "AbortError");
    entry.run.abort(entry.stopped);
    await entry.done;
    return true;
  }
  /** Waits until this coordinator's task for `key` (if any) has settled and released its lease. */
  async wait(key: string): Promise<void> {
    await this.#running.get(str("task key", key))?.done;
  }
  /** Keys whose tasks run here. */
  running(): string[] {
    return [...this.#running.keys()].sort();
  }
  /** Whether `key` is held by anyone sharing the store. */
  isRunning(key: string): Promise<boolean> {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  async close(): Promise<void> {
    await Promise.all(this.running().map((key) => this.stop(key)));
  }
}

/** Versioned JSON records with compare-and-swap writes, on a shared store. */
export class Records {
  #native: Native.AsyncRecords;
  constructor(store: SharedStore, name: string) {
    this.#native = new (hostedModule().AsyncRecords)(HostedStore.native(store), str("record space name", name));
  }
  get(key: string): Promise<Versioned | null> {
    return call(async () => {
      const found = (await this.#native.get(str("record key", key))) as [string, number] | null;
      return found === null ? null : { value: JSON.parse(found[0]) as Json, version: found[1] };
    });
  }
  /** Create-only without `expectedVersion`; resolves to the new version. @throws {ConflictError} @throws {StaleTokenError} */
  put(key: string, value: Json, opts?: { expectedVersion?: number; fencingToken?: number }): Promise<number> {
    return call(() => {
      const { expectedVersion, fencingToken } = options(opts, "put options");
      return this.#native.put(str("record key", key), jsonText(value), expectedVersion, fencingToken) as Promise<number>;
    });
  }
  /**
   * One compare-and-swap write of `change(current)` (a function or an async function), re-read
   * and retried on conflict with the core's delays. @throws {ConflictError} after `maxAttempts`
   */
  update<T extends Json>(
    key: string,
    change: (current: Json | null) => T | Promise<T>,
    opts?: { fencingToken?: number; maxAttempts?: number },
  ): Promise<Versioned<T>> {
    return call(async () => {
      if (typeof change !== "function") throw new TypeError("change must be a function");
      const { fencingToken, maxAttempts = 5 } = options(opts, "update options");
      const delays = hostedModule().AsyncRecords.retryDelays(maxAttempts);
      for (let attempt = 0; ; attempt++) {
        const current = await this.get(key);
        const value = await change(current === null ? null : current.value);
        try {
          const version = await this.put(key, value, { expectedVersion: current?.version, fencingToken });
          return { value, version };
        } catch (error) {
          if ((error as { code?: string }).code !== "conflict" || attempt >= delays.length) throw error;
          await new Promise((resolve) => setTimeout(resolve, delays[attempt]));
        }
      }
    });
  }
  delete(key: string, opts?: { expectedVersion?: number }): Promise<boolean> {
    return call(() => this.#native.delete(str("record key", key), options(opts, "delete options").expectedVersion) as Promise<boolean>);
  }
  stats(): { writes: number; conflicts: number; retries: number; staleTokens: number } {
    const [writes, conflicts, retries, staleTokens] = Array.from(this.#native.stats());
    return { writes, conflicts, retries, staleTokens };
  }
}
