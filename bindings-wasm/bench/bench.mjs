// Each racefree operation against a pure-JS Map-based equivalent, measured in the same run, and
// each keyed one against its floor: a do-nothing wasm call taking the same arguments
// (`BenchFloor`; for `records.update`, one that calls the change adapter once, as the value's
// JSON round trip through the JS layer's adapter costs whatever a store does), with the wasm
// call itself (no JS layer) between them, so the table says where the time goes: crossing into
// wasm (floor), the core and its glue (wasm call − floor), the JS layer's checks and conversions
// (racefree − wasm call).
// Run after building: node bench/bench.mjs [n]
import { Counter, EventGuard, Records, StartLock, TaskCoordinator, open } from "../dist/esm/node.js";
import native from "../dist/node/racefree_wasm.js";
import { jsonText } from "../dist/esm/checks.js";

const n = Number(process.argv[2] ?? 200_000);
const ids = Array.from({ length: 1000 }, (_, i) => `exec-${i}`);

// The hand-rolled equivalents: plain Maps, check-then-act (fine in one JS thread, unsafe elsewhere).
const baselines = {
  counter_next() {
    const counters = new Map();
    return () => {
      const next = counters.get("task:1") ?? 0;
      counters.set("task:1", next + 1);
      return next;
    };
  },
  counter_claim() {
    const counters = new Map();
    const claims = new Map();
    let i = 0;
    return () => {
      const id = ids[i++ % 1000];
      let index = claims.get(id);
      if (index === undefined) {
        index = counters.get("task:1") ?? 0;
        counters.set("task:1", index + 1);
        claims.set(id, index);
      }
      return index;
    };
  },
  guard_mark() {
    const marked = new Map();
    let i = 0;
    return () => {
      const id = ids[i++ % 1000];
      if (marked.has(id)) return "duplicate";
      marked.set(id, Date.now() + 3_600_000);
      return "first";
    };
  },
  try_start_release() {
    const leases = new Map();
    let token = 0;
    return () => {
      const now = Date.now();
      const held = leases.get("task:1");
      if (held && held.deadline > now) return null;
      const lease = { token: ++token, deadline: now + 30_000 };
      leases.set("task:1", lease);
      if (leases.get("task:1")?.token === lease.token) leases.delete("task:1");
      return lease;
    };
  },
  records_update() {
    const records = new Map();
    return () => {
      const current = records.get("job") ?? { value: { count: 0 }, version: 0 };
      const value = { count: current.value.count + 1 };
      records.set("job", { value, version: current.version + 1 });
      return value;
    };
  },
};

const racefree = {
  counter_next() {
    const c = new Counter(open(), "task:1");
    return () => c.next();
  },
  counter_claim() {
    const c = new Counter(open(), "task:1");
    let i = 0;
    return () => c.claim(ids[i++ % 1000]);
  },
  guard_mark() {
    const g = new EventGuard(open(), "streams", ["ended"]);
    let i = 0;
    return () => g.mark(ids[i++ % 1000], "ended");
  },
  try_start_release() {
    const lock = new StartLock(open(), "tasks");
    return () => lock.tryStart("task:1", { ttl: 30_000 }).release();
  },
  records_update() {
    const r = new Records(open(), "status");
    return () => r.update("job", change);
  },
};

function measure(make) {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const op = make();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) op();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  return best;
}

// The same calls on the wasm module directly, and the do-nothing calls of the same shapes.
const reply = new Float64Array(1);
// `records.update`'s change, and the adapter the JS layer wraps it in: the value in and out as
// JSON text (parsed, changed, checked, serialised).
const change = (v) => ({ count: (v?.count ?? 0) + 1 });
const adapter = (current) => jsonText(change(current === null ? null : JSON.parse(current)));
const direct = {
  counter_next() {
    const c = new native.Counter(native.openStore("memory://"), "task:1");
    return () => c.next();
  },
  counter_claim() {
    const c = new native.Counter(native.openStore("memory://"), "task:1");
    let i = 0;
    return () => c.claim(ids[i++ % 1000]);
  },
  guard_mark() {
    const g = new native.EventGuard(native.openStore("memory://"), "streams", ["ended"]);
    let i = 0;
    return () => g.mark(ids[i++ % 1000], "ended");
  },
  try_start_release() {
    const lock = new native.StartLock(native.openStore("memory://"), "tasks");
    return () => lock.releaseToken("task:1", lock.tryGrant("task:1", 30_000, reply));
  },
  records_update() {
    const r = new native.Records(native.openStore("memory://"), "status");
    return () => r.update("job", adapter, undefined, undefined);
  },
};
// The floor calls that also look their key up in one map, and read the clock where the operation
// judges or sets a deadline: the least any store adds.
const looked = {
  counter_next() {
    const f = new native.BenchFloor();
    return () => f.noneLooked();
  },
  counter_claim() {
    const f = new native.BenchFloor();
    let i = 0;
    return () => f.oneLooked(ids[i++ % 1000]);
  },
  guard_mark() {
    const f = new native.BenchFloor();
    let i = 0;
    return () => f.twoLooked(ids[i++ % 1000], "ended");
  },
  try_start_release() {
    const f = new native.BenchFloor();
    return () => f.releaseLooked("task:1", f.grantLooked("task:1", 30_000, reply));
  },
};
const floors = {
  counter_next() {
    const f = new native.BenchFloor();
    return () => f.none();
  },
  counter_claim() {
    const f = new native.BenchFloor();
    let i = 0;
    return () => f.one(ids[i++ % 1000]);
  },
  guard_mark() {
    const f = new native.BenchFloor();
    let i = 0;
    return () => f.two(ids[i++ % 1000], "ended");
  },
  try_start_release() {
    const f = new native.BenchFloor();
    return () => f.release("task:1", f.grant("task:1", 30_000, reply));
  },
  records_update() {
    const f = new native.BenchFloor();
    return () => f.update("job", adapter);
  },
};

console.log(`node ${process.version}, n=${n}, best of 5, all in this process; ns/op`);
console.log("floor: a do-nothing wasm call with the same arguments (for records.update, calling its change adapter once: the value's JSON round trip); least store: the same call looking its key up in one map and reading the clock where a deadline is judged or set");
console.log(
  `${"operation".padEnd(18)} ${"Map".padStart(7)} ${"floor".padStart(7)} ${"least store".padStart(11)} ${"wasm call".padStart(10)} ${"racefree".padStart(9)} ${"vs floor".padStart(9)} ${"vs least".padStart(11)} ${"vs Map".padStart(7)}`,
);
const ratio = (a, b, width) => (Number.isNaN(b) ? "-" : `${(a / b).toFixed(2)}x`).padStart(width);
for (const name of Object.keys(baselines)) {
  const base = measure(baselines[name]);
  const floor = floors[name] ? measure(floors[name]) : NaN;
  const lookup = looked[name] ? measure(looked[name]) : NaN;
  const wasm = direct[name] ? measure(direct[name]) : NaN;
  const ours = measure(racefree[name]);
  const cell = (value, width) => (Number.isNaN(value) ? "-" : value.toFixed(1)).padStart(width);
  console.log(
    `${name.padEnd(18)} ${cell(base, 7)} ${cell(floor, 7)} ${cell(lookup, 11)} ${cell(wasm, 10)} ${cell(ours, 9)} ${ratio(ours, floor, 9)} ${ratio(ours, lookup, 11)} ${`${(ours / base).toFixed(1)}x`.padStart(7)}`,
  );
}

// Kept leases: the coordinator's start and finish of an empty task, and runExclusive, against a
// raw tryStart + release in the same async loop (target: <= 2x). The variants take turns, round
// by round, so a noisy stretch of the machine hits all of them.
const empty = async () => {};
const kept = {
  "tryStart + release (raw)": () => {
    const lock = new StartLock(open(), "tasks");
    return async (i) => lock.tryStart(ids[i % 1000], { ttl: 30_000 }).release();
  },
  "runExclusive (kept lease)": () => {
    const lock = new StartLock(open(), "tasks");
    return (i) => lock.runExclusive(ids[i % 1000], { ttl: 30_000 }, empty);
  },
  "coordinator start + wait": () => {
    const tasks = new TaskCoordinator(open(), { ttl: 30_000 });
    return async (i) => {
      await tasks.start(ids[i % 1000], empty);
      await tasks.wait(ids[i % 1000]);
    };
  },
};
const count = Math.max(1, Math.floor(n / 4));
const best = Object.fromEntries(Object.keys(kept).map((name) => [name, Infinity]));
for (let round = 0; round < 7; round++) {
  for (const [name, make] of Object.entries(kept)) {
    const op = make();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) await op(i);
    best[name] = Math.min(best[name], Number(process.hrtime.bigint() - t0) / count);
  }
}
console.log(`\n${"kept leases (best of 7)".padEnd(28)} ${"ns/op".padStart(9)} ${"vs raw".padStart(7)}`);
const raw = best["tryStart + release (raw)"];
for (const [name, ours] of Object.entries(best)) {
  console.log(`${name.padEnd(28)} ${ours.toFixed(0).padStart(9)} ${(ours / raw).toFixed(2).padStart(7)}`);
}
