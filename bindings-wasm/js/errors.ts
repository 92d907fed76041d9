// racefree's errors: real Error subclasses with `name` and a stable `code`, one per core code.

export type ErrorCode =
  | "invalid_key"
  | "invalid_argument"
  | "conflict"
  | "not_owner"
  | "out_of_order"
  | "stale_token"
  | "capacity_exceeded"
  | "backend_unavailable"
  | "corrupt_data"
  | "timeout"
  | "lease_lost"
  | "racefree_error";

export class RacefreeError extends Error {
  /** The stable error code, the same in Rust, Python and JavaScript. */
  declare readonly code: ErrorCode;
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    Object.assign(this, details);
  }
}
export class InvalidKeyError extends RacefreeError {
  declare readonly code: "invalid_key";
}
export class InvalidArgumentError extends RacefreeError {
  declare readonly code: "invalid_argument";
}
export class ConflictError extends RacefreeError {
  declare readonly code: "conflict";
  declare readonly key: string;
  /** `null` when the record does not exist. */
  declare readonly currentVersion: number | null;
}
export class NotOwnerError extends RacefreeError {
  declare readonly code: "not_owner";
  declare readonly key: string;
  declare readonly token: number;
}
export class OutOfOrderError extends RacefreeError {
  declare readonly code: "out_of_order";
  declare readonly stream: string;
  declare readonly event: string;
  declare readonly missing: string;
}
export class StaleTokenError extends RacefreeError {
  declare readonly code: "stale_token";
  declare readonly key: string;
  declare readonly token: number;
  declare readonly latest: number;
}
export class CapacityExceededError extends RacefreeError {
  declare readonly code: "capacity_exceeded";
  declare readonly maxKeys: number;
}
/** The backend could not be reached or failed, and the request did not run: it could not be sent, or the backend refused it (a request that may have run is a `TimeoutError`). */
export class BackendUnavailableError extends RacefreeError {
  declare readonly code: "backend_unavailable";
  /** The backend client's own error, when there is one (its own `cause` follows the chain). */
  declare readonly cause?: Error;
}
/** The store holds or answered a value racefree could not have written; retrying does not help. */
export class CorruptDataError extends RacefreeError {
  declare readonly code: "corrupt_data";
}
/** A wait ran out of time; or a request was sent and its reply never came (it timed out, or the connection was lost after the write): the request may have run, so its outcome is unknown. */
export class TimeoutError extends RacefreeError {
  declare readonly code: "timeout";
  declare readonly waitedMs: number;
}
/** A kept lease is lost: the work under it must stop (another holder may start the key). */
export class LeaseLostError extends RacefreeError {
  declare readonly code: "lease_lost";
  declare readonly key: string;
  declare readonly token: number;
  /** `not_owner`: a renewal was refused; `renewals_failed`: none was confirmed before the safe deadline; `max_hold_reached`. */
  declare readonly reason: "not_owner" | "renewals_failed" | "max_hold_reached";
  /** The last renewal's error behind `renewals_failed`, if one failed. */
  declare readonly lastError: RacefreeError | null;
  /** Set by `runExclusive` when `fn` fulfilled after its lease was lost: what it returned. */
  declare result?: unknown;
}

/** Each class's code, on its prototype (an error's `code` is its class's). */
const CODES = [
  [RacefreeError, "racefree_error"],
  [InvalidKeyError, "invalid_key"],
  [InvalidArgumentError, "invalid_argument"],
  [ConflictError, "conflict"],
  [NotOwnerError, "not_owner"],
  [OutOfOrderError, "out_of_order"],
  [StaleTokenError, "stale_token"],
  [CapacityExceededError, "capacity_exceeded"],
  [BackendUnavailableError, "backend_unavailable"],
  [CorruptDataError, "corrupt_data"],
  [TimeoutError, "timeout"],
  [LeaseLostError, "lease_lost"],
] as const;
for (const [cls, code] of CODES) Object.defineProperty(cls.prototype, "code", { value: code, writable: true, configurable: true });

/** The error class of each code the core raises. */
export const ERRORS_BY_CODE: Readonly<Record<Exclude<ErrorCode, "racefree_error">, typeof RacefreeError>> = Object.freeze(
  Object.fromEntries(CODES.slice(1).map(([cls, code]) => [code, cls])) as Record<Exclude<ErrorCode, "racefree_error">, typeof RacefreeError>,
);

/** Builds the error for a code raised by the wasm module (installed as its error factory). */
export function fromNative(code: string, message: string, details: Record<string, unknown>): RacefreeError {
  const cls = (ERRORS_BY_CODE as Record<string, typeof RacefreeError | undefined>)[code] ?? RacefreeError;
  return new cls(message, details);
}
