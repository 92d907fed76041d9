// The in-memory store and its clock.

import type * as Native from "../node/racefree_wasm.js";
import { ms, options, str } from "./checks.js";
import { native } from "./native.js";

/** A clock that moves only when told to (tests). */
export class ManualClock {
  #native: Native.ManualClock;
  constructor(startMs = 0) {
    this.#native = new native.ManualClock(ms("startMs", startMs));
  }
  /** Moves the clock forward `by` milliseconds. @throws {InvalidArgumentError} for a negative amount */
  advance(by: number): void {
    this.#native.advance(ms("ms", by));
  }
  /** The clock's time, in milliseconds. */
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
  /** The namespace that prefixes every key. */
  get namespace(): string {
    return this.#native.namespace;
  }
  /** Removes every expired lease and mark; returns how many. */
  sweep(): number {
    return this.#native.sweep();
  }
  /** What the store holds (`entries`) and what this handle has swept. */
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
