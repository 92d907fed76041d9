// StartLock: one winner per key, with TTL leases and fencing tokens; waiting for a lease, and
// running a task under a kept one.

import type * as Native from "../node/racefree_wasm.js";
import { ms, options, str } from "./checks.js";
import { grantOf, grantReply, valueOf } from "./fast_call.js";
import { KeptRun, checkWait, keeperOptions, monotonicNow, sleep } from "./keeping.js";
import type { Holding, KeepOptions } from "./keeping.js";
import { native } from "./native.js";
import { Store } from "./store.js";


export class Lease {
  #lock: Native.StartLock;
  #key: string;
  #token: number;
  #deadlineMs: number;
  private constructor(lock: Native.StartLock, key: string, token: number, deadlineMs: number) {
    this.#lock = lock;
    this.#key = key;
    this.#token = token;
    this.#deadlineMs = deadlineMs;
  }
  /** @internal made by `StartLock.tryStart` */
  static granted(lock: Native.StartLock, key: string, token: number, deadlineMs: number): Lease {
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
  /** Milliseconds until `deadlineMs` on the store's clock (0 once past). */
  get timeLeftMs(): number {
    return this.#lock.timeLeftMs(this.#deadlineMs);
  }
  /** Extends the lease to `ttl` ms from now. @throws {NotOwnerError} once it was released or has expired @throws {InvalidArgumentError} for a bad `ttl` */
  renew(opts: { ttl: number }): void {
    const ttl = ms("ttl", options(opts, "renew options").ttl);
    this.#deadlineMs = valueOf(this.#lock.renewToken(this.#key, this.#token, ttl));
  }
  /** Frees the key at once. @throws {NotOwnerError} once it was released or has expired */
  release(): void {
    valueOf(this.#lock.releaseToken(this.#key, this.#token));
  }
}

/** What a `StartLock` handle and its leases have done (`stats()`), as in Rust and Python. */
export interface LockStats {
  /** Leases granted. */
  granted: number;
  /** Starts refused because the key was held. */
  contended: number;
  /** Successful renewals. */
  renewed: number;
  /** Successful releases. */
  released: number;
  /** Renewals and releases refused with `not_owner`. */
  rejectedNotOwner: number;
  /** Kept leases (`runExclusive`, the coordinator) lost because a renewal was refused with `not_owner`. */
  lostNotOwner: number;
  /** Kept leases lost because no renewal was confirmed before the safe deadline. */
  lostRenewalsFailed: number;
  /** Kept leases lost because they were held for their `maxHold`. */
  lostMaxHold: number;
}

/** The `LockStats` of the numbers the native lock gives, in their order. */
export function lockStats(raw: ArrayLike<number>): LockStats {
  const [granted, contended, renewed, released, rejectedNotOwner, lostNotOwner, lostRenewalsFailed, lostMaxHold] = Array.from(raw);
  return { granted, contended, renewed, released, rejectedNotOwner, lostNotOwner, lostRenewalsFailed, lostMaxHold };
}

export interface AcquireOptions {
  /** The lease's time to live, in milliseconds. */
  ttl: number;
  /** How long to wait, in milliseconds (default: forever). */
  timeout?: number;
  /** Aborts the wait, rejecting with `signal.reason`. */
  signal?: AbortSignal;
}

export interface RunExclusiveOptions extends AcquireOptions, KeepOptions {}

/** A wait's first attempt: `lease` null when the key was held. */
interface FirstTry {
  lease: Lease | null;
  requestedAt: number;
  key: string;
  ttl: number;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
}

/** One winner per key: TTL leases with fencing tokens. */
export class StartLock {
  #native: Native.StartLock;
  constructor(store: Store, name: string) {
    this.#native = new native.StartLock(Store.native(store), str("lock name", name));
  }
  /** @internal the wasm lock behind a StartLock */
  static native(lock: StartLock): Native.StartLock {
    return lock.#native;
  }
  /** The lock's name. */
  get name(): string {
    return this.#native.name;
  }
  /** A lease if nobody holds `key`, else `null`. */
  tryStart(key: string, opts: { ttl: number }): Lease | null {
    const native = this.#native;
    key = str("lease key", key);
    const grant = grantOf(native.tryGrant(key, ms("ttl", options(opts, "tryStart options").ttl), grantReply));
    return grant === null ? null : Lease.granted(native, key, grant.token, grant.deadlineMs);
  }
  /** Waits for the lease like the Web Locks API: `timeout` in ms (default: forever), `signal` aborts. */
  async acquire(key: string, opts: AcquireOptions): Promise<Lease> {
    const { ttl, timeout, signal } = options(opts, "acquire options");
    const first = this.#tryFirst(key, ttl, timeout, signal);
    return (first.lease !== null ? first : await this.#wait(first)).lease!;
  }
  /** The wait's first attempt, made at once: `{ lease, requestedAt }`, with `lease` null when the
   * key is held (then `#wait(first)`). */
  #tryFirst(key: string, ttl: unknown, timeout: unknown, signal: AbortSignal | undefined): FirstTry {
    key = str("lease key", key);
    const timeoutMs = timeout === undefined ? undefined : ms("timeout", timeout);
    const ttlMs = ms("ttl", ttl);
    checkWait(ttlMs, timeoutMs); // refused before anything is tried
    signal?.throwIfAborted();
    const requestedAt = monotonicNow();
    const lease = this.tryStart(key, { ttl: ttlMs });
    return { lease, requestedAt, key, ttl: ttlMs, timeoutMs, signal };
  }
  /** The key was held at the first attempt: waits by the core's schedule. */
  async #wait({ key, ttl, timeoutMs, signal, requestedAt: startedAt }: FirstTry): Promise<{ lease: Lease; requestedAt: number }> {
    const wait = new native.Acquisition(ttl, timeoutMs, startedAt);
    try {
      for (;;) {
        await sleep(wait.retryAfterMs(monotonicNow()), signal);
        const requestedAt = monotonicNow();
        const lease = this.tryStart(key, { ttl });
        if (lease !== null) return { lease, requestedAt };
      }
    } finally {
      wait.free();
    }
  }
  /**
   * Runs `fn({ lease, signal })` under the lease, renewed while `fn` runs, and releases it when
   * `fn` settles. `signal` aborts with a `LeaseLostError` when the lease is lost.
   */
  async runExclusive<T>(key: string, opts: RunExclusiveOptions, fn: (held: Holding) => T | Promise<T>): Promise<T> {
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const { ttl, timeout, signal, renewEvery, maxHold } = options(opts, "runExclusive options");
    const keeping = keeperOptions(ttl, renewEvery, maxHold); // refused before anything is acquired
    const first = this.#tryFirst(key, ttl, timeout, signal);
    const { lease, requestedAt } = first.lease !== null ? first : await this.#wait(first);
    const run = new KeptRun(this.#native, keeping, lease!, requestedAt, fn);
    if (signal === undefined) return run.done as Promise<T>;
    const forward = () => run.abort(signal.reason);
    signal.addEventListener("abort", forward, { once: true });
    try {
      return (await run.done) as T;
    } finally {
      signal.removeEventListener("abort", forward);
    }
  }
  /** Whether somebody holds an unexpired lease on `key`. @throws {InvalidKeyError} */
  isHeld(key: string): boolean {
    return this.#native.isHeld(str("lease key", key));
  }
  /** The token and deadline of the unexpired lease on `key`, or `null`. @throws {InvalidKeyError} */
  holder(key: string): { token: number; deadlineMs: number } | null {
    const found = this.#native.holderRaw(str("lease key", key));
    return found === undefined ? null : { token: found[0]!, deadlineMs: found[1]! };
  }
  /** This handle's leases so far: granted, refused because held, renewed, released, and renewals or releases refused as not the owner's. */
  stats(): LockStats {
    return lockStats(this.#native.statsRaw());
  }
}
