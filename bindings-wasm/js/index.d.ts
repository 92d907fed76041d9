// Types of the `racefree` npm package. Indexes, versions and tokens are `number`s: exact up to
// Number.MAX_SAFE_INTEGER (2^53 - 1); a value past that throws InvalidArgumentError instead of
// rounding. Durations (`ttl`, `timeout`, `retention`) are milliseconds.

/** A JSON-compatible value: what a record holds. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export declare class RacefreeError extends Error {
  constructor(message: string, details?: Record<string, unknown>);
  /** The stable error code, the same in Rust, Python and JavaScript. */
  readonly code: ErrorCode;
}
export declare class InvalidKeyError extends RacefreeError {
  readonly code: "invalid_key";
}
export declare class InvalidArgumentError extends RacefreeError {
  readonly code: "invalid_argument";
}
export declare class ConflictError extends RacefreeError {
  readonly code: "conflict";
  readonly key: string;
  /** `null` when the record does not exist. */
  readonly currentVersion: number | null;
}
export declare class NotOwnerError extends RacefreeError {
  readonly code: "not_owner";
  readonly key: string;
  readonly token: number;
}
export declare class OutOfOrderError extends RacefreeError {
  readonly code: "out_of_order";
  readonly stream: string;
  readonly event: string;
  readonly missing: string;
}
export declare class StaleTokenError extends RacefreeError {
  readonly code: "stale_token";
  readonly key: string;
  readonly token: number;
  readonly latest: number;
}
export declare class CapacityExceededError extends RacefreeError {
  readonly code: "capacity_exceeded";
  readonly maxKeys: number;
}
export declare class BackendUnavailableError extends RacefreeError {
  readonly code: "backend_unavailable";
}
export declare class TimeoutError extends RacefreeError {
  readonly code: "timeout";
  readonly waitedMs: number;
}

/** A kept lease is lost: the work under it must stop (another holder may start the key). */
export declare class LeaseLostError extends RacefreeError {
  readonly code: "lease_lost";
  readonly key: string;
  readonly token: number;
  /** `not_owner`: a renewal was refused; `renewals_failed`: none was confirmed before the safe deadline; `max_hold_reached`. */
  readonly reason: "not_owner" | "renewals_failed" | "max_hold_reached";
  /** The last renewal's error behind `renewals_failed`, if one failed. */
  readonly lastError: RacefreeError | null;
  /** Set by `runExclusive` when `fn` fulfilled after its lease was lost: what it returned. */
  result?: unknown;
}

export type ErrorCode =
  | "invalid_key"
  | "invalid_argument"
  | "conflict"
  | "not_owner"
  | "out_of_order"
  | "stale_token"
  | "capacity_exceeded"
  | "backend_unavailable"
  | "timeout"
  | "lease_lost"
  | "racefree_error";

export declare const ERRORS_BY_CODE: Readonly<Record<Exclude<ErrorCode, "racefree_error">, typeof RacefreeError>>;
export declare function fromNative(code: string, message: string, details: Record<string, unknown>): RacefreeError;

/** Opens a store: `memory://` (the default, and the only backend in JavaScript). */
export declare function open(url?: string, options?: { clock?: ManualClock }): Store;
/** A new execution id: a ULID, monotonic within this instance. */
export declare function newExecutionId(): string;
/** Every error code the core can raise. */
export declare function errorCodes(): string[];
/** The longest key, id or name accepted, in bytes of UTF-8. */
export declare const MAX_KEY_BYTES: number;

/** A clock that moves only when told to (tests). */
export declare class ManualClock {
  constructor(startMs?: number);
  advance(ms: number): void;
  nowMs(): number;
}

export declare class Store {
  private constructor();
  readonly namespace: string;
  /** Removes every expired lease and mark; returns how many. */
  sweep(): number;
  stats(): { entries: number; expiredSwept: number };
}

export interface Claim {
  readonly index: number;
  /** `true` for the one claim that assigned the index. */
  readonly isNew: boolean;
}

/** A per-key sequential index counter: 0, 1, 2, … unique and gap-free. */
export declare class Counter {
  constructor(store: Store, key: string);
  readonly key: string;
  next(): number;
  /** The index of `executionId`, assigned on its first claim and stable afterwards. */
  claim(executionId: string): Claim;
  indexOf(executionId: string): number | null;
  peek(): number;
  set(next: number): void;
  reset(): void;
  stats(): { newClaims: number; repeatedClaims: number };
}

export declare const Mark: { readonly First: "first"; readonly Duplicate: "duplicate" };
export type Mark = (typeof Mark)[keyof typeof Mark];

/** Ordered lifecycle events, each delivered once per stream. */
export declare class EventGuard {
  constructor(store: Store, name: string, events: readonly string[], options?: { retention?: number });
  readonly events: string[];
  /** Throws OutOfOrderError when the event before `event` is not marked (nothing is recorded). */
  mark(stream: string, event: string): Mark;
  isMarked(stream: string, event: string): boolean;
  lastMarked(stream: string): string | null;
  forget(stream: string): boolean;
  stats(): { delivered: number; duplicatesSuppressed: number; outOfOrder: number };
}

export declare class Lease {
  private constructor();
  readonly key: string;
  /** The fencing token: larger than every token the lock granted before. */
  readonly token: number;
  readonly deadlineMs: number;
  readonly timeLeftMs: number;
  renew(options: { ttl: number }): void;
  release(): void;
}

export interface AcquireOptions {
  /** The lease's time to live, in milliseconds. */
  ttl: number;
  /** How long to wait, in milliseconds (default: forever). */
  timeout?: number;
  /** Aborts the wait, rejecting with `signal.reason`. */
  signal?: AbortSignal;
}

export interface KeepOptions {
  /** Milliseconds between renewals (default: ttl / 3); must be below the TTL. */
  renewEvery?: number;
  /** Stop renewing after this many milliseconds and report the lease lost; at least the TTL. */
  maxHold?: number;
}

export interface RunExclusiveOptions extends AcquireOptions, KeepOptions {}

/** What a kept task receives: its lease (for its fencing token) and a signal that aborts with a `LeaseLostError` when the lease is lost. */
export interface Holding {
  readonly lease: Lease;
  readonly signal: AbortSignal;
}

/** One winner per key: TTL leases with fencing tokens. */
export declare class StartLock {
  constructor(store: Store, name: string);
  readonly name: string;
  /** A lease if nobody holds `key`, else `null`. */
  tryStart(key: string, options: { ttl: number }): Lease | null;
  acquire(key: string, options: AcquireOptions): Promise<Lease>;
  /**
   * Runs `fn` under the lease, renewed while it runs, and releases it when `fn` settles. Settles
   * with `fn`'s outcome; if the lease was lost before `fn` fulfilled, rejects with the
   * `LeaseLostError` (its `result` is `fn`'s value).
   */
  runExclusive<T>(key: string, options: RunExclusiveOptions, fn: (held: Holding) => T | Promise<T>): Promise<T>;
  isHeld(key: string): boolean;
  holder(key: string): { token: number; deadlineMs: number } | null;
  stats(): { granted: number; contended: number; renewed: number; released: number; rejectedNotOwner: number };
}

export interface CoordinatorOptions extends KeepOptions {
  /** The lock's name (default "tasks"). */
  name?: string;
  /** The lease TTL in milliseconds (default 30,000). */
  ttl?: number;
  /** Called with a task's failure or lost lease (default: console.error). */
  onError?: (error: unknown, key: string) => void;
}

/** At most one task per key, each under a lease kept alive while it runs. */
export declare class TaskCoordinator {
  constructor(store: Store, options?: CoordinatorOptions);
  /** Runs `fn` unless `key` is held anywhere; whether it started. */
  start(key: string, fn: (held: Holding) => unknown): Promise<boolean>;
  /** Aborts this coordinator's task for `key` and waits for its release; whether one ran. */
  stop(key: string): Promise<boolean>;
  wait(key: string): Promise<void>;
  running(): string[];
  isRunning(key: string): boolean;
  close(): Promise<void>;
}

export interface Versioned<T extends Json = Json> {
  readonly value: T;
  readonly version: number;
}

/** Versioned JSON records with compare-and-swap writes. */
export declare class Records {
  constructor(store: Store, name: string);
  get(key: string): Versioned | null;
  /** Create-only without `expectedVersion`; returns the new version. */
  put(key: string, value: Json, options?: { expectedVersion?: number; fencingToken?: number }): number;
  /** One compare-and-swap write of `change(current)`, retried on conflict. */
  update<T extends Json>(
    key: string,
    change: (current: Json | null) => T,
    options?: { fencingToken?: number; maxAttempts?: number },
  ): Versioned<T>;
  delete(key: string, options?: { expectedVersion?: number }): boolean;
  stats(): { writes: number; conflicts: number; retries: number; staleTokens: number };
}

/** A single-flight TTL cache. */
export declare class Cache {
  constructor(options?: { maxEntries?: number; clock?: ManualClock });
  getOrLoad<T>(key: string, options: { ttl: number }, loader: () => T | Promise<T>): Promise<T>;
  wrap<A extends unknown[], T>(
    fn: (...args: A) => T | Promise<T>,
    options: { ttl: number; key?: (...args: A) => string },
  ): (...args: A) => Promise<T>;
  invalidate(key: string): boolean;
  sweep(): number;
  readonly size: number;
  stats(): { hits: number; loads: number; coalesced: number; loadErrors: number; expired: number };
}
