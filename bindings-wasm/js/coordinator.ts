// TaskCoordinator: at most one task per key, each under a kept lease.

import { options, str } from "./checks.js";
import { KeptRun, keeperOptions, monotonicNow } from "./keeping.js";
import type { Holding, KeepOptions, Keeping } from "./keeping.js";
import { StartLock } from "./start_lock.js";
import type { Store } from "./store.js";

/**
 * Runs at most one task per key: `await coordinator.start(key, fn)` is `true` and runs
 * `fn({ lease, signal })` under a lease kept alive while it runs, or `false` at once when the key
 * is held. `signal` aborts when the lease is lost or the task is stopped; failures go to `onError`.
 */
export interface CoordinatorOptions extends KeepOptions {
  /** The lock's name (default "tasks"). */
  name?: string;
  /** The lease TTL in milliseconds (default 30,000). */
  ttl?: number;
  /** Called with a task's failure or lost lease (default: console.error). */
  onError?: (error: unknown, key: string) => void;
}

/** A task running here: its run, why it was stopped (if it was), and its settling. */
interface Running {
  run: KeptRun;
  stopped: DOMException | null;
  done: Promise<void> | null;
}

export class TaskCoordinator {
  #lock: StartLock;
  #keeping: Keeping;
  #onError: (error: unknown, key: string) => void;
  #running = new Map<string, Running>();
  constructor(store: Store, opts?: CoordinatorOptions) {
    const { name = "tasks", ttl = 30_000, renewEvery, maxHold, onError } = options(opts, "coordinator options");
    if (onError !== undefined && typeof onError !== "function") throw new TypeError("onError must be a function");
    this.#keeping = keeperOptions(ttl, renewEvery, maxHold);
    this.#lock = new StartLock(store, name);
    this.#onError = onError ?? ((error, key) => console.error(`racefree: task ${JSON.stringify(key)} failed:`, error));
  }
  /** Runs `fn` unless `key` is held anywhere; whether it started. */
  async start(key: string, fn: (held: Holding) => unknown): Promise<boolean> {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = monotonicNow();
    const lease = this.#lock.tryStart(key, { ttl: this.#keeping.ttl });
    if (lease === null) return false;
    const run = new KeptRun(StartLock.native(this.#lock), this.#keeping, lease, requestedAt, fn);
    const entry: Running = { run, stopped: null, done: null };
    entry.done = this.#settle(key, entry);
    this.#running.set(key, entry);
    return true;
  }
  async #settle(key: string, entry: Running): Promise<void> {
    try {
      await entry.run.done;
    } catch (error) {
      if (entry.stopped === null || error !== entry.stopped) this.#onError(error, key);
    } finally {
      if (this.#running.get(key) === entry) this.#running.delete(key);
    }
  }
  /** Aborts this coordinator's task for `key` and waits until it has settled and released; whether one ran. */
  async stop(key: string): Promise<boolean> {
    const run = this.#running.get(str("task key", key));
    if (run === undefined) return false;
    run.stopped = new DOMException("the task was stopped", "AbortError");
    run.run.abort(run.stopped);
    await run.done;
    return true;
  }
  /** Waits until this coordinator's task for `key` (if any) has settled and released its lease. */
  wait(key: string): Promise<void> {
    try {
      return this.#running.get(str("task key", key))?.done ?? Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
  /** Keys whose tasks run here. */
  running(): string[] {
    return [...this.#running.keys()].sort();
  }
  /** Whether `key` is held by anyone sharing the store. */
  isRunning(key: string): boolean {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  async close(): Promise<void> {
    await Promise.all(this.running().map((key) => this.stop(key)));
  }
}
