// The task-engine SDK case: non-blocking triggers return {executionId, index} at once; the index
// must be the one getExecution reports after completion, and all indexes are exactly 0..N+M-1.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Counter, newExecutionId, open } from "racefree";

class TaskEngine {
  constructor(store, task) {
    this.executions = new Counter(store, `task:${task}`);
    this.results = new Map();
  }

  async #run(executionId) {
    await new Promise((r) => setTimeout(r, Math.random() * 10));
    // Completion asks for the index again: it must not change.
    const { index } = this.executions.claim(executionId);
    this.results.set(executionId, { executionId, index, status: "done" });
  }

  /** Non-blocking: returns at once with the pre-assigned index. */
  trigger() {
    const executionId = newExecutionId();
    const { index } = this.executions.claim(executionId);
    this.pending = (this.pending ?? []).concat(this.#run(executionId));
    return { executionId, index };
  }

  /** Blocking: returns once the execution completes. */
  async execute() {
    const executionId = newExecutionId();
    await new Promise((r) => setTimeout(r, Math.random() * 10));
    this.executions.claim(executionId);
    await this.#run(executionId);
    return this.results.get(executionId);
  }

  getExecution(executionId) {
    return this.results.get(executionId);
  }
}

test("interleaved non-blocking and blocking executions get stable, unique indexes", async () => {
  const engine = new TaskEngine(open(), "42");
  const N = 200;
  const M = 100;
  const calls = [];
  for (let i = 0; i < N + M; i++) {
    calls.push(i % 3 === 2 ? engine.execute() : Promise.resolve(engine.trigger()));
  }
  const returned = await Promise.all(calls);
  await Promise.all(engine.pending);
  for (const { executionId, index } of returned) {
    assert.equal(engine.getExecution(executionId).index, index, "index changed between trigger and completion");
  }
  const indexes = returned.map((r) => r.index).sort((a, b) => a - b);
  assert.deepEqual(indexes, Array.from({ length: N + M }, (_, i) => i));
});
