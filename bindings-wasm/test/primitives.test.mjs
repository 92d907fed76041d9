import assert from "node:assert/strict";
import { test } from "node:test";

import * as racefree from "racefree";
import { Counter, EventGuard, ManualClock, Mark, Records, StartLock, open } from "racefree";

const fresh = () => {
  const clock = new ManualClock(1_000_000);
  return { clock, store: open("memory://", { clock }) };
};

test("counter: next, claim, indexOf, peek, set, reset", () => {
  const { store } = fresh();
  const c = new Counter(store, "task:1");
  assert.equal(c.key, "task:1");
  assert.deepEqual([c.peek(), c.next(), c.next()], [0, 0, 1]);
  assert.deepEqual(c.claim("a"), { index: 2, isNew: true });
  assert.deepEqual(c.claim("a"), { index: 2, isNew: false });
  const { index, isNew } = c.claim("b"); // the fields destructure
  assert.deepEqual([index, isNew], [3, true]);
  assert.equal(c.indexOf("a"), 2);
  assert.equal(c.indexOf("missing"), null);
  c.set(10);
  assert.equal(c.next(), 10);
  c.reset();
  assert.equal(c.indexOf("a"), null);
  assert.deepEqual(c.stats(), { newClaims: 2, repeatedClaims: 1 });
  assert.equal(store.stats().entries, 0);
});

test("counter: values past 2^53 - 1 are refused, not rounded", () => {
  const { store } = fresh();
  const c = new Counter(store, "big");
  c.set(Number.MAX_SAFE_INTEGER);
  assert.equal(c.next(), Number.MAX_SAFE_INTEGER);
  assert.throws(() => c.next(), { code: "invalid_argument" });
  assert.throws(() => c.set(2 ** 53), { code: "invalid_argument" });
  assert.throws(() => c.set(1.5), { code: "invalid_argument" });
  assert.throws(() => c.set(-1), { code: "invalid_argument" });
});

test("guard: ordered, once, retention", () => {
  const { store, clock } = fresh();
  const g = new EventGuard(store, "streams", ["started", "ended"], { retention: 60_000 });
  assert.throws(() => g.mark("s", "ended"), (e) => e instanceof racefree.OutOfOrderError && e.missing === "started");
  assert.equal(store.stats().entries, 0);
  assert.equal(g.mark("s", "started"), Mark.First);
  assert.equal(g.mark("s", "started"), Mark.Duplicate);
  assert.equal(g.lastMarked("s"), "started");
  assert.equal(g.mark("s", "ended"), "first");
  assert.deepEqual(g.stats(), { delivered: 2, duplicatesSuppressed: 1, outOfOrder: 1 });
  clock.advance(60_000);
  assert.equal(g.isMarked("s", "started"), false);
  store.sweep();
  assert.equal(store.stats().entries, 0);
  assert.equal(g.lastMarked("s"), null);
});

test("many async paths emitting `ended`: delivered once, never before `started`", async () => {
  const { store } = fresh();
  const guard = new EventGuard(store, "proxy", ["started", "ended"]);
  const delivered = [];
  const tick = () => new Promise((r) => setTimeout(r, Math.random() * 5));
  const emitEnded = async () => {
    for (;;) {
      await tick(); // each path reaches the emit at its own time
      try {
        if (guard.mark("stream-1", "ended") === Mark.First) delivered.push("ended");
        return;
      } catch (error) {
        assert.equal(error.code, "out_of_order");
      }
    }
  };
  const emitStarted = async () => {
    await new Promise((r) => setTimeout(r, 10)); // `started` is sent asynchronously and arrives late
    if (guard.mark("stream-1", "started") === Mark.First) delivered.push("started");
  };
  await Promise.all([...Array.from({ length: 20 }, emitEnded), emitStarted()]);
  assert.deepEqual(delivered, ["started", "ended"]);
  assert.ok(guard.stats().outOfOrder > 0, "no `ended` arrived early: the test did not exercise the race");
});

test("lock: one winner, expiry hands the key over with a larger token", () => {
  const { store, clock } = fresh();
  const lock = new StartLock(store, "tasks");
  const leases = Array.from({ length: 100 }, () => lock.tryStart("k", { ttl: 10_000 })).filter(Boolean);
  assert.equal(leases.length, 1);
  const [first] = leases;
  clock.advance(10_000);
  const second = lock.tryStart("k", { ttl: 10_000 });
  assert.ok(second.token > first.token);
  assert.throws(() => first.release(), (e) => e instanceof racefree.NotOwnerError && e.token === first.token);
  assert.throws(() => first.renew({ ttl: 1000 }), { code: "not_owner" });
  clock.advance(9_000);
  second.renew({ ttl: 10_000 });
  clock.advance(5_000);
  assert.deepEqual(lock.holder("k"), { token: second.token, deadlineMs: second.deadlineMs });
  assert.equal(second.timeLeftMs, 5_000);
  second.release();
  assert.equal(lock.isHeld("k"), false);
  assert.equal(store.stats().entries, 0);
});

test("lock: a lease keeps its deadline; bad renewals and second releases change nothing", () => {
  const { store, clock } = fresh();
  const lock = new StartLock(store, "tasks");
  const lease = lock.tryStart("k", { ttl: 1_000 });
  assert.equal(lease.deadlineMs, clock.nowMs() + 1_000);
  assert.equal(lease.key, "k");
  assert.throws(() => lease.renew({ ttl: 0 }), { code: "invalid_argument" });
  assert.throws(() => lease.renew({ ttl: "1s" }), TypeError);
  assert.equal(lease.deadlineMs, clock.nowMs() + 1_000);
  clock.advance(400);
  assert.equal(lease.timeLeftMs, 600);
  lease.renew({ ttl: 1_000 });
  assert.equal(lease.deadlineMs, clock.nowMs() + 1_000);
  assert.deepEqual(lock.holder("k"), { token: lease.token, deadlineMs: lease.deadlineMs });
  lease.release();
  assert.throws(() => lease.release(), { code: "not_owner" });
  assert.equal(lock.tryStart("k", { ttl: 1_000 }).token, lease.token + 1);
  assert.deepEqual(lock.stats(), { granted: 2, contended: 0, renewed: 1, released: 1, rejectedNotOwner: 1, lostNotOwner: 0, lostRenewalsFailed: 0, lostMaxHold: 0 });
});

test("lock: each grant keeps its own deadline, whatever was granted after it", () => {
  const { store, clock } = fresh();
  const [a, b] = [new StartLock(store, "a"), new StartLock(store, "b")];
  const short = a.tryStart("k", { ttl: 1_000 });
  const long = b.tryStart("k", { ttl: 5_000 });
  assert.equal(a.tryStart("k", { ttl: 9_000 }), null);
  assert.deepEqual([short.deadlineMs, long.deadlineMs], [clock.nowMs() + 1_000, clock.nowMs() + 5_000]);
  assert.deepEqual(a.holder("k"), { token: short.token, deadlineMs: short.deadlineMs });
});

test("hot calls: an error is thrown once and does not leak into the next call", () => {
  const { store } = fresh();
  const c = new Counter(store, "big");
  const guard = new EventGuard(store, "streams", ["started", "ended"]);
  c.set(Number.MAX_SAFE_INTEGER);
  c.next();
  assert.throws(() => c.next(), { code: "invalid_argument" });
  c.reset();
  assert.equal(c.next(), 0);
  assert.throws(() => guard.mark("s", "ended"), { code: "out_of_order" });
  assert.equal(guard.mark("s", "started"), Mark.First);
  assert.throws(() => c.claim(""), { code: "invalid_key" });
  assert.deepEqual(c.claim("a"), { index: 1, isNew: true });
});

test("lock: acquire waits, times out, aborts; runExclusive releases on settle", async () => {
  const store = open();
  const lock = new StartLock(store, "tasks");
  const held = lock.tryStart("k", { ttl: 30_000 });
  setTimeout(() => held.release(), 20);
  const next = await lock.acquire("k", { ttl: 30_000, timeout: 2_000 });
  assert.ok(next.token > held.token);
  await assert.rejects(lock.acquire("k", { ttl: 30_000, timeout: 30 }), (e) => e instanceof racefree.TimeoutError && e.waitedMs >= 30);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("user navigated away")), 20);
  await assert.rejects(lock.acquire("k", { ttl: 30_000, signal: controller.signal }), /navigated away/);
  next.release();
  assert.equal(await lock.runExclusive("k", { ttl: 30_000 }, async () => "done"), "done");
  assert.equal(lock.isHeld("k"), false);
  await assert.rejects(lock.runExclusive("k", { ttl: 30_000 }, async () => { throw new Error("task failed"); }), /task failed/);
  assert.equal(lock.isHeld("k"), false, "a rejected task kept its lease");
  assert.equal(store.stats().entries, 0);
});

test("records: compare-and-swap, update, fencing, JSON only", () => {
  const { store } = fresh();
  const r = new Records(store, "pods");
  assert.equal(r.get("p"), null);
  assert.equal(r.put("p", { phase: "Pending" }), 1);
  assert.throws(() => r.put("p", {}), (e) => e instanceof racefree.ConflictError && e.currentVersion === 1);
  assert.throws(() => r.put("q", {}, { expectedVersion: 1 }), (e) => e.currentVersion === null);
  assert.deepEqual(r.update("p", (v) => ({ ...v, phase: "Running", ready: true })), {
    value: { phase: "Running", ready: true },
    version: 2,
  });
  assert.equal(r.put("p", "by-7", { expectedVersion: 2, fencingToken: 7 }), 3);
  assert.throws(() => r.put("p", "by-5", { expectedVersion: 3, fencingToken: 5 }), (e) => e instanceof racefree.StaleTokenError && e.latest === 7);
  assert.throws(() => r.update("p", () => { throw new RangeError("change failed"); }), RangeError);
  assert.equal(r.get("p").version, 3);
  for (const bad of [undefined, () => 1, Symbol("s"), 10n, NaN, Infinity, new Map(), new Date(0), { nested: { f: undefined } }]) {
    assert.throws(() => r.put("bad", bad), (e) => e instanceof TypeError || e.code === "invalid_argument", String(bad));
  }
  const loop = [];
  loop.push(loop);
  assert.throws(() => r.put("bad", loop), { code: "invalid_argument" });
  assert.equal(r.get("bad"), null);
  assert.equal(r.delete("p", { expectedVersion: 3 }), true);
});

test("records: handles of one space see each other's writes; every read is a fresh value", () => {
  const { store } = fresh();
  const [a, b] = [new Records(store, "jobs"), new Records(store, "jobs")];
  a.put("j", { n: 1 });
  assert.deepEqual(a.get("j"), { value: { n: 1 }, version: 1 });
  b.update("j", (v) => ({ n: v.n + 1 }));
  assert.deepEqual(a.get("j"), { value: { n: 2 }, version: 2 });
  assert.deepEqual(a.update("j", (v) => ({ n: v.n * 10 })), { value: { n: 20 }, version: 3 });
  assert.deepEqual(b.get("j").value, { n: 20 });
  // Deleted and made again by the other handle: a new version, a new value.
  assert.equal(b.delete("j"), true);
  assert.equal(a.get("j"), null);
  assert.equal(b.put("j", { n: 5 }), 4);
  assert.deepEqual(a.get("j"), { value: { n: 5 }, version: 4 });
  // A read is the caller's to change: the next one is unaffected.
  a.get("j").value.n = 99;
  a.update("j", (v) => { v.extra = true; return v; }).value.n = 98;
  assert.deepEqual(a.get("j").value, { n: 5, extra: true });
  // A write inside `change` to the same record is a conflict the update retries on a re-read.
  let calls = 0;
  const updated = a.update("j", (v) => {
    if (calls++ === 0) b.put("j", { n: 7 }, { expectedVersion: 5 });
    return { n: v.n + 1 };
  });
  assert.deepEqual(updated, { value: { n: 8 }, version: 7 });
  assert.equal(a.stats().retries, 1);
  // The result is what the store holds, for values too large to keep beside it as well.
  const big = { text: "x".repeat(100_000), list: [1.5, -2, "é", null, [true]] };
  const written = a.update("big", () => big);
  assert.ok(written.value === big && written.version === 4, "above every version the space deleted");
  assert.deepEqual(b.get("big"), written);
  // Keys come back sorted, as every language and backend reads them, whoever wrote or read first.
  assert.deepEqual([a, b, a].map((r) => Object.keys(r.get("big").value)), [["list", "text"], ["list", "text"], ["list", "text"]]);
  assert.throws(() => a.update("j", () => [1, , 3]), { code: "invalid_argument" }); // eslint-disable-line no-sparse-arrays
  assert.equal(b.get("j").version, 7);
});

test("cache: concurrent callers load once; errors reach waiters and are not cached", async () => {
  const cache = new racefree.Cache({ maxEntries: 10 });
  let loads = 0;
  const load = async () => {
    loads += 1;
    await new Promise((r) => setTimeout(r, 20));
    return ["engine-a"];
  };
  const values = await Promise.all(Array.from({ length: 32 }, () => cache.getOrLoad("engines", { ttl: 2_000 }, load)));
  assert.equal(loads, 1);
  assert.ok(values.every((v) => v === values[0]));
  const failing = async () => {
    await new Promise((r) => setTimeout(r, 10));
    throw new Error("orchestrator down");
  };
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => cache.getOrLoad("x", { ttl: 2_000 }, failing)));
  assert.ok(results.every((r) => r.status === "rejected" && r.reason.message === "orchestrator down"));
  assert.equal(cache.stats().loadErrors, 1);
  assert.equal(await cache.getOrLoad("x", { ttl: 2_000 }, () => "back"), "back");
  const engines = cache.wrap(async (region) => { loads += 1; return [region]; }, { ttl: 2_000 });
  assert.deepEqual(await Promise.all([engines("eu"), engines("eu")]), [["eu"], ["eu"]]);
  assert.equal(loads, 2);
});

test("cache: TTL by the injected clock", async () => {
  const clock = new ManualClock(0);
  const cache = new racefree.Cache({ clock });
  let n = 0;
  const next = () => n++;
  assert.equal(await cache.getOrLoad("k", { ttl: 2_000 }, next), 0);
  clock.advance(1_999);
  assert.equal(await cache.getOrLoad("k", { ttl: 2_000 }, next), 0);
  clock.advance(1);
  assert.equal(await cache.getOrLoad("k", { ttl: 2_000 }, next), 1);
});

test("execution ids are sortable ULIDs", () => {
  const ids = Array.from({ length: 1000 }, racefree.newExecutionId);
  assert.ok(ids.every((id) => id.length === 26));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(new Set(ids).size, ids.length);
});
