// Counter: per-key sequential indexes.

import type * as Native from "../node/racefree_wasm.js";
import { str } from "./checks.js";
import { claimOf, valueOf } from "./fast_call.js";
import { native } from "./native.js";
import { Store } from "./store.js";

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
  /** The counter's key. */
  get key(): string {
    return this.#native.key;
  }
  /** The next index: 0 first, then each one more, never repeated. @throws {InvalidArgumentError} once the counter is at its largest value. */
  next(): number {
    return valueOf(this.#native.next());
  }
  /** The index of `executionId`, assigned on its first claim and stable afterwards. */
  claim(executionId: string): Claim {
    return claimOf(this.#native.claim(str("execution id", executionId)));
  }
  /** The index `executionId` claimed, or `null` when it claimed none. @throws {InvalidKeyError} for a bad id. */
  indexOf(executionId: string): number | null {
    return this.#native.indexOf(str("execution id", executionId)) ?? null;
  }
  /** The index `next` would return, without taking it. */
  peek(): number {
    return this.#native.peek();
  }
  /** Makes `next` the next index (claims are kept). @throws {InvalidArgumentError} for a negative, fractional or too large number. */
  set(next: number): void {
    this.#native.set(next);
  }
  /** Forgets the counter and its claims: the next index is 0 again. */
  reset(): void {
    this.#native.reset();
  }
  /** This handle's claims so far: first claims, and repeated ones. */
  stats(): { newClaims: number; repeatedClaims: number } {
    const [newClaims, repeatedClaims] = this.#native.statsRaw() as unknown as [number, number];
    return { newClaims, repeatedClaims };
  }
}
