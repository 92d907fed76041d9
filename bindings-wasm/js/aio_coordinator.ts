// TaskCoordinator on a shared store: at most one task per key across every process sharing it.

import { options, str } from "./checks.js";
import { KeptRun } from "./aio_keeping.js";
import type { Holding } from "./aio_keeping.js";
import { StartLock } from "./aio_start_lock.js";
import type { CoordinatorOptions } from "./coordinator.js";
import { keeperOptions } from "./keeping.js";
import type { Keeping } from "./keeping.js";
import type { SharedStore } from "./stores.js";

interface Running {
  run: KeptRun;
  stopped: DOMException | null;
  done: Promise<void> | null;
}

/**
 * Runs at most one task per key across every process sharing the store: `await start(key, fn)`
 * is `true` and runs `fn({ lease, signal })` under a lease kept alive while it runs, or `false`
 * when the key is held anywhere. `signal` aborts when the lease is lost or the task is stopped.
 */
export class TaskCoordinator {
  #lock: StartLock;
  #keeping: Keeping;
  #onError: (error: unknown, key: string) => void;
  #running = new Map<string, Running>();
  constructor(store: SharedStore, opts?: CoordinatorOptions) {
    const { name = "tasks", ttl = 30_000, renewEvery, maxHold, onError } = options(opts, "coordinator options");
    if (onError !== undefined && typeof onError !== "function") throw new TypeError("onError must be a function");
    this.#keeping = keeperOptions(ttl, renewEvery, maxHold);
    this.#lock = new StartLock(store, name);
    this.#onError = onError ?? ((error, key) => console.error(`racefree: task ${JSON.stringify(key)} failed:`, error));
  }
  /** Runs `fn` unless `key` is held anywhere; resolves to whether it started. */
  async start(key: string, fn: (held: Holding) => unknown): Promise<boolean> {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = performance.now();
    const lease = await this.#lock.tryStart(key, { ttl: this.#keeping.ttl });
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
    const entry = this.#running.get(str("task key", key));
    if (entry === undefined) return false;
    entry.stopped = new DOMException("the task was stopped", "AbortError");
    entry.run.abort(entry.stopped);
    await entry.done;
    return true;
  }
  /** Waits until this coordinator's task for `key` (if any) has settled and released its lease. */
  async wait(key: string): Promise<void> {
    await this.#running.get(str("task key", key))?.done;
  }
  /** Keys whose tasks run here. */
  running(): string[] {
    return [...this.#running.keys()].sort();
  }
  /** Whether `key` is held by anyone sharing the store. */
  isRunning(key: string): Promise<boolean> {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  async close(): Promise<void> {
    await Promise.all(this.running().map((key) => this.stop(key)));
  }
}
