// The fast-call protocol, TypeScript half (its Rust half, and the figures behind it, are in
// `src/fast_call.rs`): the hot native calls return one plain number instead of throwing or
// allocating. NaN: the call failed, and `takeError()` has the error. Claims: `index`, or
// `-(index + 1)` for a repeated claim. Marks: 1 first, 0 duplicate. Grants: the token (0 when the
// key is held), with the deadline written into the `Float64Array` passed in.

import type * as Native from "../node/racefree_wasm.js";

let native: Pick<typeof Native, "takeError">;

/** @internal Connects these decoders to the wasm module (called by `install`). */
export function bindFastCalls(module: Pick<typeof Native, "takeError">): void {
  native = module;
}

/** @internal The value of a fast call, or its error thrown. */
export function valueOf(number: number): number {
  if (number !== number) throw native.takeError();
  return number;
}

/** @internal A claim from a fast call's number. */
export function claimOf(number: number): { index: number; isNew: boolean } {
  const packed = valueOf(number);
  return packed >= 0 ? { index: packed, isNew: true } : { index: -packed - 1, isNew: false };
}

/** @internal Whether a fast call's mark was the first. */
export const isFirstMark = (number: number): boolean => valueOf(number) === 1;

/** @internal Where `tryGrant` writes a grant's deadline; read at once after each call
 * (JavaScript runs one call at a time, so one reply array serves every lock). */
export const grantReply = new Float64Array(1);

/** @internal A grant from `tryGrant`'s number and `grantReply`: `{ token, deadlineMs }`, or null. */
export function grantOf(number: number): { token: number; deadlineMs: number } | null {
  const token = valueOf(number);
  return token === 0 ? null : { token, deadlineMs: grantReply[0] };
}
