// Checks every shared store must pass; redis.test.mjs and postgres.test.mjs run them on theirs.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

import * as racefree from "racefree";
import { aio, ConflictError, InvalidArgumentError, InvalidKeyError, NotOwnerError, OutOfOrderError } from "racefree";
import { runScenarioOnShared } from "./scenario_runner.mjs";

/**
 * Every shared scenario of tests/vectors/ (RACEFREE_VECTORS), each on the store `open(clock)`
 * makes for it (a fresh namespace each time); resolves to the failures. Skipped steps are counted
 * by vectors.test.mjs, which runs the same files on the memory store.
 */
export async function runEveryScenario(open) {
  const vectors = process.env.RACEFREE_VECTORS;
  assert.ok(vectors, "RACEFREE_VECTORS must name the tests/vectors folder");
  const failures = [];
  for (const file of JSON.parse(readFileSync(join(vectors, "index.json"), "utf8")).scenarios) {
    const scenario = JSON.parse(readFileSync(join(vectors, file), "utf8"));
    failures.push(...(await runScenarioOnShared(racefree, scenario, open)));
  }
  return failures;
}

/** Every primitive on `store` (a fresh namespace) answers as on the other stores. */
export async function checkEveryPrimitive(store) {
  const counter = new aio.Counter(store, "jobs");
  assert.deepEqual([await counter.next(), await counter.next()], [0, 1]);
  assert.deepEqual(await counter.claim("run-1"), { index: 2, isNew: true });
  assert.deepEqual(await counter.claim("run-1"), { index: 2, isNew: false });
  assert.equal(await counter.indexOf("run-1"), 2);
  assert.equal(await counter.indexOf("run-2"), null);
  await counter.set(10);
  assert.equal(await counter.peek(), 10);
  await counter.reset();
  assert.equal(await counter.peek(), 0);

  const guard = new aio.EventGuard(store, "streams", ["started", "ended"]);
  assert.equal(await guard.mark("s", "started"), "first");
  assert.equal(await guard.mark("s", "started"), "duplicate");
  await assert.rejects(guard.mark("t", "ended"), OutOfOrderError);
  assert.equal(await guard.lastMarked("s"), "started");
  assert.equal(await guard.forget("s"), true);

  const lock = new aio.StartLock(store, "tasks");
  const lease = await lock.tryStart("k", { ttl: 30_000 });
  assert.ok(lease && lease.token >= 1);
  assert.equal(await lock.tryStart("k", { ttl: 30_000 }), null);
  assert.equal(await lock.isHeld("k"), true);
  assert.equal((await lock.holder("k")).token, lease.token);
  await lease.renew({ ttl: 60_000 });
  assert.ok(lease.deadlineMs > Date.now() + 30_000);
  await lease.release();
  await assert.rejects(lease.release(), NotOwnerError);
  const next = await lock.tryStart("k", { ttl: 30_000 });
  assert.ok(next.token > lease.token, "fencing tokens grow");
  await next.release();

  const records = new aio.Records(store, "pods");
  assert.equal(await records.put("web-1", { phase: "Pending", n: [1, 2.5, "é"] }), 1);
  await assert.rejects(records.put("web-1", { phase: "Pending" }), ConflictError);
  const updated = await records.update("web-1", async (current) => ({ ...current, phase: "Running" }));
  assert.deepEqual(updated, { value: { phase: "Running", n: [1, 2.5, "é"] }, version: 2 });
  assert.deepEqual(await records.get("web-1"), updated);
  assert.equal(await records.delete("web-1", { expectedVersion: 2 }), true);

  await assert.rejects(counter.claim(""), InvalidKeyError);
  await assert.rejects(lock.tryStart("k", { ttl: 0 }), InvalidArgumentError);
}

/**
 * Claims (replay-safe by their ids) on the counter "c" of each of `stores` at once, until
 * `done()`; a call that failed is claimed again. Returns, filled as the claims go, each id's index
 * and when it was acknowledged (`seen`) and the failures' codes, and `finished`, which resolves
 * when the claims stopped.
 */
export function claimUntil(stores, done) {
  const seen = new Map();
  const failures = [];
  let next = 0;
  const finished = Promise.all(stores.map(async (store) => {
    const counter = new aio.Counter(store, "c");
    while (!done()) {
      const id = `run-${next++}`;
      // Retried until it succeeds or `done`: a test that fails leaves no loop running.
      while (!done()) {
        try {
          seen.set(id, { index: (await counter.claim(id)).index, at: Date.now() });
          break;
        } catch (error) {
          failures.push(error.code);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  }));
  return { seen, failures, finished };
}

/**
 * After a failover, claims every id of `seen` (from `claimUntil`) again on `counter`: each keeps
 * its index, unless its claim was lost with the old primary — then it gets a new one, and it must
 * have been acknowledged before `cut` (`cutName` says what happened then). Either way no two ids
 * end up with one index. Resolves to how many were lost.
 */
export async function claimAgain(counter, seen, cut, cutName) {
  const holders = new Map();
  let lost = 0;
  for (const [id, { index, at }] of seen) {
    const again = await counter.claim(id);
    if (again.isNew) {
      lost += 1;
      assert.ok(at < cut, `${id}, claimed ${cutName}, was lost`);
    } else {
      assert.equal(again.index, index, `${id} claimed again got another index`);
    }
    assert.ok(!holders.has(again.index), `${id} and ${holders.get(again.index)} hold index ${again.index}`);
    holders.set(again.index, id);
  }
  return lost;
}

/**
 * Four processes (aio_worker.mjs, its store named by `env`) take one key with runExclusive again
 * and again; one is SIGKILLed while it holds the lease. No two runs overlap, and the key is taken
 * again after the kill.
 */
export async function raceFourProcessesWithOneKilled(env) {
  const worker = new URL("./aio_worker.mjs", import.meta.url).pathname;
  const lines = [];
  const children = Array.from({ length: 4 }, () => spawn(process.execPath, [worker], { env: { ...process.env, ...env, RACEFREE_WORKER_MS: "2500" }, stdio: ["ignore", "pipe", "inherit"] }));
  let killed = null;
  const exits = children.map((child) => new Promise((resolve) => child.on("exit", resolve)));
  for (const child of children) {
    let buffered = "";
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        lines.push(line);
        // Once every process has run at least once, kill the next one that starts a run.
        if (killed === null && line.startsWith("start ") && new Set(lines.filter((l) => l.startsWith("start ")).map((l) => l.split(" ")[1])).size >= 2) {
          killed = { pid: Number(line.split(" ")[1]), at: Date.now() };
          process.kill(killed.pid, "SIGKILL");
        }
      }
    });
  }
  await Promise.all(exits);
  assert.ok(killed !== null, "no process was killed while it held the key");
  const runs = new Map();
  const intervals = [];
  for (const line of lines) {
    const [what, pid, at] = line.split(" ");
    if (what === "start") runs.set(pid, Number(at));
    if (what === "end") intervals.push([runs.get(pid), Number(at), pid]), runs.delete(pid);
  }
  intervals.push([runs.get(String(killed.pid)), killed.at, String(killed.pid)]); // its run ended with it
  intervals.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < intervals.length; i++) {
    assert.ok(intervals[i][0] >= intervals[i - 1][1], `runs overlap: ${JSON.stringify(intervals[i - 1])} and ${JSON.stringify(intervals[i])}`);
  }
  assert.ok(intervals.some(([start]) => start > killed.at), "nobody took the key after its holder was killed");
  assert.ok(intervals.length >= 6, `only ${intervals.length} runs`);
}

/**
 * Node (on `store`), Python and Rust (core/examples/interop.rs, from RACEFREE_RUST), the latter
 * two opening `url` (the same namespace), race one counter, one mark and see one lease.
 */
export async function raceThreeLanguages(store, url) {
  const python = process.env.RACEFREE_PYTHON;
  assert.ok(python, "RACEFREE_PYTHON names the Python with racefree installed (scripts/test.sh sets it)");
  const rust = process.env.RACEFREE_RUST;
  assert.ok(rust, "RACEFREE_RUST names core/examples/interop.rs built (scripts/test.sh sets it)");
  const counter = new aio.Counter(store, "shared");
  const lease = await new aio.StartLock(store, "tasks").tryStart("report", { ttl: 30_000 });
  const program = `
import racefree
store = racefree.open("${url}")
counter = racefree.Counter(store, "shared")
print([counter.next() for _ in range(50)])
print(racefree.EventGuard(store, "streams", ["started"]).mark("s", "started") is racefree.Mark.FIRST)
print(racefree.StartLock(store, "tasks").holder("report")[0])
`;
  const [ours, { stdout }, fromRust] = await Promise.all([
    Promise.all(Array.from({ length: 50 }, () => counter.next())),
    promisify(execFile)(python, ["-c", program], { encoding: "utf8" }),
    promisify(execFile)(rust, [url, "50"], { encoding: "utf8" }),
  ]);
  const rustOut = fromRust.stdout.trim().split("\n");
  const out = stdout.trim().split("\n");
  assert.deepEqual([...ours, ...JSON.parse(out[0]), ...JSON.parse(rustOut[0])].sort((a, b) => a - b), Array.from({ length: 150 }, (_, i) => i));
  assert.deepEqual([out[1], rustOut[1]].sort(), ["False", "True"], "one of Python and Rust marked first");
  assert.equal(await new aio.EventGuard(store, "streams", ["started"]).mark("s", "started"), "duplicate");
  assert.equal(Number(out[2]), lease.token, "Python sees the lease Node holds, with its token");
  assert.equal(Number(rustOut[2]), lease.token, "Rust sees it too");
}
