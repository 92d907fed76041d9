// The fast-call protocol, JavaScript half (its Rust half, and the figures behind it, are in
// `src/fast_call.rs`): the hot native calls return one plain number instead of throwing or
// allocating. NaN: the call failed, and `takeError()` has the error. Claims: `index`, or
// `-(index + 1)` for a repeated claim. Marks: 1 first, 0 duplicate. Grants: the token (0 when the
// key is held), with the deadline written into the `Float64Array` passed in.

/** @type {{ takeError(): Error }} */
let native;

/** Connects these decoders to the wasm module (called by `install`). */
export function bindFastCalls(module) {
  native = module;
}

/** The value of a fast call, or its error thrown. */
export function valueOf(number) {
  if (number !== number) throw native.takeError();
  return number;
}

/** A claim from a fast call's number. */
export function claimOf(number) {
  const packed = valueOf(number);
  return packed >= 0 ? { index: packed, isNew: true } : { index: -packed - 1, isNew: false };
}

/** Whether a fast call's mark was the first. */
export const isFirstMark = (number) => valueOf(number) === 1;

/** Where `tryGrant` writes a grant's deadline; read at once after each call (JavaScript runs one
 * call at a time, so one reply array serves every lock). */
export const grantReply = new Float64Array(1);

/** A grant from `tryGrant`'s number and `grantReply`: `{ token, deadlineMs }`, or null. */
export function grantOf(number) {
  const token = valueOf(number);
  return token === 0 ? null : { token, deadlineMs: grantReply[0] };
}
