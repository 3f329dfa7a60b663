/**
 * A sweep of deadlines holds a timer only while one is set: an idle broker's sweeps wake it for nothing otherwise.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { DeadlineSweep } from "../src/runtime/deadline_sweep.ts";
import { stepWallClock, withinSeconds } from "./helpers/hand_clock.ts";

const timers = () => process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length;

test("a deadline sweep holds a timer only while a deadline is set, and none once stopped", async (t) => {
  const expired: string[] = [];
  const sweepDone = Promise.withResolvers<void>();
  const sweep = new DeadlineSweep<string>(20, (item) => {
    expired.push(item);
    // The timer is let go after the sweep's last expiry: look once the sweep has returned.
    setImmediate(() => sweepDone.resolve());
  });
  t.after(() => sweep.stop());
  // Each look counts the process's timers twice within one turn, so no other timer (another test's, on a runtime
  // that runs test files in one process) starts or ends between the two counts.
  const timersStartedBy = (change: () => void) => {
    const before = timers();
    change();
    return timers() - before;
  };

  assert.equal(timersStartedBy(() => sweep.start("a", 10)), 1, "the first deadline found a timer held already, or started none");
  assert.equal(timersStartedBy(() => sweep.start("b", 10)), 0, "a timer for every deadline");
  sweep.delete("b");
  await sweepDone.promise;
  assert.deepEqual(expired, ["a"]);
  assert.equal(timersStartedBy(() => sweep.start("c", 10_000)), 1, "the timer held on with no deadline left");
  assert.equal(timersStartedBy(() => sweep.stop()), -1, "stop() left the timer");
  assert.equal(timersStartedBy(() => sweep.start("d", 10)), 0, "a deadline set after stop() started a timer");
});

test("a deadline comes after its time though the wall clock was set back an hour meanwhile", async (t) => {
  const expired = Promise.withResolvers<string>();
  const sweep = new DeadlineSweep<string>(20, (item) => expired.resolve(item));
  t.after(() => sweep.stop());
  sweep.start("idle connection", 10);
  // A connection's deadline is a duration, not a time of day.
  stepWallClock(t, -3_600_000);
  assert.equal(await withinSeconds(t, expired.promise, "not expired"), "idle connection");
});
