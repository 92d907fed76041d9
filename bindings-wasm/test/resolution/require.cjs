// require() of the installed package: its CommonJS build, with the same behaviour and errors.
const assert = require("node:assert/strict");
const racefree = require("racefree");
const store = racefree.open();
assert.deepEqual(new racefree.Counter(store, "task:1").claim("a"), { index: 0, isNew: true });
assert.throws(() => new racefree.Counter(store, ""), racefree.InvalidKeyError);
assert.equal(require("racefree/package.json").name, "racefree");
// require and import give the same module: one set of classes, one memory store.
import("racefree").then((imported) => {
  assert.equal(imported.Counter, racefree.Counter);
  assert.equal(imported.InvalidKeyError, racefree.InvalidKeyError);
  console.log("require('racefree'): ok, the same instance as import");
});
