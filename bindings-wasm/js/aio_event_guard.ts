// EventGuard on a shared store: each call a Promise.

import type * as Native from "../node-hosted/racefree_wasm.js";
import { ms, options, rejecting, str } from "./checks.js";
import { hostedModule } from "./native.js";
import { HostedStore } from "./stores.js";
import type { SharedStore } from "./stores.js";

/** Ordered lifecycle events, each delivered once per stream, on a shared store. */
export class EventGuard {
  #native: Native.AsyncEventGuard;
  constructor(store: SharedStore, name: string, events: readonly string[], opts?: { retention?: number }) {
    const { retention } = options(opts, "guard options");
    if (!Array.isArray(events)) throw new TypeError("events must be an array of event names");
    const names = events.map((event) => str("event name", event));
    const keep = retention === undefined ? undefined : ms("retention", retention);
    this.#native = new (hostedModule().AsyncEventGuard)(HostedStore.native(store), str("guard name", name), names, keep);
  }
  /** `"first"`: deliver the event; `"duplicate"`: it was delivered. @throws {OutOfOrderError} */
  mark(stream: string, event: string): Promise<"first" | "duplicate"> {
    return rejecting(async () =>
      ((await this.#native.mark(str("stream id", stream), str("event name", event))) ? "first" : "duplicate"),
    );
  }
  /** Whether `event` is marked on `stream`. @throws {InvalidKeyError} @throws {InvalidArgumentError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  isMarked(stream: string, event: string): Promise<boolean> {
    return rejecting(() => this.#native.isMarked(str("stream id", stream), str("event name", event)) as Promise<boolean>);
  }
  /** The latest event marked on `stream`, or `null`. @throws {InvalidKeyError} @throws {BackendUnavailableError} @throws {TimeoutError} */
  lastMarked(stream: string): Promise<string | null> {
    return rejecting(() => this.#native.lastMarked(str("stream id", stream)) as Promise<string | null>);
  }
  forget(stream: string): Promise<boolean> {
    return rejecting(() => this.#native.forget(str("stream id", stream)) as Promise<boolean>);
  }
  /** This handle's marks so far, by outcome. */
  stats(): { delivered: number; duplicatesSuppressed: number; outOfOrder: number } {
    const [delivered, duplicatesSuppressed, outOfOrder] = Array.from(this.#native.stats());
    return { delivered, duplicatesSuppressed, outOfOrder };
  }
}
