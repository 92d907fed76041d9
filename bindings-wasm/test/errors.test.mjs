import assert from "node:assert/strict";
import { test } from "node:test";

import * as racefree from "racefree";
import { Counter, EventGuard, ManualClock, Records, StartLock, open } from "racefree";

test("every core error code has an Error class", () => {
  assert.deepEqual(Object.keys(racefree.ERRORS_BY_CODE).sort(), racefree.errorCodes().sort());
  for (const [code, cls] of Object.entries(racefree.ERRORS_BY_CODE)) {
    assert.ok(cls.prototype instanceof racefree.RacefreeError && cls.prototype instanceof Error);
    assert.equal(cls.prototype.code, code);
  }
});

test("every code is thrown by a real call as a real Error with name and code", async () => {
  const clock = new ManualClock(0);
  const store = open("memory://", { clock });
  const lock = new StartLock(store, "l");
  const lease = lock.tryStart("k", { ttl: 1000 });
  const records = new Records(store, "r");
  records.put("k", 1, { fencingToken: 5 });
  const thrown = {};
  const capture = async (call) => {
    try {
      await call();
    } catch (error) {
      assert.ok(error instanceof Error, `not an Error: ${error}`);
      assert.equal(typeof error.code, "string");
      assert.equal(error.name, racefree.ERRORS_BY_CODE[error.code].name);
      assert.ok(error.stack, "no stack");
      thrown[error.code] = error;
      return;
    }
    assert.fail("nothing thrown");
  };
  await capture(() => new Counter(store, ""));
  await capture(() => lock.tryStart("k", { ttl: 0 }));
  await capture(() => records.put("k", 2));
  await capture(() => records.put("k", 2, { expectedVersion: 1, fencingToken: 1 }));
  await capture(() => new EventGuard(store, "g", ["a", "b"]).mark("s", "b"));
  await capture(() => lock.acquire("k", { ttl: 1000, timeout: 5 }));
  await capture(() => open("redis://127.0.0.1:6379/0"));
  await capture(() => new Counter(open("memory://?max_keys=1"), "a").claim("x"));
  // Held past its max hold: lost, whatever the (hand-moved) store clock says.
  await capture(() => lock.runExclusive("kept", { ttl: 30, maxHold: 40 }, ({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)))));
  clock.advance(2000);
  await capture(() => lease.release());
  // corrupt_data is a remote store's (a value racefree could not have written): the memory
  // store, the only one here, holds nothing it did not write.
  const remoteOnly = ["corrupt_data"];
  assert.deepEqual(Object.keys(thrown).sort(), racefree.errorCodes().filter((code) => !remoteOnly.includes(code)).sort());
  assert.equal(thrown.capacity_exceeded.maxKeys, 1);
  assert.equal(thrown.lease_lost.reason, "max_hold_reached");
  assert.equal(thrown.lease_lost.key, "kept");
  assert.equal(thrown.lease_lost.lastError, null);
});

test("wrong types are TypeErrors; bad values are typed errors; nothing is recorded", () => {
  const store = open();
  const lock = new StartLock(store, "tasks");
  for (const key of [undefined, null, 5, NaN, {}, ["k"], Symbol("k")]) {
    assert.throws(() => new Counter(store, key), TypeError);
    assert.throws(() => lock.tryStart(key, { ttl: 1000 }), TypeError);
  }
  for (const key of ["", "k".repeat(racefree.MAX_KEY_BYTES + 1), "\ud800"]) {
    assert.throws(() => new Counter(store, key), racefree.InvalidKeyError);
  }
  assert.throws(() => new Counter(store, "é".repeat(racefree.MAX_KEY_BYTES / 2 + 1)), racefree.InvalidKeyError, "the bound is in UTF-8 bytes");
  // maxAttempts past 32 bits is refused, never clamped (or wrapped).
  const attempts = new Records(store, "attempts");
  assert.throws(() => attempts.update("k", () => 1, { maxAttempts: 2 ** 32 }), racefree.InvalidArgumentError);
  assert.equal(attempts.get("k"), null, "nothing was written");
  for (const ttl of [0, -1, NaN, Infinity, 1e20, 0.5]) {
    assert.throws(() => lock.tryStart("k", { ttl }), racefree.InvalidArgumentError, `ttl ${ttl}`);
  }
  for (const ttl of [undefined, "30", {}, null]) {
    assert.throws(() => lock.tryStart("k", { ttl }), TypeError);
  }
  assert.throws(() => lock.tryStart("k"), TypeError);
  assert.throws(() => lock.tryStart("k", 1000), TypeError);
  assert.throws(() => new Counter({}, "k"), TypeError);
  assert.throws(() => new EventGuard(store, "g", "started"), TypeError);
  assert.throws(() => new EventGuard(store, "g", [1]), TypeError);
  // A change whose result JSON cannot hold is a TypeError (an Error), and nothing is written.
  const records = new Records(store, "r");
  for (const result of [undefined, () => 1, new Map(), NaN]) {
    assert.throws(() => records.update("k", () => result), (e) => e instanceof Error, String(result));
  }
  assert.equal(store.stats().entries, 0);
});
