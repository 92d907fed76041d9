// The measurement both async benchmarks (aio.mjs, aio_postgres.mjs) make of every cell.

/** op/s of `op(i)` run `n` times by `concurrency` concurrent callers. */
export async function rate(n, concurrency, op) {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await op(i);
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return n / ((performance.now() - started) / 1000);
}

/**
 * The best op/s of each of `ops` over `rounds` rounds of `n / rounds` calls, the ops taking turns
 * within each round: a noisy stretch of a shared machine hits all of them, not the one that
 * happened to run then (sequential cells of one server moved 10-20% between runs).
 */
export async function rates(n, concurrency, ops, rounds = 5) {
  const best = ops.map(() => 0);
  let offset = 0;
  for (let round = 0; round < rounds; round++) {
    for (const [which, op] of ops.entries()) {
      const start = offset;
      best[which] = Math.max(best[which], await rate(Math.ceil(n / rounds), concurrency, (i) => op(start + i)));
    }
    offset += Math.ceil(n / rounds);
  }
  return best;
}
