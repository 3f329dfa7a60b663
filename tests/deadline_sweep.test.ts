/**
 * A sweep of deadlines holds a timer only while one is set: an idle broker's sweeps wake it for nothing otherwise.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { DeadlineSweep } from "../src/runtime/deadline_sweep.ts";

const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length;

test("a deadline sweep holds a timer only while a deadline is set, and none once stopped", async (t) => {
  const idle = timers();
  const expired: string[] = [];
  const sweepDone = Promise.withResolvers<void>();
  const sweep = new DeadlineSweep<string>(20, (item) => {
    expired.push(item);
    // The timer is let go after the sweep's last expiry: look once the sweep has returned.
    setImmediate(() => sweepDone.resolve());
  });
  t.after(() => sweep.stop());
  assert.equal(timers(), idle, "a timer held with no deadline set");

  sweep.start("a", 10);
  sweep.start("b", 10);
  assert.equal(timers(), idle + 1, "one timer for every deadline");
  sweep.delete("b");
  await sweepDone.promise;
  assert.deepEqual(expired, ["a"]);
  assert.equal(timers(), idle, "the timer held on with no deadline left");

  sweep.start("c", 10_000);
  assert.equal(timers(), idle + 1);
  sweep.stop();
  assert.equal(timers(), idle, "the timer held on after stop()");
  sweep.start("d", 10);
  assert.equal(timers(), idle, "a deadline set after stop() started a timer");
});
