// What each bundled app checks, with whichever entry its bundler uses; the report goes into the
// page for scripts/bundler_test.sh to read back from the DOM.
export async function runChecks(racefree, entry) {
  const report = { passed: [], failed: [] };
  const check = async (name, body) => {
    try {
      const problems = await body();
      if (problems.length) report.failed.push(`${entry}: ${name}: ${problems.join("; ")}`);
      else report.passed.push(`${entry}: ${name}`);
    } catch (error) {
      report.failed.push(`${entry}: ${name}: ${error && error.stack ? error.stack : error}`);
    }
  };
  const store = racefree.open();
  await check("counter and claims", () => {
    const counter = new racefree.Counter(store, "task:1");
    const { index, isNew } = counter.claim("exec-a");
    return [counter.next() === 1 || "next", index === 0 || "index", isNew === true || "isNew"].filter((x) => x !== true);
  });
  await check("one starter of many", () => {
    const lock = new racefree.StartLock(store, "tasks");
    const leases = Array.from({ length: 50 }, () => lock.tryStart("k", { ttl: 1_000 })).filter(Boolean);
    return leases.length === 1 ? [] : [`${leases.length} leases`];
  });
  await check("a kept lease runs once", async () => {
    const lock = new racefree.StartLock(store, "kept");
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 5 }, () =>
        lock.runExclusive("k", { ttl: 300 }, async () => {
          most = Math.max(most, ++inside);
          await new Promise((resolve) => setTimeout(resolve, 5));
          inside--;
        }),
      ),
    );
    return most === 1 ? [] : [`${most} runs at once`];
  });
  await check("errors are their classes", () => {
    try {
      new racefree.Counter(store, "");
      return ["an empty key was accepted"];
    } catch (error) {
      return error instanceof racefree.InvalidKeyError && error instanceof Error && error.code === "invalid_key" ? [] : [String(error)];
    }
  });
  await check("events once, in order", () => {
    const guard = new racefree.EventGuard(store, "streams", ["started", "ended"]);
    const marks = [guard.mark("s", "started"), guard.mark("s", "ended"), guard.mark("s", "ended")];
    return JSON.stringify(marks) === JSON.stringify(["first", "first", "duplicate"]) ? [] : [JSON.stringify(marks)];
  });
  return report;
}

export function show(report) {
  document.getElementById("result").textContent = JSON.stringify(report);
}
