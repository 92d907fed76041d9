// Counter on a shared store: each call a Promise.

import type * as Native from "../node/racefree_wasm.js";
import { rejecting, str } from "./checks.js";
import type { Claim } from "./counter.js";
import { HostedStore, hostedModule } from "./stores.js";
import type { SharedStore } from "./stores.js";

/** A per-key sequential index counter on a shared store: 0, 1, 2, … unique and gap-free. */
export class Counter {
  #native: Native.AsyncCounter;
  constructor(store: SharedStore, key: string) {
    this.#native = new (hostedModule().AsyncCounter)(HostedStore.native(store), str("counter key", key));
  }
  /** The next index. @throws {BackendUnavailableError} @throws {TimeoutError} when the outcome is unknown */
  next(): Promise<number> {
    return this.#native.next() as Promise<number>;
  }
  /** The index of `executionId`, assigned on its first claim and stable afterwards. */
  claim(executionId: string): Promise<Claim> {
    return rejecting(async () => {
      const [index, isNew] = (await this.#native.claim(str("execution id", executionId))) as [number, boolean];
      return { index, isNew };
    });
  }
  indexOf(executionId: string): Promise<number | null> {
    return rejecting(() => this.#native.indexOf(str("execution id", executionId)) as Promise<number | null>);
  }
  peek(): Promise<number> {
    return this.#native.peek() as Promise<number>;
  }
  set(next: number): Promise<void> {
    return rejecting(() => this.#native.set(next) as Promise<void>);
  }
  reset(): Promise<void> {
    return this.#native.reset() as Promise<void>;
  }
  stats(): { newClaims: number; repeatedClaims: number } {
    const [newClaims, repeatedClaims] = Array.from(this.#native.stats());
    return { newClaims, repeatedClaims };
  }
}
