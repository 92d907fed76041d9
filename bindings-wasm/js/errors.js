// racefree's errors: real Error subclasses with `name` and a stable `code`, one per core code.

export class RacefreeError extends Error {
  constructor(message, details = {}) {
    super(message);
    this.name = new.target.name;
    Object.assign(this, details);
  }
}
RacefreeError.prototype.code = "racefree_error";

function define(name, code) {
  const cls = { [name]: class extends RacefreeError {} }[name];
  cls.prototype.code = code;
  return cls;
}

export const InvalidKeyError = define("InvalidKeyError", "invalid_key");
export const InvalidArgumentError = define("InvalidArgumentError", "invalid_argument");
export const ConflictError = define("ConflictError", "conflict");
export const NotOwnerError = define("NotOwnerError", "not_owner");
export const OutOfOrderError = define("OutOfOrderError", "out_of_order");
export const StaleTokenError = define("StaleTokenError", "stale_token");
export const CapacityExceededError = define("CapacityExceededError", "capacity_exceeded");
export const BackendUnavailableError = define("BackendUnavailableError", "backend_unavailable");
export const TimeoutError = define("TimeoutError", "timeout");
/** A kept lease is lost: `reason` is "not_owner", "renewals_failed" or "max_hold_reached"; `lastError` the last renewal's error. */
export const LeaseLostError = define("LeaseLostError", "lease_lost");

export const ERRORS_BY_CODE = Object.freeze(
  Object.fromEntries(
    [
      InvalidKeyError,
      InvalidArgumentError,
      ConflictError,
      NotOwnerError,
      OutOfOrderError,
      StaleTokenError,
      CapacityExceededError,
      BackendUnavailableError,
      TimeoutError,
      LeaseLostError,
    ].map((cls) => [cls.prototype.code, cls]),
  ),
);

/** Builds the error for a code raised by the wasm module (installed as its error factory). */
export function fromNative(code, message, details) {
  const cls = ERRORS_BY_CODE[code] ?? RacefreeError;
  return new cls(message, details);
}
