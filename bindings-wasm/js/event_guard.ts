// EventGuard: ordered lifecycle events, each delivered once per stream.

import type * as Native from "../node/racefree_wasm.js";
import { ms, options, str, typeName } from "./checks.js";
import { isFirstMark } from "./fast_call.js";
import { native } from "./native.js";
import { Store } from "./store.js";

export const Mark = Object.freeze({ First: "first", Duplicate: "duplicate" } as const);
export type Mark = (typeof Mark)[keyof typeof Mark];

/** Ordered lifecycle events, each delivered once per stream. */
export class EventGuard {
  #native: Native.EventGuard;
  constructor(store: Store, name: string, events: readonly string[], opts?: { retention?: number }) {
    const { retention } = options(opts, "guard options");
    if (!Array.isArray(events)) throw new TypeError(`events must be an array of event names, got ${typeName(events)}`);
    const names = events.map((event) => str("event name", event));
    const keep = retention === undefined ? undefined : ms("retention", retention);
    this.#native = new native.EventGuard(Store.native(store), str("guard name", name), names, keep);
  }
  /** The events, in the order they must be marked. */
  get events(): string[] {
    return this.#native.events;
  }
  /** Throws OutOfOrderError when the event before `event` is not marked (nothing is recorded). */
  mark(stream: string, event: string): Mark {
    return isFirstMark(this.#native.mark(str("stream id", stream), str("event name", event))) ? Mark.First : Mark.Duplicate;
  }
  /** Whether `event` is marked on `stream`. @throws {InvalidKeyError} @throws {InvalidArgumentError} for an event the guard does not have. */
  isMarked(stream: string, event: string): boolean {
    return this.#native.isMarked(str("stream id", stream), str("event name", event));
  }
  /** The latest event marked on `stream`, or `null`. @throws {InvalidKeyError} */
  lastMarked(stream: string): string | null {
    return this.#native.lastMarked(str("stream id", stream)) ?? null;
  }
  forget(stream: string): boolean {
    return this.#native.forget(str("stream id", stream));
  }
  /** This handle's marks so far, by outcome. */
  stats(): { delivered: number; duplicatesSuppressed: number; outOfOrder: number } {
    const [delivered, duplicatesSuppressed, outOfOrder] = this.#native.statsRaw() as unknown as [number, number, number];
    return { delivered, duplicatesSuppressed, outOfOrder };
  }
}
