// The JavaScript runner of the shared scenarios in tests/vectors/*.json.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { runScenario } from "./scenario_runner.mjs";
import * as racefree from "racefree";

const dir = process.env.RACEFREE_VECTORS;
assert.ok(dir, "RACEFREE_VECTORS must name the tests/vectors folder");
const files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

test("the five seed scenarios are there", () => assert.ok(files.length >= 5));

for (const file of files) {
  test(`scenario ${file}`, () => {
    const failures = runScenario(racefree, JSON.parse(readFileSync(join(dir, file), "utf8")));
    assert.deepEqual(failures, []);
  });
}
