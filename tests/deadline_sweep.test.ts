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

// Hermes's red team, stop 56: after a 10 s freeze a keep-alive connection was cut with the request its client sent
// during the freeze unread (timers run before I/O in a new loop turn), and the POST was lost.
test("a sweep that comes two periods late (a stall) expires nothing until its next look, after the I/O", async (t) => {
  const expired: string[] = [];
  const sweep = new DeadlineSweep<string>(50, (item) => expired.push(item));
  t.after(() => sweep.stop());
  sweep.start("idle", 100);
  const stalledUntil = performance.now() + 400;
  while (performance.now() < stalledUntil) {
    // The process is stalled: no timer, no I/O.
  }
  // A timer due after the sweep's: it runs in the same timers phase, after the sweep's late look.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(expired, [], "expired in the first look after the stall, before what arrived meanwhile was read");
  const start = performance.now();
  while (expired.length === 0 && performance.now() - start < 2000) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(expired, ["idle"], "never expired after the stall");
});
