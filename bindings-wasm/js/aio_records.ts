// Records on a shared store: each call a Promise; `update` takes a function or an async one.

import type * as Native from "../node-hosted/racefree_wasm.js";
import { jsonText, options, rejecting, str } from "./checks.js";
import type { Json, Versioned } from "./records.js";
import { hostedModule } from "./native.js";
import { HostedStore } from "./stores.js";
import type { SharedStore } from "./stores.js";

/** Versioned JSON records with compare-and-swap writes, on a shared store. */
export class Records {
  #native: Native.AsyncRecords;
  constructor(store: SharedStore, name: string) {
    this.#native = new (hostedModule().AsyncRecords)(HostedStore.native(store), str("record space name", name));
  }
  /** The record and its version, or `null`. @throws {InvalidKeyError} @throws {CorruptDataError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  get(key: string): Promise<Versioned | null> {
    return rejecting(async () => {
      const found = (await this.#native.get(str("record key", key))) as [string, number] | null;
      return found === null ? null : { value: JSON.parse(found[0]) as Json, version: found[1] };
    });
  }
  /** Create-only without `expectedVersion`; resolves to the new version. @throws {ConflictError} @throws {StaleTokenError} */
  put(key: string, value: Json, opts?: { expectedVersion?: number; fencingToken?: number }): Promise<number> {
    return rejecting(() => {
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
    return rejecting(async () => {
      if (typeof change !== "function") throw new TypeError("change must be a function");
      const { fencingToken, maxAttempts = 5 } = options(opts, "update options");
      if (typeof maxAttempts !== "number") throw new TypeError("maxAttempts must be a number");
      const delays = new (hostedModule().UpdateDelays)(maxAttempts); // refused before anything is read
      try {
        for (;;) {
          const current = await this.get(key);
          const value = await change(current === null ? null : current.value);
          try {
            const version = await this.put(key, value, { expectedVersion: current?.version, fencingToken });
            return { value, version };
          } catch (error) {
            const delay = (error as { code?: string }).code === "conflict" ? delays.next() : -1;
            if (delay < 0) throw error;
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
        }
      } finally {
        delays.free();
      }
    });
  }
  /** Deletes the record (only at `expectedVersion`, when given); whether there was one. @throws {ConflictError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  delete(key: string, opts?: { expectedVersion?: number }): Promise<boolean> {
    return rejecting(() => this.#native.delete(str("record key", key), options(opts, "delete options").expectedVersion) as Promise<boolean>);
  }
  /** This handle's writes so far: written, conflicts, retries by `update`, stale fencing tokens. */
  stats(): { writes: number; conflicts: number; retries: number; staleTokens: number } {
    const [writes, conflicts, retries, staleTokens] = Array.from(this.#native.stats());
    return { writes, conflicts, retries, staleTokens };
  }
}
