// racefree's aio store on PostgreSQL through a pg Pool, against the pool's own raw round trips,
// all in one run on one server (started here on a free 127.0.0.1 port, stopped by its PID). Run
// after building: node bench/aio_postgres.mjs [n]. Prints op/s and the ratio of time per op to
// the baseline: target <= 1.2x a trivial prepared query (one round trip each).
import pg from "pg";

import { aio } from "../dist/esm/node.js";
import { rate, rates } from "./rate.mjs";
import { PostgresServer } from "../test/postgres_server.mjs";

const n = Number(process.argv[2] ?? 5_000);
const CONCURRENCY = [1, 8, 64];

const server = await new PostgresServer().start();
try {
  const pool = new pg.Pool({ connectionString: server.url(), max: 8 });
  pool.on("error", () => {}); // idle connections closed by the server's shutdown at the end
  const store = await aio.openPostgres(pool, { namespace: "bench" });
  const prepared = await aio.openPostgres(pool, { namespace: "bench", prepareStatements: true });
  await pool.query("CREATE TABLE IF NOT EXISTS bench_leases (k text PRIMARY KEY, token bigint NOT NULL)");
  const trivial = { name: "trivial", text: "SELECT $1::bigint", values: [1] };
  const NEXT = `INSERT INTO racefree_counters AS c VALUES ($1, $2, 1)
    ON CONFLICT (ns, counter) DO UPDATE SET next = c.next + 1 WHERE c.next < 9223372036854775807
    RETURNING c.next - 1`;

  let round = 0;
  const rows = () => {
    const tag = round++;
    const counter = new aio.Counter(store, `c${tag}`);
    const preparedCounter = new aio.Counter(prepared, `p${tag}`);
    const guard = new aio.EventGuard(store, `g${tag}`, ["ended"]);
    const lock = new aio.StartLock(store, `l${tag}`);
    // The statement `next` sends, sent raw by the pool: what is left is racefree's own cost.
    const rawNext = { text: NEXT, values: [Buffer.from("raw"), Buffer.from(`c${tag}`)] };
    return [
      ["next vs prepared SELECT", () => counter.next(), () => pool.query(trivial)],
      ["next vs its statement raw", () => counter.next(), () => pool.query(rawNext)],
      ["next prepared vs raw", () => preparedCounter.next(), () => pool.query(rawNext)],
      ["mark vs prepared SELECT", (i) => guard.mark(`s${i}`, "ended"), () => pool.query(trivial)],
      ["lease vs INSERT+DELETE", async (i) => (await lock.tryStart(`k${i}`, { ttl: 30_000 })).release(),
        async (i) => {
          await pool.query({ name: "take", text: "INSERT INTO bench_leases VALUES ($1, 1) ON CONFLICT DO NOTHING", values: [`${tag}:${i}`] });
          await pool.query({ name: "free", text: "DELETE FROM bench_leases WHERE k = $1", values: [`${tag}:${i}`] });
        }],
    ];
  };

  // Warm both paths (connections, statement caches, the JIT) before measuring.
  for (const [, ours, theirs] of rows()) {
    await rate(n, 8, ours);
    await rate(n, 8, theirs);
  }
  console.log(`racefree aio (pg ${(await import("pg/package.json", { with: { type: "json" } })).default.version}) vs the pool's raw queries, ${n} ops per cell in 5 rounds taking turns (best round), one server`);
  console.log(`${"operation".padEnd(26)} ${"callers".padStart(7)} ${"racefree op/s".padStart(14)} ${"baseline op/s".padStart(14)} ${"time ratio".padStart(10)}`);
  for (const concurrency of CONCURRENCY) {
    for (const [name, ours, theirs] of rows()) {
      const [oursRate, theirsRate] = await rates(n, concurrency, [ours, theirs]);
      console.log(`${name.padEnd(26)} ${String(concurrency).padStart(7)} ${oursRate.toFixed(0).padStart(14)} ${theirsRate.toFixed(0).padStart(14)} ${(theirsRate / oursRate).toFixed(2).padStart(9)}x`);
    }
  }
  await pool.end();
} finally {
  await server.stop();
}
