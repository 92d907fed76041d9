// Records: versioned JSON records with compare-and-swap writes.

import type * as Native from "../node/racefree_wasm.js";
import { jsonText, options, str } from "./checks.js";
import { valueOf } from "./fast_call.js";
import { native } from "./native.js";
import { Store } from "./store.js";

/** A JSON-compatible value: what a record holds. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Versioned<T extends Json = Json> {
  readonly value: T;
  /** One more on every write, never repeated for a key: a new record starts above every version its space has deleted (1 in a space that deleted none). */
  readonly version: number;
}

/** Where the native `get` writes a record's version; read at once after each call. */
const reply = new Float64Array(1);

/** Versioned JSON records with compare-and-swap writes. */
export class Records {
  #native: Native.Records;
  constructor(store: Store, name: string) {
    this.#native = new native.Records(Store.native(store), str("record space name", name));
  }
  /** The record and its version, or `null`; an object's keys come back sorted, as in every language. @throws {InvalidKeyError} @throws {CorruptDataError} for a stored value that is not JSON */
  get(key: string): Versioned | null {
    const text = this.#native.get(str("record key", key), reply);
    return text === undefined ? null : { value: JSON.parse(text) as Json, version: reply[0] };
  }
  /** Create-only without `expectedVersion`; returns the new version. */
  put(key: string, value: Json, opts?: { expectedVersion?: number; fencingToken?: number }): number {
    const { expectedVersion, fencingToken } = options(opts, "put options");
    return this.#native.put(str("record key", key), jsonText(value), expectedVersion, fencingToken);
  }
  /** One compare-and-swap write of `change(current)`, retried on conflict; returns the value `change` returned and its version. */
  update<T extends Json>(
    key: string,
    change: (current: Json | null) => T,
    opts?: { fencingToken?: number; maxAttempts?: number },
  ): Versioned<T> {
    if (typeof change !== "function") throw new TypeError("change must be a function");
    const { fencingToken, maxAttempts } = options(opts, "update options");
    // The core re-reads and retries; each attempt passes JSON text through `change`, and the
    // value of the attempt that was written is the result (its text is what the store holds).
    let value: T | undefined;
    const adapter = (current: string | null): string => {
      value = change(current === null ? null : (JSON.parse(current) as Json));
      return jsonText(value);
    };
    const version = valueOf(this.#native.update(str("record key", key), adapter, fencingToken, maxAttempts));
    return { value: value as T, version };
  }
  /** Deletes the record (only at `expectedVersion`, when given); whether there was one. @throws {ConflictError} at another version */
  delete(key: string, opts?: { expectedVersion?: number }): boolean {
    return this.#native.delete(str("record key", key), options(opts, "delete options").expectedVersion);
  }
  /** This handle's writes so far: written, refused as conflicts, retried by `update`, refused for a stale fencing token. */
  stats(): { writes: number; conflicts: number; retries: number; staleTokens: number } {
    const [writes, conflicts, retries, staleTokens] = this.#native.statsRaw() as unknown as number[];
    return { writes, conflicts, retries, staleTokens };
  }
}
