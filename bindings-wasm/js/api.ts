// Types of the `racefree` npm package, and the idiomatic JavaScript API over the wasm module
// (wired up by `install`): options objects, promises, AbortSignal, null for "none", error classes.
// Types convert here; every decision is made in the Rust core.
//
// Indexes, versions and tokens are `number`s: exact up to Number.MAX_SAFE_INTEGER (2^53 - 1); a
// value past that throws InvalidArgumentError instead of rounding. Durations (`ttl`, `timeout`,
// `retention`) are milliseconds.

import type * as Native from "../node/racefree_wasm.js";
import { InvalidArgumentError, InvalidKeyError, NotOwnerError, fromNative } from "./errors.js";
import type { LeaseLostError } from "./errors.js";
import { bindFastCalls, claimOf, grantOf, grantReply, isFirstMark, valueOf } from "./fast_call.js";

export * from "./errors.js";
export * as aio from "./aio.js";

/** A JSON-compatible value: what a record holds. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const Mark = Object.freeze({ First: "first", Duplicate: "duplicate" } as const);
export type Mark = (typeof Mark)[keyof typeof Mark];

/** An options argument: `undefined` (none given) or an object; anything else is a TypeError. */
/** @internal */
export function options<T extends object>(value: T | undefined, what: string): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object") {
    throw new TypeError(`${what} must be an options object, got ${value === null ? "null" : typeof value}`);
  }
  return value;
}

const typeName = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value);

/** A key, id or name: a string of well-formed UTF-16 (a lone surrogate has no UTF-8 form). */
/** @internal */
export function str(what: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string, got ${typeName(value)}`);
  if (!value.isWellFormed()) throw new InvalidKeyError(`invalid key: ${what} contains a lone surrogate (not valid UTF-8)`);
  return value;
}

/** Milliseconds: a number (range checks happen in the core, the same in every language). */
/** @internal */
export function ms(what: string, value: unknown): number {
  if (typeof value !== "number") throw new TypeError(`${what} must be a number of milliseconds, got ${typeName(value)}`);
  return value;
}

const MAX_DEPTH = 64;

/** JSON text for a record value, refusing what JSON.stringify would silently drop or change. */
/** @internal */
export function jsonText(value: unknown): string {
  const check = (v: unknown, depth: number): void => {
    if (depth > MAX_DEPTH) {
      throw new InvalidArgumentError(`invalid argument: record value nests deeper than ${MAX_DEPTH} levels (or contains itself)`);
    }
    if (v === null || typeof v === "string" || typeof v === "boolean") return;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`invalid argument: ${v} is not a JSON number`);
      return;
    }
    if (Array.isArray(v)) return v.forEach((item) => check(item, depth + 1));
    const proto = typeof v === "object" ? Object.getPrototypeOf(v) : undefined;
    if (proto === Object.prototype || proto === null) {
      const object = v as Record<string, unknown>;
      for (const key of Object.keys(object)) check(object[key], depth + 1);
      return;
    }
    throw new TypeError(
      `a record value must be JSON-compatible (plain object, array, string, finite number, boolean or null), got ${(v as object | undefined)?.constructor?.name ?? typeName(v)}`,
    );
  };
  check(value, 0);
  return JSON.stringify(value);
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

/** The wasm module's exports, the same in its `nodejs` and `web` builds. */
/** The classes of the stores over a host's client: in the Node build only. */
type HostedClasses = "HostedStore" | "AsyncCounter" | "AsyncEventGuard" | "AsyncLease" | "AsyncRecords" | "AsyncStartLock";
type NativeModule = Omit<typeof Native, "default" | HostedClasses> & Partial<Pick<typeof Native, HostedClasses>>;
/** @internal The Node build's module, with the hosted stores' classes. */
export type HostedModule = Omit<typeof Native, "default">;

/** Stands in for the wasm module until an entry point installs it: any use says what to do. */
const notInstalled = new Proxy({} as NativeModule, {
  get() {
    throw new Error("racefree is not initialized: with `racefree/web`, call `await init()` (or `initSync(module)`) first");
  },
});

/** The wasm module every class calls into; set once by the entry point (node.js, web.js). */
let native: NativeModule = notInstalled;

/** @internal Whether an entry point has installed the wasm module. */
export const isInstalled = (): boolean => native !== notInstalled;

/** The longest key, id or name accepted, in bytes of UTF-8 (set by `install`). */
export let MAX_KEY_BYTES: number;

/** @internal Connects this API to an instantiated wasm module; called once by each entry point. */
export function install(module: NativeModule): void {
  native = module;
  bindFastCalls(module);
  native.installErrorFactory(fromNative);
  MAX_KEY_BYTES = native.maxKeyBytes();
}

/** @internal The installed wasm module (for the `aio` module). */
export const nativeModule = (): NativeModule => native;

/** A new execution id: a ULID, monotonic within this instance. */
export const newExecutionId = (): string => native.newExecutionId();
/** Every error code the core can raise. */
export const errorCodes = (): string[] => native.errorCodes();

/** A clock that moves only when told to (tests). */
export class ManualClock {
  #native: Native.ManualClock;
  constructor(startMs = 0) {
    this.#native = new native.ManualClock(ms("startMs", startMs));
  }
  advance(by: number): void {
    this.#native.advance(ms("ms", by));
  }
  nowMs(): number {
    return this.#native.nowMs();
  }
  /** @internal a fresh native handle sharing this clock's time */
  static native(clock: ManualClock | undefined): Native.ManualClock | undefined {
    return clock === undefined ? undefined : clock.#native.fork();
  }
}

export class Store {
  #native: Native.Store;
  private constructor(nativeStore: Native.Store) {
    this.#native = nativeStore;
  }
  /** @internal made by `open` */
  static wrap(nativeStore: Native.Store): Store {
    return new Store(nativeStore);
  }
  /** @internal the wasm store behind a Store */
  static native(store: unknown): Native.Store {
    if (!(store instanceof Store)) throw new TypeError("store must be a racefree Store (from open())");
    return store.#native;
  }
  get namespace(): string {
    return this.#native.namespace;
  }
  /** Removes every expired lease and mark; returns how many. */
  sweep(): number {
    return this.#native.sweep();
  }
  stats(): { entries: number; expiredSwept: number } {
    return this.#native.stats() as { entries: number; expiredSwept: number };
  }
}

/** Opens a store: `memory://` (the default, and the only backend in JavaScript). */
export function open(url = "memory://", opts?: { clock?: ManualClock }): Store {
  const { clock } = options(opts, "open options");
  if (clock !== undefined && !(clock instanceof ManualClock)) throw new TypeError("clock must be a racefree ManualClock");
  return Store.wrap(native.openStore(str("url", url), ManualClock.native(clock)));
}

export interface Claim {
  readonly index: number;
  /** `true` for the one claim that assigned the index. */
  readonly isNew: boolean;
}

/** A per-key sequential index counter: 0, 1, 2, … unique and gap-free. */
export class Counter {
  #native: Native.Counter;
  constructor(store: Store, key: string) {
    this.#native = new native.Counter(Store.native(store), str("counter key", key));
  }
  get key(): string {
    return this.#native.key;
  }
  next(): number {
    return valueOf(this.#native.next());
  }
  /** The index of `executionId`, assigned on its first claim and stable afterwards. */
  claim(executionId: string): Claim {
    return claimOf(this.#native.claim(str("execution id", executionId)));
  }
  indexOf(executionId: string): number | null {
    return this.#native.indexOf(str("execution id", executionId)) ?? null;
  }
  peek(): number {
    return this.#native.peek();
  }
  set(next: number): void {
    this.#native.set(next);
  }
  reset(): void {
    this.#native.reset();
  }
  stats(): { newClaims: number; repeatedClaims: number } {
    const [newClaims, repeatedClaims] = this.#native.statsRaw() as unknown as [number, number];
    return { newClaims, repeatedClaims };
  }
}

/** Ordered lifecycle events, each delivered once per stream. */
export class EventGuard {
  #native: Native.EventGuard;
  constructor(store: Store, name: string, events: readonly string[], opts?: { retention?: number }) {
    const { retention } = options(opts, "guard options");
    if (!Array.isArray(events)) throw new TypeError(`events must be an array of event names, got ${typeName(events)}`);
    const names = events.map((event) => str("event name", event));
    const keep = retention === undefined ? undefined : ms("retention", retention);
    this.#native = new native.EventGuard(Store.native(store), str("guard name", name), names, keep);
  }
  get events(): string[] {
    return this.#native.events;
  }
  /** Throws OutOfOrderError when the event before `event` is not marked (nothing is recorded). */
  mark(stream: string, event: string): Mark {
    return isFirstMark(this.#native.mark(str("stream id", stream), str("event name", event))) ? Mark.First : Mark.Duplicate;
  }
  isMarked(stream: string, event: string): boolean {
    return this.#native.isMarked(str("stream id", stream), str("event name", event));
  }
  lastMarked(stream: string): string | null {
    return this.#native.lastMarked(str("stream id", stream)) ?? null;
  }
  forget(stream: string): boolean {
    return this.#native.forget(str("stream id", stream));
  }
  stats(): { delivered: number; duplicatesSuppressed: number; outOfOrder: number } {
    const [delivered, duplicatesSuppressed, outOfOrder] = this.#native.statsRaw() as unknown as [number, number, number];
    return { delivered, duplicatesSuppressed, outOfOrder };
  }
}

const monotonicNow = (): number => performance.now();

/** Lets a Node timer hold the process open, or not (browsers' timers have no such switch). */
function refTimer(timer: ReturnType<typeof setTimeout> | undefined, held: boolean): void {
  const handle = timer as { ref?: () => void; unref?: () => void } | undefined;
  if (held) handle?.ref?.();
  else handle?.unref?.();
}

/** Keep options as the core accepted them, with when a fresh lease first needs its keeper. */
interface Keeping {
  ttl: number;
  renewEvery: number | undefined;
  maxHold: number | undefined;
  firstWakeAfter: number;
}

let lastKeeperOptions: Keeping = { ttl: NaN, renewEvery: undefined, maxHold: undefined, firstWakeAfter: NaN };

/** Keep options the core accepts (`ttl`, `renewEvery` default ttl / 3, `maxHold`), checked now
 * (or found equal to the last ones checked), with when a fresh lease first needs its keeper. */
function keeperOptions(ttl: unknown, renewEvery: unknown, maxHold: unknown): Keeping {
  const last = lastKeeperOptions;
  if (ttl === last.ttl && renewEvery === last.renewEvery && maxHold === last.maxHold) return last;
  const optional = (what: string, value: unknown) => (value === undefined ? undefined : ms(what, value));
  const checked = { ttl: ms("ttl", ttl), renewEvery: optional("renewEvery", renewEvery), maxHold: optional("maxHold", maxHold) };
  const firstWakeAfter = native.firstWakeAfterMs(checked.ttl, checked.renewEvery, checked.maxHold);
  return (lastKeeperOptions = { ...checked, firstWakeAfter });
}

let lastWait: { ttl: number; timeout: number | undefined } = { ttl: NaN, timeout: undefined };

/** Throws what the core says of a wait's `ttl` and `timeout` (remembering the last good pair). */
function checkWait(ttl: number, timeout: number | undefined): void {
  if (ttl === lastWait.ttl && timeout === lastWait.timeout) return;
  native.checkWait(ttl, timeout);
  lastWait = { ttl, timeout };
}

/**
 * Every kept lease of this realm, on one timer: each lease's keeper (the core's) says when it
 * wants a renewal; the timer wakes at the earliest. JavaScript runs one thing at a time, so one
 * timer serves all, and starting a lease rarely touches it. A keeper is made when its lease first
 * needs one (the core says when), so a run shorter than `renewEvery` makes none. In Node the timer
 * holds the process open while a lease is kept (it may have to abort a task that waits for nothing
 * else), and not after the last one ends.
 */
interface Kept {
  nativeLock: Native.StartLock;
  lease: Lease;
  requestedAt: number;
  options: Keeping;
  run: KeptRun;
  keeper: Native.LeaseKeeper | null;
  wake: number;
}

const keptLeases = {
  leases: new Set<Kept>(),
  timer: undefined as ReturnType<typeof setTimeout> | undefined,
  timerAt: Infinity,
  /** Keeps `lease` alive, calling `run.onLost(error)` once if it is lost; returns `stop`. */
  keep(nativeLock: Native.StartLock, lease: Lease, requestedAt: number, options: Keeping, run: KeptRun): () => void {
    const kept: Kept = { nativeLock, lease, requestedAt, options, run, keeper: null, wake: requestedAt + options.firstWakeAfter };
    this.leases.add(kept);
    if (this.leases.size === 1) refTimer(this.timer, true);
    this.schedule(kept.wake);
    return () => this.forget(kept);
  },
  forget(kept: Kept): void {
    if (!this.leases.delete(kept)) return;
    kept.keeper?.free();
    if (this.leases.size === 0) refTimer(this.timer, false);
  },
  schedule(wake: number): void {
    if (wake >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = wake;
    this.timer = setTimeout(() => this.tick(), Math.max(0, wake - monotonicNow()));
  },
  tick(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = monotonicNow();
    for (const kept of [...this.leases]) {
      if (kept.wake <= now) this.step(kept, now);
      else this.schedule(kept.wake);
    }
  },
  /** Polls a lease's keeper at `now`, renewing while it asks (the memory store answers at once; a
   * store that answers later would await the reply between `renew` and `settle`). */
  step(kept: Kept, now: number): void {
    const { lease, options } = kept;
    try {
      kept.keeper ??= new native.LeaseKeeper(kept.nativeLock, lease.key, lease.token, kept.requestedAt, options.ttl, options.renewEvery, options.maxHold);
      let wake;
      while ((wake = kept.keeper.poll(now)) === undefined) {
        kept.keeper.renew();
        kept.keeper.settle((now = monotonicNow()));
      }
      kept.wake = wake;
    } catch (error) {
      this.forget(kept);
      kept.run.onLost(error as LeaseLostError);
      return;
    }
    this.schedule(kept.wake);
  },
};

/**
 * One run of `fn({ lease, signal })` under `lease`, kept alive while it runs, then released.
 * `done` settles with `fn`'s outcome; if the lease was lost before `fn` fulfilled, it rejects with
 * the `LeaseLostError` (or the release's `NotOwnerError`), whose `result` is `fn`'s value.
 * `abort(reason)` aborts the signal. The run is the `{ lease, signal }` that `fn` receives; its
 * signal is made on first use (reading an AbortSignal costs Node 20 about 5 µs, more than the rest
 * of a run).
 */
class KeptRun implements Holding {
  readonly lease: Lease;
  readonly done: Promise<unknown>;
  #controller: AbortController | null = null;
  #aborted: { reason: unknown } | null = null;
  #lost: (LeaseLostError | InstanceType<typeof NotOwnerError>) | null = null;
  #stop: () => void;
  constructor(nativeLock: Native.StartLock, options: Keeping, lease: Lease, requestedAt: number, fn: (held: Holding) => unknown) {
    this.lease = lease;
    this.#stop = keptLeases.keep(nativeLock, lease, requestedAt, options, this);
    this.done = this.#run(fn);
  }
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted !== null) this.#controller.abort(this.#aborted.reason);
    }
    return this.#controller.signal;
  }
  abort(reason: unknown): void {
    if (this.#aborted !== null) return;
    this.#aborted = { reason };
    this.#controller?.abort(reason);
  }
  /** @internal called by the keeper */
  onLost(error: LeaseLostError): void {
    this.#lost = error;
    this.abort(error);
  }
  async #run(fn: (held: Holding) => unknown): Promise<unknown> {
    let value: unknown;
    try {
      value = await fn(this);
    } finally {
      this.#stop();
      try {
        this.lease.release();
      } catch (error) {
        if (!(error instanceof NotOwnerError)) throw error;
        this.#lost ??= error; // taken from it since the last renewal
      }
    }
    if (this.#lost !== null) {
      (this.#lost as { result?: unknown }).result = value;
      throw this.#lost;
    }
    return value;
  }
}

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
  get key(): string {
    return this.#key;
  }
  /** The fencing token: larger than every token the lock granted before. */
  get token(): number {
    return this.#token;
  }
  get deadlineMs(): number {
    return this.#deadlineMs;
  }
  get timeLeftMs(): number {
    return this.#lock.timeLeftMs(this.#deadlineMs);
  }
  renew(opts: { ttl: number }): void {
    const ttl = ms("ttl", options(opts, "renew options").ttl);
    this.#deadlineMs = valueOf(this.#lock.renewToken(this.#key, this.#token, ttl));
  }
  release(): void {
    valueOf(this.#lock.releaseToken(this.#key, this.#token));
  }
}

export interface AcquireOptions {
  /** The lease's time to live, in milliseconds. */
  ttl: number;
  /** How long to wait, in milliseconds (default: forever). */
  timeout?: number;
  /** Aborts the wait, rejecting with `signal.reason`. */
  signal?: AbortSignal;
}

export interface KeepOptions {
  /** Milliseconds between renewals (default: ttl / 3); must be below the TTL. */
  renewEvery?: number;
  /** Stop renewing after this many milliseconds and report the lease lost; at least the TTL. */
  maxHold?: number;
}

export interface RunExclusiveOptions extends AcquireOptions, KeepOptions {}

/** What a kept task receives: its lease (for its fencing token) and a signal that aborts with a `LeaseLostError` when the lease is lost. */
export interface Holding {
  readonly lease: Lease;
  readonly signal: AbortSignal;
}

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
  isHeld(key: string): boolean {
    return this.#native.isHeld(str("lease key", key));
  }
  holder(key: string): { token: number; deadlineMs: number } | null {
    const found = this.#native.holderRaw(str("lease key", key));
    return found === undefined ? null : { token: found[0]!, deadlineMs: found[1]! };
  }
  stats(): { granted: number; contended: number; renewed: number; released: number; rejectedNotOwner: number } {
    const [granted, contended, renewed, released, rejectedNotOwner] = this.#native.statsRaw() as unknown as number[];
    return { granted, contended, renewed, released, rejectedNotOwner };
  }
}

/**
 * Runs at most one task per key: `await coordinator.start(key, fn)` is `true` and runs
 * `fn({ lease, signal })` under a lease kept alive while it runs, or `false` at once when the key
 * is held. `signal` aborts when the lease is lost or the task is stopped; failures go to `onError`.
 */
export interface CoordinatorOptions extends KeepOptions {
  /** The lock's name (default "tasks"). */
  name?: string;
  /** The lease TTL in milliseconds (default 30,000). */
  ttl?: number;
  /** Called with a task's failure or lost lease (default: console.error). */
  onError?: (error: unknown, key: string) => void;
}

/** A task running here: its run, why it was stopped (if it was), and its settling. */
interface Running {
  run: KeptRun;
  stopped: DOMException | null;
  done: Promise<void> | null;
}

export class TaskCoordinator {
  #lock: StartLock;
  #keeping: Keeping;
  #onError: (error: unknown, key: string) => void;
  #running = new Map<string, Running>();
  constructor(store: Store, opts?: CoordinatorOptions) {
    const { name = "tasks", ttl = 30_000, renewEvery, maxHold, onError } = options(opts, "coordinator options");
    if (onError !== undefined && typeof onError !== "function") throw new TypeError("onError must be a function");
    this.#keeping = keeperOptions(ttl, renewEvery, maxHold);
    this.#lock = new StartLock(store, name);
    this.#onError = onError ?? ((error, key) => console.error(`racefree: task ${JSON.stringify(key)} failed:`, error));
  }
  /** Runs `fn` unless `key` is held anywhere; whether it started. */
  async start(key: string, fn: (held: Holding) => unknown): Promise<boolean> {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = monotonicNow();
    const lease = this.#lock.tryStart(key, { ttl: this.#keeping.ttl });
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
    const run = this.#running.get(str("task key", key));
    if (run === undefined) return false;
    run.stopped = new DOMException("the task was stopped", "AbortError");
    run.run.abort(run.stopped);
    await run.done;
    return true;
  }
  /** Waits until this coordinator's task for `key` (if any) has settled and released its lease. */
  wait(key: string): Promise<void> {
    try {
      return this.#running.get(str("task key", key))?.done ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
  /** Keys whose tasks run here. */
  running(): string[] {
    return [...this.#running.keys()].sort();
  }
  /** Whether `key` is held by anyone sharing the store. */
  isRunning(key: string): boolean {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  async close(): Promise<void> {
    await Promise.all(this.running().map((key) => this.stop(key)));
  }
}

export interface Versioned<T extends Json = Json> {
  readonly value: T;
  /** One more on every write, never repeated for a key: a new record starts above every version its space has deleted (1 in a space that deleted none). */
  readonly version: number;
}

/** Versioned JSON records with compare-and-swap writes. */
export class Records {
  #native: Native.Records;
  constructor(store: Store, name: string) {
    this.#native = new native.Records(Store.native(store), str("record space name", name));
  }
  get(key: string): Versioned | null {
    const found = this.#native.get(str("record key", key));
    return found === undefined ? null : (JSON.parse(found) as Versioned);
  }
  /** Create-only without `expectedVersion`; returns the new version. */
  put(key: string, value: Json, opts?: { expectedVersion?: number; fencingToken?: number }): number {
    const { expectedVersion, fencingToken } = options(opts, "put options");
    return this.#native.put(str("record key", key), jsonText(value), expectedVersion, fencingToken);
  }
  /** One compare-and-swap write of `change(current)`, retried on conflict. */
  update<T extends Json>(
    key: string,
    change: (current: Json | null) => T,
    opts?: { fencingToken?: number; maxAttempts?: number },
  ): Versioned<T> {
    if (typeof change !== "function") throw new TypeError("change must be a function");
    const { fencingToken, maxAttempts } = options(opts, "update options");
    // The core re-reads and retries; each attempt passes JSON text through `change`.
    const adapter = (current: string | null) => jsonText(change(current === null ? null : (JSON.parse(current) as Json)));
    return JSON.parse(this.#native.update(str("record key", key), adapter, fencingToken, maxAttempts)) as Versioned<T>;
  }
  delete(key: string, opts?: { expectedVersion?: number }): boolean {
    return this.#native.delete(str("record key", key), options(opts, "delete options").expectedVersion);
  }
  stats(): { writes: number; conflicts: number; retries: number; staleTokens: number } {
    const [writes, conflicts, retries, staleTokens] = this.#native.statsRaw() as unknown as number[];
    return { writes, conflicts, retries, staleTokens };
  }
}

/** A single-flight TTL cache. */
export class Cache {
  #native: Native.Cache;
  constructor(opts?: { maxEntries?: number; clock?: ManualClock }) {
    const { maxEntries, clock } = options(opts, "cache options");
    this.#native = new native.Cache(maxEntries, ManualClock.native(clock));
  }
  getOrLoad<T>(key: string, opts: { ttl: number }, loader: () => T | Promise<T>): Promise<T> {
    if (typeof loader !== "function") return Promise.reject(new TypeError("loader must be a function"));
    try {
      return this.#native.getOrLoad(str("cache key", key), ms("ttl", options(opts, "getOrLoad options").ttl), loader) as Promise<T>;
    } catch (error) {
      return Promise.reject(error);
    }
  }
  /** `fn` with its results cached for `ttl` ms per `key(...args)` (default: JSON of the arguments). */
  wrap<A extends unknown[], T>(
    fn: (...args: A) => T | Promise<T>,
    opts: { ttl: number; key?: (...args: A) => string },
  ): (...args: A) => Promise<T> {
    const { ttl, key = (...args: A) => `${fn.name}:${JSON.stringify(args)}` } = options(opts, "wrap options");
    return (...args: A) => this.getOrLoad(key(...args), { ttl: ttl! }, () => fn(...args));
  }
  invalidate(key: string): boolean {
    return this.#native.invalidate(str("cache key", key));
  }
  sweep(): number {
    return this.#native.sweep();
  }
  get size(): number {
    return this.#native.size;
  }
  stats(): { hits: number; loads: number; coalesced: number; loadErrors: number; expired: number } {
    const [hits, loads, coalesced, loadErrors, expired] = this.#native.statsRaw() as unknown as number[];
    return { hits, loads, coalesced, loadErrors, expired };
  }
}
