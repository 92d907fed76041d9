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
