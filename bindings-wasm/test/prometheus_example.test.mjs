// examples/prometheus.mjs (prom-client, from the package's devDependencies as an application's
// would be): a scrape shows each handle's stats under racefree's metric names, moved by exactly
// what a scripted run did.
import assert from "node:assert/strict";
import { test } from "node:test";
import { join } from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

import { Cache, Counter, EventGuard, ManualClock, Records, StartLock, TaskCoordinator, open } from "racefree";

const clientsDir = process.env.RACEFREE_CLIENTS ?? process.cwd();
const { Registry } = createRequire(join(clientsDir, "package.json"))("prom-client");
const { registerRacefree } = await import(pathToFileURL(join(clientsDir, "examples", "prometheus.mjs")).href);

/** The sample lines of a scrape, without HELP and TYPE. */
const lines = (text) => text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));

test("the prom-client example shows every handle's stats under racefree's names", async () => {
  const clock = new ManualClock(1_000_000);
  const store = open("memory://", { clock });
  const counter = new Counter(store, "task:1");
  const lock = new StartLock(store, "tasks");
  const guard = new EventGuard(store, "streams", ["started", "ended"]);
  const records = new Records(store, "pods");
  const cache = new Cache();
  const registry = new Registry();
  registerRacefree(registry, { counters: { "task:1": counter }, locks: { tasks: lock }, guards: { streams: guard }, records: { pods: records }, caches: { reports: cache } });

  counter.claim("exec-a");
  counter.claim("exec-a");
  const lease = lock.tryStart("k", { ttl: 30_000 });
  assert.equal(lock.tryStart("k", { ttl: 30_000 }), null);
  lease.release();
  guard.mark("s", "started");
  guard.mark("s", "started");
  assert.throws(() => guard.mark("t", "ended"));
  records.put("p", 1);
  assert.throws(() => records.put("p", 2));
  assert.equal(await cache.getOrLoad("a", { ttl: 60_000 }, async () => 7), 7);
  assert.equal(await cache.getOrLoad("a", { ttl: 60_000 }, async () => 8), 7);

  const first = lines(await registry.metrics());
  for (const line of [
    'racefree_indexes_total{primitive="counter",backend="memory",outcome="new_claim"} 1',
    'racefree_indexes_total{primitive="counter",backend="memory",outcome="repeated_claim"} 1',
    'racefree_starts_total{primitive="start_lock",backend="memory",name="tasks",outcome="granted"} 1',
    'racefree_starts_total{primitive="start_lock",backend="memory",name="tasks",outcome="refused"} 1',
    'racefree_releases_total{primitive="start_lock",backend="memory",name="tasks",outcome="released"} 1',
    'racefree_leases_lost_total{primitive="start_lock",backend="memory",name="tasks",reason="not_owner"} 0',
    'racefree_marks_total{primitive="event_guard",backend="memory",name="streams",outcome="first"} 1',
    'racefree_marks_total{primitive="event_guard",backend="memory",name="streams",outcome="duplicate"} 1',
    'racefree_marks_total{primitive="event_guard",backend="memory",name="streams",outcome="out_of_order"} 1',
    'racefree_record_writes_total{primitive="records",backend="memory",name="pods",outcome="written"} 1',
    'racefree_record_writes_total{primitive="records",backend="memory",name="pods",outcome="conflict"} 1',
    'racefree_cache_lookups_total{primitive="cache",backend="memory",name="reports",outcome="hit"} 1',
    'racefree_cache_lookups_total{primitive="cache",backend="memory",name="reports",outcome="miss"} 1',
  ]) {
    assert.ok(first.includes(line), `${line} in\n${first.join("\n")}`);
  }
  // A second scrape shows the totals as they are now, not added again.
  lock.tryStart("k2", { ttl: 30_000 });
  const second = lines(await registry.metrics());
  assert.ok(second.includes('racefree_starts_total{primitive="start_lock",backend="memory",name="tasks",outcome="granted"} 2'), second.join("\n"));
  assert.ok(second.includes('racefree_marks_total{primitive="event_guard",backend="memory",name="streams",outcome="first"} 1'));
});

test("a lease lost by a coordinator's task counts one loss by its reason", async () => {
  const clock = new ManualClock(1_000_000);
  const store = open("memory://", { clock });
  const tasks = new TaskCoordinator(store, { name: "jobs", ttl: 1_000, renewEvery: 100, maxHold: 1_000, onError: () => {} });
  const registry = new Registry();
  registerRacefree(registry, { locks: { jobs: tasks.lock } });
  let aborted;
  assert.ok(await tasks.start("k", (holding) => new Promise((resolve) => {
    holding.signal.addEventListener("abort", () => { aborted = holding.signal.reason; resolve(); });
  })));
  while (aborted === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(aborted.reason, "max_hold_reached");
  const scrape = lines(await registry.metrics());
  assert.ok(scrape.includes('racefree_leases_lost_total{primitive="start_lock",backend="memory",name="jobs",reason="max_hold_reached"} 1'), scrape.join("\n"));
  assert.ok(scrape.includes('racefree_leases_lost_total{primitive="start_lock",backend="memory",name="jobs",reason="renewals_failed"} 0'));
});
