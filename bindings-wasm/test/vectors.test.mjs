// The JavaScript runner of the shared scenarios in tests/vectors/*.json.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { runScenario, skipped } from "./scenario_runner.mjs";
import * as racefree from "racefree";

const dir = process.env.RACEFREE_VECTORS;
assert.ok(dir, "RACEFREE_VECTORS must name the tests/vectors folder");
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

// The five seed scenarios and the two bad-input files, at least: a runner that finds fewer is
// reading the wrong folder.
const EXPECTED = [
  "bad_input.json",
  "bad_input_matrix.json",
  "controller_status_writes.json",
  "duplicate_task_start.json",
  "stream_lifecycle_events.json",
  "task_engine_indexes.json",
];

test("every shared scenario is there", () => {
  assert.deepEqual(EXPECTED.filter((name) => !files.includes(name)), []);
});

for (const file of files) {
  test(`scenario ${file}`, () => {
    const failures = runScenario(racefree, JSON.parse(readFileSync(join(dir, file), "utf8")));
    assert.deepEqual(failures, []);
  });
}

test("the report: steps skipped because they are only for other languages", (t) => {
  const onlyElsewhere = files
    .flatMap((file) => JSON.parse(readFileSync(join(dir, file), "utf8")).steps)
    .filter((step) => step.only && !step.only.includes("js")).length;
  t.diagnostic(`${skipped.steps} steps only for other languages, skipped`);
  assert.equal(skipped.steps, onlyElsewhere);
});
