// A CommonJS module requiring the package (checked under node16 and nodenext resolution): it gets
// the package's CommonJS build and declarations, so no TS1479.
import racefree = require("racefree");

const claim: racefree.Claim = new racefree.Counter(racefree.open(), "task:1").claim("exec-a");
export = claim;
