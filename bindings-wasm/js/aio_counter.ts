// Counter on a shared store: each call a Promise.

import type * as Native from "../node-hosted/racefree_wasm.js";
import { rejecting, str } from "./checks.js";
import type { Claim } from "./counter.js";
import { hostedModule } from "./native.js";
import { HostedStore } from "./stores.js";
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
  /** The index `executionId` claimed, or `null`. @throws {InvalidKeyError} @throws {BackendUnavailableError} @throws {TimeoutError} when the outcome is unknown */
  indexOf(executionId: string): Promise<number | null> {
    return rejecting(() => this.#native.indexOf(str("execution id", executionId)) as Promise<number | null>);
  }
  /** The index `next` would return, without taking it. @throws {BackendUnavailableError} @throws {TimeoutError} */
  peek(): Promise<number> {
    return this.#native.peek() as Promise<number>;
  }
  /** Makes `next` the next index (claims are kept). @throws {InvalidArgumentError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  set(next: number): Promise<void> {
    return rejecting(() => this.#native.set(next) as Promise<void>);
  }
  /** Forgets the counter and its claims. @throws {BackendUnavailableError} @throws {TimeoutError} */
  reset(): Promise<void> {
    return this.#native.reset() as Promise<void>;
  }
  /** This handle's claims so far: first claims, and repeated ones. */
  stats(): { newClaims: number; repeatedClaims: number } {
    const [newClaims, repeatedClaims] = Array.from(this.#native.stats());
    return { newClaims, repeatedClaims };
  }
}
