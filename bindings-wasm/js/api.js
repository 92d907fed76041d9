// The idiomatic JavaScript API over the wasm module: options objects, promises, AbortSignal,
// null for "none", error classes. Types convert here; every decision is made in the Rust core.

import { fromNative, TimeoutError } from "./errors.js";

export * from "./errors.js";

export const Mark = Object.freeze({ First: "first", Duplicate: "duplicate" });

function options(value, what) {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object") {
    throw new TypeError(`${what} must be an options object, got ${value === null ? "null" : typeof value}`);
  }
  return value;
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

export function createApi(native) {
  native.installErrorFactory(fromNative);

  class ManualClock {
    #native;
    constructor(startMs = 0) {
      this.#native = new native.ManualClock(startMs);
    }
    advance(ms) {
      this.#native.advance(ms);
    }
    nowMs() {
      return this.#native.nowMs();
    }
    /** @internal a fresh native handle sharing this clock's time */
    static native(clock) {
      return clock === undefined ? undefined : clock.#native.fork();
    }
  }

  class Store {
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

  function open(url = "memory://", opts) {
    const { clock } = options(opts, "open options");
    return new Store(native.openStore(url, ManualClock.native(clock)));
  }

  class Counter {
    #native;
    constructor(store, key) {
      this.#native = new native.Counter(Store.native(store), key);
    }
    get key() {
      return this.#native.key;
    }
    next() {
      return this.#native.next();
    }
    claim(executionId) {
      const [index, isNew] = this.#native.claimRaw(executionId);
      return { index, new: isNew };
    }
    indexOf(executionId) {
      return this.#native.indexOf(executionId) ?? null;
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

  class EventGuard {
    #native;
    constructor(store, name, events, opts) {
      const { retention } = options(opts, "guard options");
      this.#native = new native.EventGuard(Store.native(store), name, events, retention);
    }
    get events() {
      return this.#native.events;
    }
    mark(stream, event) {
      return this.#native.mark(stream, event);
    }
    isMarked(stream, event) {
      return this.#native.isMarked(stream, event);
    }
    lastMarked(stream) {
      return this.#native.lastMarked(stream) ?? null;
    }
    forget(stream) {
      return this.#native.forget(stream);
    }
    stats() {
      const [delivered, duplicatesSuppressed, outOfOrder] = this.#native.statsRaw();
      return { delivered, duplicatesSuppressed, outOfOrder };
    }
  }

  class Lease {
    #native;
    constructor(nativeLease) {
      this.#native = nativeLease;
    }
    get key() {
      return this.#native.key;
    }
    get token() {
      return this.#native.token;
    }
    get deadlineMs() {
      return this.#native.deadlineMs;
    }
    get timeLeftMs() {
      return this.#native.timeLeftMs;
    }
    renew(opts) {
      this.#native.renew(options(opts, "renew options").ttl);
    }
    release() {
      this.#native.release();
    }
  }

  class StartLock {
    #native;
    constructor(store, name) {
      this.#native = new native.StartLock(Store.native(store), name);
    }
    get name() {
      return this.#native.name;
    }
    tryStart(key, opts) {
      const lease = this.#native.tryStart(key, options(opts, "tryStart options").ttl);
      return lease === undefined ? null : new Lease(lease);
    }
    /** Waits for the lease like the Web Locks API: `timeout` in ms (default: forever), `signal` aborts. */
    async acquire(key, opts) {
      const { ttl, timeout, signal } = options(opts, "acquire options");
      if (timeout !== undefined && !(typeof timeout === "number" && timeout >= 0)) {
        throw fromNative("invalid_argument", `timeout must be a non-negative number of milliseconds, got ${timeout}`, {});
      }
      const started = Date.now();
      const delays = native.Backoff.forAcquire();
      try {
        for (;;) {
          signal?.throwIfAborted();
          const lease = this.tryStart(key, { ttl });
          if (lease !== null) return lease;
          const waited = Date.now() - started;
          if (timeout !== undefined && waited >= timeout) {
            throw new TimeoutError(`timed out after ${waited} ms waiting for ${JSON.stringify(key)}`, { waitedMs: waited });
          }
          const delay = delays.nextMs();
          await sleep(timeout === undefined ? delay : Math.min(delay, timeout - waited), signal);
        }
      } finally {
        delays.free();
      }
    }
    /** Runs `fn(lease)` under the lease and releases it when `fn` settles. */
    async runExclusive(key, opts, fn) {
      const lease = await this.acquire(key, opts);
      try {
        return await fn(lease);
      } finally {
        lease.release();
      }
    }
    isHeld(key) {
      return this.#native.isHeld(key);
    }
    holder(key) {
      const found = this.#native.holderRaw(key);
      return found === undefined ? null : { token: found[0], deadlineMs: found[1] };
    }
    stats() {
      const [granted, contended, renewed, released, rejectedNotOwner] = this.#native.statsRaw();
      return { granted, contended, renewed, released, rejectedNotOwner };
    }
  }

  class Records {
    #native;
    constructor(store, name) {
      this.#native = new native.Records(Store.native(store), name);
    }
    get(key) {
      return this.#native.get(key) ?? null;
    }
    put(key, value, opts) {
      const { expectedVersion, fencingToken } = options(opts, "put options");
      return this.#native.put(key, value, expectedVersion, fencingToken);
    }
    update(key, change, opts) {
      if (typeof change !== "function") throw new TypeError("change must be a function");
      const { fencingToken, maxAttempts } = options(opts, "update options");
      return this.#native.update(key, change, fencingToken, maxAttempts);
    }
    delete(key, opts) {
      return this.#native.delete(key, options(opts, "delete options").expectedVersion);
    }
    stats() {
      const [writes, conflicts, retries, staleTokens] = this.#native.statsRaw();
      return { writes, conflicts, retries, staleTokens };
    }
  }

  class Cache {
    #native;
    constructor(opts) {
      const { maxEntries, clock } = options(opts, "cache options");
      this.#native = new native.Cache(maxEntries, ManualClock.native(clock));
    }
    getOrLoad(key, opts, loader) {
      if (typeof loader !== "function") return Promise.reject(new TypeError("loader must be a function"));
      try {
        return this.#native.getOrLoad(key, options(opts, "getOrLoad options").ttl, loader);
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
      return this.#native.invalidate(key);
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

  return {
    open,
    newExecutionId: native.newExecutionId,
    errorCodes: native.errorCodes,
    MAX_KEY_BYTES: native.maxKeyBytes(),
    ManualClock,
    Store,
    Counter,
    EventGuard,
    StartLock,
    Lease,
    Records,
    Cache,
  };
}
