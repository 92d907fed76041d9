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
