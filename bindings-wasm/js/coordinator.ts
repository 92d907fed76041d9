// TaskCoordinator: at most one task per key, each under a kept lease.

import { options, str } from "./checks.js";
import { KeptRun, keeperOptions, monotonicNow } from "./keeping.js";
import type { Holding, KeepOptions, Keeping } from "./keeping.js";
import { StartLock } from "./start_lock.js";
import type { Store } from "./store.js";

/** Options of a `TaskCoordinator` (in memory and on a shared store). */
export interface CoordinatorOptions extends KeepOptions {
  /** The lock's name (default "tasks"). */
  name?: string;
  /** The lease TTL in milliseconds (default 30,000). */
  ttl?: number;
  /** Called with a task's failure or lost lease (default: console.error). */
  onError?: (error: unknown, key: string) => void;
}

/** A task running here: its run, why it was stopped (if it was), and its settling. */
interface Running<R> {
  run: R;
  stopped: DOMException | null;
  done: Promise<void> | null;
}

/** What a run under a kept lease offers its coordinator (the memory and the aio `KeptRun`). */
interface Run {
  readonly done: Promise<unknown>;
  abort(reason: unknown): void;
}

/**
 * @internal What both coordinators (in-memory and aio) share: their options, checked, and the
 * tasks running here — each one's settling, stopping and waiting.
 */
export class RunningTasks<R extends Run> {
  readonly name: string;
  readonly keeping: Keeping;
  #onError: (error: unknown, key: string) => void;
  #running = new Map<string, Running<R>>();
  constructor(opts: CoordinatorOptions | undefined) {
    const { name = "tasks", ttl = 30_000, renewEvery, maxHold, onError } = options(opts, "coordinator options");
    if (onError !== undefined && typeof onError !== "function") throw new TypeError("onError must be a function");
    this.keeping = keeperOptions(ttl, renewEvery, maxHold);
    this.name = name;
    this.#onError = onError ?? ((error, key) => console.error(`racefree: task ${JSON.stringify(key)} failed:`, error));
  }
  /** Runs `run` as `key`'s task here until it settles. */
  add(key: string, run: R): void {
    const entry: Running<R> = { run, stopped: null, done: null };
    entry.done = this.#settle(key, entry);
    this.#running.set(key, entry);
  }
  async #settle(key: string, entry: Running<R>): Promise<void> {
    try {
      await entry.run.done;
    } catch (error) {
      if (entry.stopped === null || error !== entry.stopped) this.#onError(error, key);
    } finally {
      if (this.#running.get(key) === entry) this.#running.delete(key);
    }
  }
  async stop(key: string): Promise<boolean> {
    const entry = this.#running.get(str("task key", key));
    if (entry === undefined) return false;
    entry.stopped = new DOMException("the task was stopped", "AbortError");
    entry.run.abort(entry.stopped);
    await entry.done;
    return true;
  }
  wait(key: string): Promise<void> {
    // The task's own settling, not a promise around it: no extra turn for the common wait.
    try {
      return this.#running.get(str("task key", key))?.done ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
  running(): string[] {
    return [...this.#running.keys()].sort();
  }
  async close(): Promise<void> {
    await Promise.all(this.running().map((key) => this.stop(key)));
  }
}

/**
 * Runs at most one task per key: `await coordinator.start(key, fn)` is `true` and runs
 * `fn({ lease, signal })` under a lease kept alive while it runs, or `false` at once when the key
 * is held. `signal` aborts when the lease is lost or the task is stopped; failures go to `onError`.
 */
export class TaskCoordinator {
  #lock: StartLock;
  #tasks: RunningTasks<KeptRun>;
  constructor(store: Store, opts?: CoordinatorOptions) {
    this.#tasks = new RunningTasks(opts);
    this.#lock = new StartLock(store, this.#tasks.name);
  }
  /** The lock of its tasks' leases: its `stats()` count their grants, renewals and losses. */
  get lock(): StartLock {
    return this.#lock;
  }
  /** Runs `fn` unless `key` is held anywhere; whether it started. */
  async start(key: string, fn: (held: Holding) => unknown): Promise<boolean> {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = monotonicNow();
    const keeping = this.#tasks.keeping;
    const lease = this.#lock.tryStart(key, { ttl: keeping.ttl });
    if (lease === null) return false;
    this.#tasks.add(key, new KeptRun(StartLock.native(this.#lock), keeping, lease, requestedAt, fn));
    return true;
  }
  /** Aborts this coordinator's task for `key` and waits until it has settled and released; whether one ran. */
  stop(key: string): Promise<boolean> {
    return this.#tasks.stop(key);
  }
  /** Waits until this coordinator's task for `key` (if any) has settled and released its lease. */
  wait(key: string): Promise<void> {
    return this.#tasks.wait(key);
  }
  /** Keys whose tasks run here. */
  running(): string[] {
    return this.#tasks.running();
  }
  /** Whether `key` is held by anyone sharing the store. */
  isRunning(key: string): boolean {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  close(): Promise<void> {
    return this.#tasks.close();
  }
}
