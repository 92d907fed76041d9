// Runs one shared scenario against a racefree module; returns the mismatches (empty when all
// steps give the expected results). Shared by the Node tests and the browser page.

// The values JSON cannot spell (see tests/vectors/README.md).
const SPECIAL = {
  none: () => null,
  undefined: () => undefined,
  instance: () => new Map(),
  set: () => new Set([1]),
  function: () => () => 1,
  circular: () => {
    const items = [];
    items.push(items);
    return items;
  },
  string: () => "5",
  lone_surrogate: () => "\uDCFF",
  NaN: () => NaN,
  sparse_array: () => [1, , 3], // eslint-disable-line no-sparse-arrays
  Infinity: () => Infinity,
};

function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if ("$repeat" in value) return value.$repeat[0].repeat(value.$repeat[1]);
    if ("$" in value) {
      if (!(value.$ in SPECIAL)) throw new Error(`no JS value for ${value.$}`);
      return SPECIAL[value.$]();
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

/** Steps for other languages only are counted here, across scenarios. */
export const skipped = { steps: 0 };

/** Where these steps run: "js" everywhere, "node" in Node too (its shared stores). */
const HERE = globalThis.process?.versions?.node ? ["js", "node"] : ["js"];

/** A client `openRedis` takes that sends nothing: the store's options are checked first. */
const idleRedisClient = { sendCommand: () => new Promise(() => {}), duplicate: () => idleRedisClient };

/** `store.open_redis`: opens a store on `idleRedisClient` with the step's options. */
const openRedisWith = (aio, s) => {
  aio.openRedis(idleRedisClient, { replicas: s.replicas, replicasTimeoutMs: s.replicas_timeout_ms });
  return null;
};

export function runScenario(racefree, scenario) {
  const clock = new racefree.ManualClock(1_000_000);
  const store = racefree.open("memory://", { clock });
  const leases = new Map();
  const guard = (s) => new racefree.EventGuard(store, s.guard, s.events, "retention_ms" in s ? { retention: s.retention_ms } : undefined);
  const ops = {
    "clock.advance": (s) => clock.advance(s.ms),
    "store.sweep": () => store.sweep(),
    "store.entries": () => store.stats().entries,
    "counter.next": (s) => new racefree.Counter(store, s.counter).next(),
    "counter.peek": (s) => new racefree.Counter(store, s.counter).peek(),
    "counter.claim": (s) => {
      const { index, isNew } = new racefree.Counter(store, s.counter).claim(s.id);
      return { index, is_new: isNew };
    },
    "counter.index_of": (s) => new racefree.Counter(store, s.counter).indexOf(s.id),
    "counter.set": (s) => new racefree.Counter(store, s.counter).set(s.value) ?? null,
    "counter.reset": (s) => new racefree.Counter(store, s.counter).reset() ?? null,
    "guard.mark": (s) => guard(s).mark(s.stream, s.event),
    "guard.is_marked": (s) => guard(s).isMarked(s.stream, s.event),
    "guard.forget": (s) => guard(s).forget(s.stream),
    "lock.try_start": (s) => {
      const lease = new racefree.StartLock(store, s.lock).tryStart(s.key, { ttl: s.ttl_ms });
      if (lease === null) return null;
      if (s.save) leases.set(s.save, lease);
      return { token: lease.token };
    },
    "lock.is_held": (s) => new racefree.StartLock(store, s.lock).isHeld(s.key),
    "lease.renew": (s) => leases.get(s.lease).renew({ ttl: s.ttl_ms }) ?? null,
    "lease.release": (s) => leases.get(s.lease).release() ?? null,
    "keeper.options": (s) => {
      new racefree.TaskCoordinator(store, { name: s.lock, ttl: s.ttl_ms, renewEvery: s.renew_every_ms, maxHold: s.max_hold_ms });
      return null;
    },
    "store.open_redis": (s) => openRedisWith(racefree.aio, s),
    "records.get": (s) => new racefree.Records(store, s.space).get(s.key),
    "records.put": (s) =>
      new racefree.Records(store, s.space).put(s.key, s.value, { expectedVersion: s.expected_version, fencingToken: s.fencing_token }),
    "records.update": (s) =>
      new racefree.Records(store, s.space).update(s.key, (current) => ({ ...(current ?? {}), ...s.set }), { fencingToken: s.fencing_token }),
    "records.delete": (s) => new racefree.Records(store, s.space).delete(s.key, { expectedVersion: s.expected_version }),
  };
  const failures = [];
  scenario.steps.forEach((raw, i) => {
    const step = stepToRun(scenario, raw, i, ops, failures);
    if (step === null) return;
    try {
      judge(step, { result: ops[step.op](step) }, failures);
    } catch (error) {
      judge(step, { error }, failures);
    }
  });
  return failures;
}

/**
 * One scenario on the shared store `open(clock)` makes (or resolves to) with the scenario's
 * manual clock; resolves to the failures.
 */
export async function runScenarioOnShared(racefree, scenario, open) {
  const { aio } = racefree;
  const clock = new racefree.ManualClock(1_000_000);
  const store = await open(clock);
  const leases = new Map();
  const tokens = [];
  const guard = (s) => new aio.EventGuard(store, s.guard, s.events, "retention_ms" in s ? { retention: s.retention_ms } : undefined);
  const nullish = async (promise) => (await promise) ?? null;
  const ops = {
    "clock.advance": (s) => clock.advance(s.ms),
    "store.sweep": () => store.sweep(),
    "store.entries": async () => (await store.stats()).entries,
    "counter.next": (s) => new aio.Counter(store, s.counter).next(),
    "counter.peek": (s) => new aio.Counter(store, s.counter).peek(),
    "counter.claim": async (s) => {
      const { index, isNew } = await new aio.Counter(store, s.counter).claim(s.id);
      return { index, is_new: isNew };
    },
    "counter.index_of": (s) => new aio.Counter(store, s.counter).indexOf(s.id),
    "counter.set": (s) => nullish(new aio.Counter(store, s.counter).set(s.value)),
    "counter.reset": (s) => nullish(new aio.Counter(store, s.counter).reset()),
    "guard.mark": (s) => guard(s).mark(s.stream, s.event),
    "guard.is_marked": (s) => guard(s).isMarked(s.stream, s.event),
    "guard.forget": (s) => guard(s).forget(s.stream),
    "lock.try_start": async (s) => {
      const lease = await new aio.StartLock(store, s.lock).tryStart(s.key, { ttl: s.ttl_ms });
      if (lease === null) return null;
      if (s.save) leases.set(s.save, lease);
      return { token: tokenRank(tokens, lease.token) };
    },
    "lock.is_held": (s) => new aio.StartLock(store, s.lock).isHeld(s.key),
    "lease.renew": (s) => nullish(leases.get(s.lease).renew({ ttl: s.ttl_ms })),
    "lease.release": (s) => nullish(leases.get(s.lease).release()),
    "keeper.options": (s) => {
      new aio.TaskCoordinator(store, { name: s.lock, ttl: s.ttl_ms, renewEvery: s.renew_every_ms, maxHold: s.max_hold_ms });
      return null;
    },
    "store.open_redis": (s) => openRedisWith(aio, s),
    "records.get": (s) => new aio.Records(store, s.space).get(s.key),
    "records.put": (s) =>
      new aio.Records(store, s.space).put(s.key, s.value, { expectedVersion: s.expected_version, fencingToken: s.fencing_token }),
    "records.update": (s) =>
      new aio.Records(store, s.space).update(s.key, (current) => ({ ...(current ?? {}), ...s.set }), { fencingToken: s.fencing_token }),
    "records.delete": (s) => new aio.Records(store, s.space).delete(s.key, { expectedVersion: s.expected_version }),
  };
  const failures = [];
  for (const [i, raw] of scenario.steps.entries()) {
    const step = stepToRun(scenario, raw, i, ops, failures);
    if (step === null) continue;
    try {
      judge(step, { result: await ops[step.op](step) }, failures);
    } catch (error) {
      judge(step, { error }, failures);
    }
  }
  return failures;
}

/**
 * A token as the scenarios number them: its rank among the tokens granted so far (a shared store
 * issues strictly increasing tokens that follow the server's clock, not 1, 2, 3). A token not
 * above every earlier one is returned as itself, which no rank equals.
 */
function tokenRank(tokens, token) {
  if (tokens.length > 0 && token <= tokens[tokens.length - 1]) return `${token}, not above ${tokens.join(", ")}`;
  tokens.push(token);
  return tokens.length;
}

/** The decoded step, with where it is for messages; `null` when it is skipped or unknown. */
function stepToRun(scenario, raw, i, ops, failures) {
  if (raw.only && !raw.only.some((where) => HERE.includes(where))) {
    skipped.steps += 1;
    return null;
  }
  const step = decode(raw);
  step.where = `${scenario.name} step ${i} (${step.op})`;
  if (!ops[step.op]) {
    failures.push(`${step.where}: unknown op`);
    return null;
  }
  return step;
}

/** Compares a step's outcome (`{ result }` or `{ error }`) with what the scenario expects. */
function judge(step, outcome, failures) {
  const where = step.where;
  if ("error" in outcome) {
    const { error } = outcome;
    if (!("error" in step)) return failures.push(`${where}: unexpected ${error.name}: ${error.message}`);
    if (!(error instanceof Error)) return failures.push(`${where}: threw a non-Error ${String(error)}`);
    if (step.error === "type_error") {
      if (!(error instanceof TypeError) || error.code !== undefined) {
        failures.push(`${where}: expected a TypeError, got ${error.name} ${error.code}`);
      }
      return;
    }
    if (error.code !== step.error) failures.push(`${where}: expected ${step.error}, got ${error.code}`);
    return;
  }
  const { result } = outcome;
  if ("error" in step) return failures.push(`${where}: expected error ${step.error}, got ${JSON.stringify(result)}`);
  if ("expect" in step && !sameJson(result, step.expect)) {
    failures.push(`${where}: expected ${JSON.stringify(step.expect)}, got ${JSON.stringify(result)}`);
  }
}

function sameJson(a, b) {
  return JSON.stringify(sortKeys(a ?? null)) === JSON.stringify(sortKeys(b ?? null));
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}
