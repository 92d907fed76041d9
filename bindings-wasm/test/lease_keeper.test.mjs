// Leases kept alive while the work runs, and work told to stop when they are lost. Each run
// records its own start and end on performance.now(), and the assertions are about their order.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as racefree from "racefree";
import { LeaseLostError, StartLock, TaskCoordinator, open } from "racefree";

const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const untilAborted = (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));

test("runExclusive: a task that outlives its TTL keeps the key, and the runs never overlap", async () => {
  const lock = new StartLock(open(), "tasks");
  const runs = [];
  const task = (who, ms) => async ({ lease, signal }) => {
    const run = { who, token: lease.token, start: now() };
    runs.push(run);
    await sleep(ms);
    run.end = now();
    assert.equal(signal.aborted, false, `${who}'s lease was lost`);
    return who;
  };
  const first = lock.runExclusive("k", { ttl: 300 }, task("first", 1_200));
  await sleep(20);
  const second = lock.runExclusive("k", { ttl: 300, timeout: 10_000 }, task("second", 50));
  assert.deepEqual(await Promise.all([first, second]), ["first", "second"]);
  const [a, b] = runs;
  assert.ok(a.end <= b.start, `the runs overlap: first ${a.start}–${a.end}, second ${b.start}–${b.end}`);
  assert.ok(lock.stats().renewed >= 3, JSON.stringify(lock.stats()));
  assert.equal(lock.isHeld("k"), false);
});

test("runExclusive: max hold aborts the signal with LeaseLostError before the next holder starts", async () => {
  const lock = new StartLock(open(), "tasks");
  let firstEnded;
  const first = lock.runExclusive("k", { ttl: 200, maxHold: 400 }, async ({ signal }) => {
    try {
      await untilAborted(signal);
    } finally {
      firstEnded = now();
    }
  });
  await sleep(20);
  let secondStarted;
  const second = lock.runExclusive("k", { ttl: 200, timeout: 10_000 }, () => {
    secondStarted = now();
  });
  await assert.rejects(first, (e) => e instanceof LeaseLostError && e.reason === "max_hold_reached" && e.code === "lease_lost");
  await second;
  assert.ok(firstEnded <= secondStarted, `overlap: first ended ${firstEnded}, second started ${secondStarted}`);
});

test("runExclusive: a lease released under the task is lost at the next renewal; its result is kept on the error", async () => {
  const lock = new StartLock(open(), "tasks");
  const outcome = lock.runExclusive("k", { ttl: 300, renewEvery: 30 }, async ({ lease, signal }) => {
    lease.release(); // an operator frees the key
    await sleep(200); // ignores the signal, and finishes anyway
    return { aborted: signal.aborted, reason: signal.reason?.reason };
  });
  await assert.rejects(outcome, (e) => {
    assert.ok(e instanceof LeaseLostError, `${e}`);
    assert.equal(e.reason, "not_owner");
    assert.deepEqual(e.result, { aborted: true, reason: "not_owner" }, "fn's value is reported, not dropped");
    return true;
  });
});

test("runExclusive: fn's own failure is what it rejects with; the lease is released", async () => {
  const lock = new StartLock(open(), "tasks");
  await assert.rejects(lock.runExclusive("k", { ttl: 300 }, async () => { throw new Error("task failed"); }), /task failed/);
  assert.equal(lock.isHeld("k"), false);
});

test("bad keep and wait options are refused before anything is acquired", async () => {
  const store = open();
  const lock = new StartLock(store, "tasks");
  const fn = () => "ran";
  const keepOptions = [{ renewEvery: 300 }, { renewEvery: 301 }, { renewEvery: 0 }, { renewEvery: -1 }, { renewEvery: NaN }, { maxHold: 299 }];
  for (const bad of [...keepOptions, { timeout: -1 }, { timeout: NaN }, { ttl: 0 }]) {
    await assert.rejects(lock.runExclusive("k", { ttl: 300, ...bad }, fn), racefree.InvalidArgumentError, JSON.stringify(bad));
  }
  for (const bad of [...keepOptions, { ttl: 0 }]) {
    assert.throws(() => new TaskCoordinator(store, { ttl: 300, ...bad }), racefree.InvalidArgumentError, JSON.stringify(bad));
  }
  assert.throws(() => new TaskCoordinator(store, { onError: "log" }), TypeError);
  await assert.rejects(lock.acquire("k", { ttl: 300, timeout: "soon" }), TypeError);
  await assert.rejects(lock.runExclusive("k", { ttl: 300, renewEvery: "often" }, fn), TypeError);
  await assert.rejects(lock.runExclusive("k", { ttl: 300 }), TypeError);
  assert.equal(store.stats().entries, 0, "a refused call acquired something");
});

test("TaskCoordinator: one run per key among a hundred starts, restart after completion, stop aborts and releases", async () => {
  const store = open();
  const errors = [];
  const tasks = new TaskCoordinator(store, { ttl: 300, onError: (error, key) => errors.push([key, error]) });
  let runs = 0;
  const task = async () => {
    runs += 1;
    await sleep(500); // outlives its TTL
  };
  const started = await Promise.all(Array.from({ length: 100 }, () => tasks.start("task:1", task)));
  assert.equal(started.filter(Boolean).length, 1);
  assert.deepEqual(tasks.running(), ["task:1"]);
  await sleep(400);
  assert.equal(await tasks.start("task:1", task), false, "the lease expired while the task ran");
  await tasks.wait("task:1");
  assert.equal(runs, 1);
  assert.equal(tasks.isRunning("task:1"), false);
  assert.ok(await tasks.start("task:1", ({ signal }) => untilAborted(signal)));
  assert.equal(await tasks.stop("task:1"), true);
  assert.equal(tasks.isRunning("task:1"), false);
  assert.equal(await tasks.stop("task:1"), false);
  assert.ok(await tasks.start("fails", async () => { throw new Error("boom"); }));
  await tasks.wait("fails");
  assert.deepEqual(errors.map(([key, error]) => [key, error.message]), [["fails", "boom"]], "a stopped task is no failure");
  assert.ok(await tasks.start("a", ({ signal }) => untilAborted(signal)));
  assert.ok(await tasks.start("b", ({ signal }) => untilAborted(signal)));
  await tasks.close();
  assert.deepEqual(tasks.running(), []);
  assert.equal(store.stats().entries, 0);
});
