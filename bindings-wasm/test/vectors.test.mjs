// The JavaScript runner of the shared scenarios in tests/vectors/*.json.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { runScenario, skipped } from "./scenario_runner.mjs";
import * as racefree from "racefree";

const dir = process.env.RACEFREE_VECTORS;
assert.ok(dir, "RACEFREE_VECTORS must name the tests/vectors folder");
// The scenarios to run are the ones index.json names; the folder must hold exactly those.
const files = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")).scenarios;

test("the folder holds exactly the scenarios index.json names", () => {
  const found = readdirSync(dir).filter((f) => f.endsWith(".json") && f !== "index.json").sort();
  assert.deepEqual(found, [...files].sort());
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
    .filter((step) => step.only && !step.only.includes("js") && !step.only.includes("node")).length;
  t.diagnostic(`${skipped.steps} steps only for other languages, skipped`);
  assert.equal(skipped.steps, onlyElsewhere);
});
