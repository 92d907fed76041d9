// TaskCoordinator on a shared store: at most one task per key across every process sharing it.

import { str } from "./checks.js";
import { KeptRun } from "./aio_keeping.js";
import type { Holding } from "./aio_keeping.js";
import { StartLock } from "./aio_start_lock.js";
import { RunningTasks } from "./coordinator.js";
import type { CoordinatorOptions } from "./coordinator.js";
import type { SharedStore } from "./stores.js";

/**
 * Runs at most one task per key across every process sharing the store: `await start(key, fn)`
 * is `true` and runs `fn({ lease, signal })` under a lease kept alive while it runs, or `false`
 * when the key is held anywhere. `signal` aborts when the lease is lost or the task is stopped.
 */
export class TaskCoordinator {
  #lock: StartLock;
  #tasks: RunningTasks<KeptRun>;
  constructor(store: SharedStore, opts?: CoordinatorOptions) {
    this.#tasks = new RunningTasks(opts);
    this.#lock = new StartLock(store, this.#tasks.name);
  }
  /** The lock of its tasks' leases: its `stats()` count their grants, renewals and losses. */
  get lock(): StartLock {
    return this.#lock;
  }
  /** Runs `fn` unless `key` is held anywhere; resolves to whether it started. */
  async start(key: string, fn: (held: Holding) => unknown): Promise<boolean> {
    key = str("task key", key);
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    const requestedAt = performance.now();
    const keeping = this.#tasks.keeping;
    const lease = await this.#lock.tryStart(key, { ttl: keeping.ttl });
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
  isRunning(key: string): Promise<boolean> {
    return this.#lock.isHeld(key);
  }
  /** Stops every task here and waits for their releases. */
  close(): Promise<void> {
    return this.#tasks.close();
  }
}
