// StartLock and its Lease on a shared store: each call a Promise; waiting for a lease, and
// running a task under a kept one.

import type * as Native from "../node-hosted/racefree_wasm.js";
import { ms, options, rejecting, str } from "./checks.js";
import { KeptRun } from "./aio_keeping.js";
import type { Holding } from "./aio_keeping.js";
import { keeperOptions, sleep } from "./keeping.js";
import type { KeepOptions } from "./keeping.js";
import { lockStats } from "./start_lock.js";
import type { AcquireOptions, LockStats } from "./start_lock.js";
import { hostedModule, nativeModule } from "./native.js";
import { HostedStore } from "./stores.js";
import type { SharedStore } from "./stores.js";

/** A granted lease of a shared store's `StartLock`. */
export class Lease {
  #lock: Native.AsyncStartLock;
  #key: string;
  #token: number;
  #deadlineMs: number;
  private constructor(lock: Native.AsyncStartLock, key: string, token: number, deadlineMs: number) {
    this.#lock = lock;
    this.#key = key;
    this.#token = token;
    this.#deadlineMs = deadlineMs;
  }
  /** @internal made by `StartLock.tryStart` */
  static granted(lock: Native.AsyncStartLock, key: string, token: number, deadlineMs: number): Lease {
    return new Lease(lock, key, token, deadlineMs);
  }
  /** The leased key. */
  get key(): string {
    return this.#key;
  }
  /** The fencing token: larger than every token the lock granted before. */
  get token(): number {
    return this.#token;
  }
  /** When the lease expires, on the store's clock (milliseconds), as of its grant or last renewal. */
  get deadlineMs(): number {
    return this.#deadlineMs;
  }
  /** @throws {NotOwnerError} once it was released or has expired */
  renew(opts: { ttl: number }): Promise<void> {
    return rejecting(async () => {
      this.#deadlineMs = (await this.#lock.renewToken(this.#key, this.#token, ms("ttl", options(opts, "renew options").ttl))) as number;
    });
  }
  /** @throws {NotOwnerError} once it was released or has expired */
  release(): Promise<void> {
    return this.#lock.releaseToken(this.#key, this.#token) as Promise<void>;
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
    return rejecting(async () => {
      key = str("lease key", key);
      const granted = (await this.#native.tryGrant(key, ms("ttl", options(opts, "tryStart options").ttl))) as [number, number] | null;
      return granted === null ? null : Lease.granted(this.#native, key, granted[0], granted[1]);
    });
  }
  /** Whether anyone sharing the store holds an unexpired lease on `key`. @throws {InvalidKeyError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  isHeld(key: string): Promise<boolean> {
    return rejecting(() => this.#native.isHeld(str("lease key", key)) as Promise<boolean>);
  }
  /** The token and deadline of the unexpired lease on `key`, or `null`. @throws {InvalidKeyError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  holder(key: string): Promise<{ token: number; deadlineMs: number } | null> {
    return rejecting(async () => {
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
    const keeping = keeperOptions(ttl, renewEvery, maxHold); // refused before anything is acquired
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
    return rejecting(() => this.#native.releaseToken(str("lease key", key), token) as Promise<void>);
  }
  /** This handle's leases so far: granted, refused because held, renewed, released, and refused as not the owner's. */
  stats(): LockStats {
    return lockStats(this.#native.stats());
  }
}
