// racefree's counts as Prometheus metrics with prom-client: every handle's `stats()`, read at each
// scrape, under the metric names and labels racefree uses in Rust and Python (README, "Metrics").
//
//   import { Registry } from "prom-client";
//   import { registerRacefree } from "./prometheus.mjs";
//
//   const registry = new Registry();
//   registerRacefree(registry, { backend: "redis", locks: { tasks }, guards: { streams } });
//   // serve `await registry.metrics()` on /metrics
//
// A handle counts what it did itself (its `stats()`), so register the handles the process keeps
// for its lifetime. JavaScript's stats have no `next` count (a counter's hot path) and no
// histograms; a lock's `not_owner` renewals and releases are one count there, so they are left out.
import client from "prom-client";

/** [metric, help, [[stats field, label, value]...]] for each primitive. */
const LAYOUT = {
  counters: [
    ["racefree_indexes_total", "Indexes a counter handed out, by outcome.", [
      ["newClaims", "outcome", "new_claim"], ["repeatedClaims", "outcome", "repeated_claim"]]],
  ],
  locks: [
    ["racefree_starts_total", "Lease grants asked of a start lock, by outcome.", [
      ["granted", "outcome", "granted"], ["contended", "outcome", "refused"]]],
    ["racefree_renewals_total", "Lease renewals, by outcome.", [["renewed", "outcome", "renewed"]]],
    ["racefree_releases_total", "Lease releases, by outcome.", [["released", "outcome", "released"]]],
    ["racefree_leases_lost_total", "Kept leases lost, by reason.", [
      ["lostNotOwner", "reason", "not_owner"], ["lostRenewalsFailed", "reason", "renewals_failed"],
      ["lostMaxHold", "reason", "max_hold_reached"]]],
  ],
  guards: [
    ["racefree_marks_total", "Events marked by a guard, by outcome.", [
      ["delivered", "outcome", "first"], ["duplicatesSuppressed", "outcome", "duplicate"],
      ["outOfOrder", "outcome", "out_of_order"]]],
  ],
  records: [
    ["racefree_record_writes_total", "Record writes, by outcome.", [
      ["writes", "outcome", "written"], ["conflicts", "outcome", "conflict"], ["staleTokens", "outcome", "stale_token"]]],
    ["racefree_record_retries_total", "Record updates that read again after a conflict.", [["retries", null, null]]],
  ],
  caches: [
    ["racefree_cache_lookups_total", "Cache lookups, by outcome.", [
      ["hits", "outcome", "hit"], ["loads", "outcome", "miss"], ["coalesced", "outcome", "coalesced"]]],
    ["racefree_cache_load_errors_total", "Cache loads that failed.", [["loadErrors", null, null]]],
    ["racefree_cache_expired_total", "Cache entries dropped because they expired.", [["expired", null, null]]],
  ],
};

const PRIMITIVE = { counters: "counter", locks: "start_lock", guards: "event_guard", records: "records", caches: "cache" };

/**
 * Registers racefree's counters on `registry`, read from the handles at each scrape.
 * @param {import("prom-client").Registry} registry
 * @param {{ backend?: string, counters?: Record<string, {stats(): object}>, locks?: Record<string, {stats(): object}>,
 *   guards?: Record<string, {stats(): object}>, records?: Record<string, {stats(): object}>,
 *   caches?: Record<string, {stats(): object}> }} handles each kind by the name its label shows
 *   (a counter's name is not shown: named by its key, it has no `name` label)
 */
export function registerRacefree(registry, handles) {
  const backend = handles.backend ?? "memory";
  const metrics = new Map();
  for (const [kind, layout] of Object.entries(LAYOUT)) {
    for (const [metric, help, fields] of layout) {
      const entry = metrics.get(metric) ?? { help, reads: [] };
      for (const [name, handle] of Object.entries(handles[kind] ?? {})) {
        for (const [field, label, value] of fields) {
          const labels = { primitive: PRIMITIVE[kind], backend };
          if (kind !== "counters") labels.name = name;
          if (label !== null) labels[label] = value;
          entry.reads.push(() => [labels, handle.stats()[field]]);
        }
      }
      metrics.set(metric, entry);
    }
  }
  for (const [metric, { help, reads }] of metrics) {
    if (reads.length === 0) continue;
    const labelNames = [...new Set(reads.flatMap((read) => Object.keys(read()[0])))];
    new client.Counter({
      name: metric,
      help,
      labelNames,
      registers: [registry],
      collect() {
        // Handles keep totals: the scrape shows them as they are (a counter of two handles with
        // the same labels adds them).
        this.reset();
        for (const read of reads) {
          const [labels, count] = read();
          this.inc(labels, count);
        }
      },
    });
  }
}
