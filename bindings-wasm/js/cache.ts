// Cache: a single-flight TTL cache, process-local.

import type * as Native from "../node/racefree_wasm.js";
import { ms, options, str } from "./checks.js";
import { native } from "./native.js";
import { ManualClock } from "./store.js";

/** A single-flight TTL cache. */
export class Cache {
  #native: Native.Cache;
  constructor(opts?: { maxEntries?: number; clock?: ManualClock }) {
    const { maxEntries, clock } = options(opts, "cache options");
    this.#native = new native.Cache(maxEntries, ManualClock.native(clock));
  }
  /** The value cached for `key`, or `loader()`'s, cached for `ttl` ms; concurrent callers share one load, and a failed load is not cached. @throws {InvalidKeyError} @throws {InvalidArgumentError} for a bad `ttl` @throws whatever `loader` throws */
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
  /** Drops `key`'s value; whether there was one. @throws {InvalidKeyError} */
  invalidate(key: string): boolean {
    return this.#native.invalidate(str("cache key", key));
  }
  /** Drops every expired value; how many. */
  sweep(): number {
    return this.#native.sweep();
  }
  /** How many values are cached (expired ones included until swept). */
  get size(): number {
    return this.#native.size;
  }
  /** Hits, loads, callers that shared another's load, failed loads, and values dropped as expired. */
  stats(): { hits: number; loads: number; coalesced: number; loadErrors: number; expired: number } {
    const [hits, loads, coalesced, loadErrors, expired] = this.#native.statsRaw() as unknown as number[];
    return { hits, loads, coalesced, loadErrors, expired };
  }
}
