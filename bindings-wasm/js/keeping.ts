// Lease keeping: every kept lease of this realm on one timer, renewed when the core's keeper says,
// and the run of a task under a kept lease.

import type * as Native from "../node/racefree_wasm.js";
import { ms } from "./checks.js";
import { NotOwnerError } from "./errors.js";
import type { LeaseLostError } from "./errors.js";
import { native } from "./native.js";
import type { Lease } from "./start_lock.js";

/** @internal A sleep that `signal` cuts short, rejecting with its reason. */
export const sleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", aborted, { once: true });
  });

/** @internal */
export const monotonicNow = (): number => performance.now();

/** @internal Lets a Node timer hold the process open, or not (browsers' timers have no such switch). */
export function refTimer(timer: ReturnType<typeof setTimeout> | undefined, held: boolean): void {
  const handle = timer as { ref?: () => void; unref?: () => void } | undefined;
  if (held) handle?.ref?.();
  else handle?.unref?.();
}

/** @internal Keep options as the core accepted them, with when a fresh lease first needs its keeper. */
export interface Keeping {
  ttl: number;
  renewEvery: number | undefined;
  maxHold: number | undefined;
  firstWakeAfter: number;
}

let lastKeeperOptions: Keeping = { ttl: NaN, renewEvery: undefined, maxHold: undefined, firstWakeAfter: NaN };

/** @internal Keep options the core accepts (`ttl`, `renewEvery` default ttl / 3, `maxHold`), checked now
 * (or found equal to the last ones checked), with when a fresh lease first needs its keeper. */
export function keeperOptions(ttl: unknown, renewEvery: unknown, maxHold: unknown): Keeping {
  const last = lastKeeperOptions;
  if (ttl === last.ttl && renewEvery === last.renewEvery && maxHold === last.maxHold) return last;
  const optional = (what: string, value: unknown) => (value === undefined ? undefined : ms(what, value));
  const checked = { ttl: ms("ttl", ttl), renewEvery: optional("renewEvery", renewEvery), maxHold: optional("maxHold", maxHold) };
  const firstWakeAfter = native.firstWakeAfterMs(checked.ttl, checked.renewEvery, checked.maxHold);
  return (lastKeeperOptions = { ...checked, firstWakeAfter });
}

let lastWait: { ttl: number; timeout: number | undefined } = { ttl: NaN, timeout: undefined };

/** @internal Throws what the core says of a wait's `ttl` and `timeout` (remembering the last good pair). */
export function checkWait(ttl: number, timeout: number | undefined): void {
  if (ttl === lastWait.ttl && timeout === lastWait.timeout) return;
  native.checkWait(ttl, timeout);
  lastWait = { ttl, timeout };
}

/**
 * Every kept lease of this realm, on one timer: each lease's keeper (the core's) says when it
 * wants a renewal; the timer wakes at the earliest. JavaScript runs one thing at a time, so one
 * timer serves all, and starting a lease rarely touches it. A keeper is made when its lease first
 * needs one (the core says when), so a run shorter than `renewEvery` makes none. In Node the timer
 * holds the process open while a lease is kept (it may have to abort a task that waits for nothing
 * else), and not after the last one ends.
 */
interface Kept {
  nativeLock: Native.StartLock;
  lease: Lease;
  requestedAt: number;
  options: Keeping;
  run: KeptRun;
  keeper: Native.LeaseKeeper | null;
  wake: number;
}

const keptLeases = {
  leases: new Set<Kept>(),
  timer: undefined as ReturnType<typeof setTimeout> | undefined,
  timerAt: Infinity,
  /** Keeps `lease` alive, calling `run.onLost(error)` once if it is lost; returns `stop`. */
  keep(nativeLock: Native.StartLock, lease: Lease, requestedAt: number, options: Keeping, run: KeptRun): () => void {
    const kept: Kept = { nativeLock, lease, requestedAt, options, run, keeper: null, wake: requestedAt + options.firstWakeAfter };
    this.leases.add(kept);
    if (this.leases.size === 1) refTimer(this.timer, true);
    this.schedule(kept.wake);
    return () => this.forget(kept);
  },
  forget(kept: Kept): void {
    if (!this.leases.delete(kept)) return;
    kept.keeper?.free();
    if (this.leases.size === 0) refTimer(this.timer, false);
  },
  schedule(wake: number): void {
    if (wake >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = wake;
    this.timer = setTimeout(() => this.tick(), Math.max(0, wake - monotonicNow()));
  },
  tick(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = monotonicNow();
    for (const kept of [...this.leases]) {
      if (kept.wake <= now) this.step(kept, now);
      else this.schedule(kept.wake);
    }
  },
  /** Polls a lease's keeper at `now`, renewing while it asks (the memory store answers at once; a
   * store that answers later would await the reply between `renew` and `settle`). */
  step(kept: Kept, now: number): void {
    const { lease, options } = kept;
    try {
      kept.keeper ??= new native.LeaseKeeper(kept.nativeLock, lease.key, lease.token, kept.requestedAt, options.ttl, options.renewEvery, options.maxHold);
      let wake;
      while ((wake = kept.keeper.poll(now)) === undefined) {
        kept.keeper.renew();
        kept.keeper.settle((now = monotonicNow()));
      }
      kept.wake = wake;
    } catch (error) {
      this.forget(kept);
      kept.run.onLost(error as LeaseLostError);
      return;
    }
    this.schedule(kept.wake);
  },
};

/**
 * @internal
 * One run of `fn({ lease, signal })` under `lease`, kept alive while it runs, then released.
 * `done` settles with `fn`'s outcome; if the lease was lost before `fn` fulfilled, it rejects with
 * the `LeaseLostError` (or the release's `NotOwnerError`), whose `result` is `fn`'s value.
 * `abort(reason)` aborts the signal. The run is the `{ lease, signal }` that `fn` receives; its
 * signal is made on first use (reading an AbortSignal costs Node 20 about 5 µs, more than the rest
 * of a run).
 */
export class KeptRun implements Holding {
  readonly lease: Lease;
  readonly done: Promise<unknown>;
  #controller: AbortController | null = null;
  #aborted: { reason: unknown } | null = null;
  #lost: (LeaseLostError | InstanceType<typeof NotOwnerError>) | null = null;
  #stop: () => void;
  constructor(nativeLock: Native.StartLock, options: Keeping, lease: Lease, requestedAt: number, fn: (held: Holding) => unknown) {
    this.lease = lease;
    this.#stop = keptLeases.keep(nativeLock, lease, requestedAt, options, this);
    this.done = this.#run(fn);
  }
  /** Aborts with a `LeaseLostError` when the lease is lost, or with the reason the run was stopped. */
  get signal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#aborted !== null) this.#controller.abort(this.#aborted.reason);
    }
    return this.#controller.signal;
  }
  /** Aborts the run's signal with `reason` (once). */
  abort(reason: unknown): void {
    if (this.#aborted !== null) return;
    this.#aborted = { reason };
    this.#controller?.abort(reason);
  }
  /** @internal called by the keeper */
  onLost(error: LeaseLostError): void {
    this.#lost = error;
    this.abort(error);
  }
  async #run(fn: (held: Holding) => unknown): Promise<unknown> {
    let value: unknown;
    try {
      value = await fn(this);
    } finally {
      this.#stop();
      try {
        this.lease.release();
      } catch (error) {
        if (!(error instanceof NotOwnerError)) throw error;
        this.#lost ??= error; // taken from it since the last renewal
      }
    }
    if (this.#lost !== null) {
      (this.#lost as { result?: unknown }).result = value;
      throw this.#lost;
    }
    return value;
  }
}

export interface KeepOptions {
  /** Milliseconds between renewals (default: ttl / 3); must be below the TTL. */
  renewEvery?: number;
  /** Stop renewing after this many milliseconds and report the lease lost; at least the TTL. */
  maxHold?: number;
}

/** What a kept task receives: its lease (for its fencing token) and a signal that aborts with a `LeaseLostError` when the lease is lost. */
export interface Holding {
  readonly lease: Lease;
  readonly signal: AbortSignal;
}
