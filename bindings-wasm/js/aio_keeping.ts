// Lease keeping on a shared store: a run under a lease whose renewals are async calls.

import type * as Native from "../node-hosted/racefree_wasm.js";
import type { LeaseLostError } from "./errors.js";
import { NotOwnerError } from "./errors.js";
import type { Keeping } from "./keeping.js";
import { hostedModule } from "./native.js";
import type { Lease } from "./aio_start_lock.js";

/** What a kept task receives: its lease (for its fencing token) and a signal that aborts with a `LeaseLostError` when the lease is lost. */
export interface Holding {
  readonly lease: Lease;
  readonly signal: AbortSignal;
}

/**
 * @internal
 * One run of `fn({ lease, signal })` under `lease`: the core's keeper says when to renew; each
 * renewal is an async call, and while one is in flight a timer waits for the safe deadline, so a
 * server that does not answer cannot keep the signal from aborting in time. Then the lease is
 * released; `done` settles with `fn`'s outcome, or rejects with the loss.
 */
export class KeptRun implements Holding {
  readonly lease: Lease;
  readonly done: Promise<unknown>;
  #lock: Native.AsyncStartLock;
  #keeping: Keeping;
  #requestedAt: number;
  #keeper: Native.LeaseKeeper | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #controller = new AbortController();
  #lost: unknown = null;
  constructor(lock: Native.AsyncStartLock, keeping: Keeping, lease: Lease, requestedAt: number, fn: (held: Holding) => unknown) {
    this.lease = lease;
    this.#lock = lock;
    this.#keeping = keeping;
    this.#requestedAt = requestedAt;
    this.#schedule(requestedAt + keeping.firstWakeAfter);
    this.done = this.#run(fn);
  }
  /** Aborts with a `LeaseLostError` when the lease is lost, or with the reason the run was stopped. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }
  /** Aborts the run's signal with `reason` (once). */
  abort(reason: unknown): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }
  #schedule(at: number): void {
    clearTimeout(this.#timer);
    if (!this.#stopped) this.#timer = setTimeout(() => this.#step(), Math.max(0, at - performance.now()));
  }
  #step(): void {
    if (this.#stopped) return;
    const now = performance.now();
    try {
      const { ttl, renewEvery, maxHold } = this.#keeping;
      this.#keeper ??= hostedModule().LeaseKeeper.hosted(this.#lock, this.lease.key, this.lease.token, this.#requestedAt, ttl, renewEvery, maxHold);
      this.#keeper.settle(now); // the reply of a renewal that has answered, if any
      let wake = this.#keeper.poll(now);
      if (wake === undefined) {
        (this.#keeper.renewAsync() as Promise<void>).then(() => this.#step());
        wake = this.#keeper.poll(now); // the safe deadline, while the renewal is in flight
      }
      this.#schedule(wake!);
    } catch (error) {
      this.#stop();
      this.#lost = error as LeaseLostError;
      this.abort(error);
    }
  }
  #stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
  async #run(fn: (held: Holding) => unknown): Promise<unknown> {
    let value: unknown;
    try {
      value = await fn(this);
    } finally {
      this.#stop();
      this.#keeper?.free();
      if (this.#lost !== null) {
        // Lost: its loss is the outcome. The release is still sent, to free the key at once if
        // the lease outlived its safe deadline, but not awaited: a server that stopped answering
        // (often why the lease was lost) must not hold the outcome back.
        this.lease.release().catch(() => {});
      } else {
        try {
          await this.lease.release();
        } catch (error) {
          if (!(error instanceof NotOwnerError)) throw error;
          this.#lost = error; // taken from it since the last renewal
        }
      }
    }
    if (this.#lost !== null) {
      (this.#lost as { result?: unknown }).result = value;
      throw this.#lost;
    }
    return value;
  }
}
