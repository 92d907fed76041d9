// The idiomatic JavaScript API over the wasm module (wired up by `install`): options objects,
// promises, AbortSignal, null for "none", error classes. Types convert here; every decision is made in the Rust core.

import { InvalidArgumentError, InvalidKeyError, NotOwnerError, fromNative } from "./errors.js";
import { bindFastCalls, claimOf, grantOf, grantReply, isFirstMark, valueOf } from "./fast_call.js";

export * from "./errors.js";

export const Mark = Object.freeze({ First: "first", Duplicate: "duplicate" });

function options(value, what) {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object") {
    throw new TypeError(`${what} must be an options object, got ${value === null ? "null" : typeof value}`);
  }
  return value;
}

const typeName = (value) => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value);

/** A key, id or name: a string of well-formed UTF-16 (a lone surrogate has no UTF-8 form). */
function str(what, value) {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string, got ${typeName(value)}`);
  if (!value.isWellFormed()) throw new InvalidKeyError(`invalid key: ${what} contains a lone surrogate (not valid UTF-8)`);
  return value;
}

/** Milliseconds: a number (range checks happen in the core, the same in every language). */
function ms(what, value) {
  if (typeof value !== "number") throw new TypeError(`${what} must be a number of milliseconds, got ${typeName(value)}`);
  return value;
}

const MAX_DEPTH = 64;

/** JSON text for a record value, refusing what JSON.stringify would silently drop or change. */
function jsonText(value) {
  const check = (v, depth) => {
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
      for (const key of Object.keys(v)) check(v[key], depth + 1);
      return;
    }
    throw new TypeError(
      `a record value must be JSON-compatible (plain object, array, string, finite number, boolean or null), got ${v?.constructor?.name ?? typeName(v)}`,
    );
  };
  check(value, 0);
  return JSON.stringify(value);
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });

/** The wasm module every class calls into; set once by the entry point (node.js or browser.js). */
let native;

/** The longest key, id or name accepted, in bytes of UTF-8 (set by `install`). */
export let MAX_KEY_BYTES;

/** @internal Connects this API to an instantiated wasm module; called once by each entry point. */
export function install(module) {
  native = module;
  bindFastCalls(module);
  native.installErrorFactory(fromNative);
  MAX_KEY_BYTES = native.maxKeyBytes();
}

export const newExecutionId = () => native.newExecutionId();
export const errorCodes = () => native.errorCodes();

export class ManualClock {
  #native;
  constructor(startMs = 0) {
    this.#native = new native.ManualClock(ms("startMs", startMs));
  }
  advance(by) {
    this.#native.advance(ms("ms", by));
  }
  nowMs() {
    return this.#native.nowMs();
  }
  /** @internal a fresh native handle sharing this clock's time */
  static native(clock) {
    return clock === undefined ? undefined : clock.#native.fork();
  }
}

export class Store {
  #native;
  constructor(nativeStore) {
    this.#native = nativeStore;
  }
  static native(store) {
    if (!(store instanceof Store)) throw new TypeError("store must be a racefree Store (from open())");
    return store.#native;
  }
  get namespace() {
    return this.#native.namespace;
  }
  sweep() {
    return this.#native.sweep();
  }
  stats() {
    return this.#native.stats();
  }
}

export function open(url = "memory://", opts) {
  const { clock } = options(opts, "open options");
  if (clock !== undefined && !(clock instanceof ManualClock)) throw new TypeError("clock must be a racefree ManualClock");
  return new Store(native.openStore(str("url", url), ManualClock.native(clock)));
}

export class Counter {
  #native;
  constructor(store, key) {
    this.#native = new native.Counter(Store.native(store), str("counter key", key));
  }
  get key() {
    return this.#native.key;
  }
  next() {
    return valueOf(this.#native.next());
  }
  claim(executionId) {
    return claimOf(this.#native.claim(str("execution id", executionId)));
  }
  indexOf(executionId) {
    return this.#native.indexOf(str("execution id", executionId)) ?? null;
  }
  peek() {
    return this.#native.peek();
  }
  set(next) {
    this.#native.set(next);
  }
  reset() {
    this.#native.reset();
  }
  stats() {
    const [newClaims, repeatedClaims] = this.#native.statsRaw();
    return { newClaims, repeatedClaims };
  }
}

export class EventGuard {
  #native;
  constructor(store, name, events, opts) {
    const { retention } = options(opts, "guard options");
    if (!Array.isArray(events)) throw new TypeError(`events must be an array of event names, got ${typeName(events)}`);
    const names = events.map((event) => str("event name", event));
    const keep = retention === undefined ? undefined : ms("retention", retention);
    this.#native = new native.EventGuard(Store.native(store), str("guard name", name), names, keep);
  }
  get events() {
    return this.#native.events;
  }
  mark(stream, event) {
    return isFirstMark(this.#native.mark(str("stream id", stream), str("event name", event))) ? Mark.First : Mark.Duplicate;
  }
  isMarked(stream, event) {
    return this.#native.isMarked(str("stream id", stream), str("event name", event));
  }
  lastMarked(stream) {
    return this.#native.lastMarked(str("stream id", stream)) ?? null;
  }
  forget(stream) {
    return this.#native.forget(str("stream id", stream));
  }
  stats() {
    const [delivered, duplicatesSuppressed, outOfOrder] = this.#native.statsRaw();
    return { delivered, duplicatesSuppressed, outOfOrder };
  }
}

const monotonicNow = () => performance.now();

let lastKeeperOptions = { ttl: NaN };

/** Keep options the core accepts (`ttl`, `renewEvery` default ttl / 3, `maxHold`), checked now
 * (or found equal to the last ones checked), with when a fresh lease first needs its keeper. */
function keeperOptions(ttl, renewEvery, maxHold) {
  const last = lastKeeperOptions;
  if (ttl === last.ttl && renewEvery === last.renewEvery && maxHold === last.maxHold) return last;
  const optional = (what, value) => (value === undefined ? undefined : ms(what, value));
  const checked = { ttl: ms("ttl", ttl), renewEvery: optional("renewEvery", renewEvery), maxHold: optional("maxHold", maxHold) };
  checked.firstWakeAfter = native.firstWakeAfterMs(checked.ttl, checked.renewEvery, checked.maxHold);
  return (lastKeeperOptions = checked);
}

let lastWait = { ttl: NaN };

/** Throws what the core says of a wait's `ttl` and `timeout` (remembering the last good pair). */
function checkWait(ttl, timeout) {
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
const keptLeases = {
  leases: new Set(), // { nativeLock, lease, requestedAt, options, run, keeper, wake }
  timer: undefined,
  timerAt: Infinity,
  /** Keeps `lease` alive, calling `run.onLost(error)` once if it is lost; returns `stop`. */
  keep(nativeLock, lease, requestedAt, options, run) {
    const kept = { nativeLock, lease, requestedAt, options, run, keeper: null, wake: requestedAt + options.firstWakeAfter };
    this.leases.add(kept);
    if (this.leases.size === 1) this.timer?.ref?.();
    this.schedule(kept.wake);
    return () => this.forget(kept);
  },
  forget(kept) {
    if (!this.leases.delete(kept)) return;
    kept.keeper?.free();
    if (this.leases.size === 0) this.timer?.unref?.();
  },
  schedule(wake) {
    if (wake >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = wake;
    this.timer = setTimeout(() => this.tick(), Math.max(0, wake - monotonicNow()));
  },
  tick() {
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
  step(kept, now) {
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
      kept.run.onLost(error);
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
class KeptRun {
  #controller = null;
  #aborted = null;
  #lost = null;
  #stop;
  constructor(nativeLock, options, lease, requestedAt, fn) {
    this.lease = lease;
    this.#stop = keptLeases.keep(nativeLock, lease, requestedAt, options, this);
    this.done = this.#run(fn);
  }
  get signal() {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted !== null) this.#controller.abort(this.#aborted.reason);
    }
    return this.#controller.signal;
  }
  abort(reason) {
    if (this.#aborted !== null) return;
    this.#aborted = { reason };
    this.#controller?.abort(reason);
  }
  /** @internal called by the keeper */
  onLost(error) {
    this.#lost = error;
    this.abort(error);
  }
  async #run(fn) {
    let value;
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
      this.#lost.result = value;
      throw this.#lost;
    }
    return value;
  }
}

export class Lease {
  #lock;
  #key;
  #token;
  #deadlineMs;
  /** @internal made by `StartLock.tryStart` */
  constructor(lock, key, token, deadlineMs) {
    this.#lock = lock;
    this.#key = key;
    this.#token = token;
    this.#deadlineMs = deadlineMs;
  }
  get key() {
    return this.#key;
  }
  get token() {
    return this.#token;
  }
  get deadlineMs() {
    return this.#deadlineMs;
  }
  get timeLeftMs() {
    return this.#lock.timeLeftMs(this.#deadlineMs);
  }
  renew(opts) {
    const ttl = ms("ttl", options(opts, "renew options").ttl);
    this.#deadlineMs = valueOf(this.#lock.renewToken(this.#key, this.#token, ttl));
  }
  release() {
    valueOf(this.#lock.releaseToken(this.#key, this.#token));
  }
}

export class StartLock {
  #native;
  constructor(store, name) {
    this.#native = new native.StartLock(Store.native(store), str("lock name", name));
  }
  /** @internal the wasm lock behind a StartLock */
  static native(lock) {
    return lock.#native;
  }
  get name() {
    return this.#native.name;
  }
  tryStart(key, opts) {
    const native = this.#native;
    key = str("lease key", key);
    const grant = grantOf(native.tryGrant(key, ms("ttl", options(opts, "tryStart options").ttl), grantReply));
    return grant === null ? null : new Lease(native, key, grant.token, grant.deadlineMs);
  }
  /** Waits for the lease like the Web Locks API: `timeout` in ms (default: forever), `signal` aborts. */
  async acquire(key, opts) {
    const { ttl, timeout, signal } = options(opts, "acquire options");
    const first = this.#tryFirst(key, ttl, timeout, signal);
    return (first.lease !== null ? first : await this.#wait(first)).lease;
  }
  /** The wait's first attempt, made at once: `{ lease, requestedAt }`, with `lease` null when the
   * key is held (then `#wait(first)`). */
  #tryFirst(key, ttl, timeout, signal) {
    key = str("lease key", key);
    const timeoutMs = timeout === undefined ? undefined : ms("timeout", timeout);
    checkWait(ms("ttl", ttl), timeoutMs); // refused before anything is tried
    signal?.throwIfAborted();
    const requestedAt = monotonicNow();
    const lease = this.tryStart(key, { ttl });
    return { lease, requestedAt, key, ttl, timeoutMs, signal };
  }
  /** The key was held at the first attempt: waits by the core's schedule. */
  async #wait({ key, ttl, timeoutMs, signal, requestedAt: startedAt }) {
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
  async runExclusive(key, opts, fn) {
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const { ttl, timeout, signal, renewEvery, maxHold } = options(opts, "runExclusive options");
    const keeping = keeperOptions(ttl, renewEvery, maxHold); // refused before anything is acquired
    const first = this.#tryFirst(key, ttl, timeout, signal);
    const { lease, requestedAt } = first.lease !== null ? first : await this.#wait(first);
    const run = new KeptRun(this.#native, keeping, lease, requestedAt, fn);
    if (signal === undefined) return run.done;
    const forward = () => run.abort(signal.reason);
    signal.addEventListener("abort", forward, { once: true });
    try {
      return await run.done;
    } finally {
      signal.removeEventListener("abort", forward);
    }
  }
  isHeld(key) {
    return this.#native.isHeld(str("lease key", key));
  }
  holder(key) {
    const found = this.#native.holderRaw(str("lease key", key));
    return found === undefined ? null : { token: found[0], deadlineMs: found[1] };
  }
  stats() {
    const [granted, contended, renewed, released, rejectedNotOwner] = this.#native.statsRaw();
    return { granted, contended, renewed, released, rejectedNotOwner };
  }
}

/**
 * Runs at most one task per key: `await coordinator.start(key, fn)` is `true` and runs
 * `fn({ lease, signal })` under a lease kept alive while it runs, or `false` at once when the key
 * is held. `signal` aborts when the lease is lost or the task is stopped; failures go to `onError`.
 */
export class TaskCoordinator {
  #lock;
  #keeping;
  #onError;
  #running = new Map();
  constructor(store, opts) {
    const { name = "tasks", ttl = 30_000, renewEvery, maxHold, onError } = options(opts, "coordinator options");
    if (onError !== undefined && typeof onError !== "function") throw new TypeError("onError must be a function");
    this.#keeping = keeperOptions(ttl, renewEvery, maxHold);
    this.#lock = new StartLock(store, name);
    this.#onError = onError ?? ((error, key) => console.error(`racefree: task ${JSON.stringify(key)} failed:`, error));
  }
  async start(key, fn) {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = monotonicNow();
    const lease = this.#lock.tryStart(key, { ttl: this.#keeping.ttl });
    if (lease === null) return false;
    const run = new KeptRun(StartLock.native(this.#lock), this.#keeping, lease, requestedAt, fn);
    const entry = { run, stopped: null, done: null };
    entry.done = this.#settle(key, entry);
    this.#running.set(key, entry);
    return true;
  }
  async #settle(key, entry) {
    try {
      await entry.run.done;
    } catch (error) {
      if (entry.stopped === null || error !== entry.stopped) this.#onError(error, key);
    } finally {
      if (this.#running.get(key) === entry) this.#running.delete(key);
    }
  }
  /** Aborts this coordinator's task for `key` and waits until it has settled and released; whether one ran. */
  async stop(key) {
    const run = this.#running.get(str("task key", key));
    if (run === undefined) return false;
    run.stopped = new DOMException("the task was stopped", "AbortError");
    run.run.abort(run.stopped);
    await run.done;
    return true;
  }
  /** Waits until this coordinator's task for `key` (if any) has settled and released its lease. */
  wait(key) {
    try {
      return this.#running.get(str("task key", key))?.done ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
  /** Keys whose tasks run here. */
  running() {
    return [...this.#running.keys()].sort();
  }
  /** Whether `key` is held by anyone sharing the store. */
  isRunning(key) {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  async close() {
    await Promise.all(this.running().map((key) => this.stop(key)));
  }
}

export class Records {
  #native;
  constructor(store, name) {
    this.#native = new native.Records(Store.native(store), str("record space name", name));
  }
  get(key) {
    const found = this.#native.get(str("record key", key));
    return found === undefined ? null : JSON.parse(found);
  }
  put(key, value, opts) {
    const { expectedVersion, fencingToken } = options(opts, "put options");
    return this.#native.put(str("record key", key), jsonText(value), expectedVersion, fencingToken);
  }
  update(key, change, opts) {
    if (typeof change !== "function") throw new TypeError("change must be a function");
    const { fencingToken, maxAttempts } = options(opts, "update options");
    // The core re-reads and retries; each attempt passes JSON text through `change`.
    const adapter = (current) => jsonText(change(current === null ? null : JSON.parse(current)));
    return JSON.parse(this.#native.update(str("record key", key), adapter, fencingToken, maxAttempts));
  }
  delete(key, opts) {
    return this.#native.delete(str("record key", key), options(opts, "delete options").expectedVersion);
  }
  stats() {
    const [writes, conflicts, retries, staleTokens] = this.#native.statsRaw();
    return { writes, conflicts, retries, staleTokens };
  }
}

export class Cache {
  #native;
  constructor(opts) {
    const { maxEntries, clock } = options(opts, "cache options");
    this.#native = new native.Cache(maxEntries, ManualClock.native(clock));
  }
  getOrLoad(key, opts, loader) {
    if (typeof loader !== "function") return Promise.reject(new TypeError("loader must be a function"));
    try {
      return this.#native.getOrLoad(str("cache key", key), ms("ttl", options(opts, "getOrLoad options").ttl), loader);
    } catch (error) {
      return Promise.reject(error);
    }
  }
  /** `fn` with its results cached for `ttl` ms per `key(...args)` (default: JSON of the arguments). */
  wrap(fn, opts) {
    const { ttl, key = (...args) => `${fn.name}:${JSON.stringify(args)}` } = options(opts, "wrap options");
    return (...args) => this.getOrLoad(key(...args), { ttl }, () => fn(...args));
  }
  invalidate(key) {
    return this.#native.invalidate(str("cache key", key));
  }
  sweep() {
    return this.#native.sweep();
  }
  get size() {
    return this.#native.size;
  }
  stats() {
    const [hits, loads, coalesced, loadErrors, expired] = this.#native.statsRaw();
    return { hits, loads, coalesced, loadErrors, expired };
  }
}
