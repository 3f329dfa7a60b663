import assert from "node:assert/strict";
import { test } from "node:test";
import { RecentWrites } from "../src/broker/recent_writes.ts";
import { parseAgentName } from "../src/message.ts";

const WINDOW_MS = 180_000;
const hermes = parseAgentName("hermes", "agent");

test("RecentWrites.replayAfter() starts just before the first message written in the window before the stream ended", () => {
  const writes = new RecentWrites(WINDOW_MS);
  writes.opened(hermes);
  writes.wrote(hermes, 1, 0);
  writes.wrote(hermes, 5, 100_000);
  writes.wrote(hermes, 9, 200_000);
  writes.ended(hermes, 250_000);
  // The window reaches back to 70 s: the write at 0 s is out of it, the one at 100 s is the first in it.
  assert.equal(writes.replayAfter(hermes, 250_000), 4);
  // However late the client comes back, the window counts from the end of the stream that may have lost them.
  assert.equal(writes.replayAfter(hermes, 3_600_000), 4);
});

test("RecentWrites.replayAfter() counts back from now while the last stream is still open (it is being replaced)", () => {
  const writes = new RecentWrites(WINDOW_MS);
  writes.opened(hermes);
  writes.wrote(hermes, 3, 0);
  writes.wrote(hermes, 7, 150_000);
  assert.equal(writes.replayAfter(hermes, 160_000), 2);
  assert.equal(writes.replayAfter(hermes, 200_000), 6);
  assert.equal(writes.replayAfter(hermes, 400_000), undefined);
});

test("RecentWrites.replayAfter() covers a replay's older ids written later, and forget() drops the agent's log", () => {
  const writes = new RecentWrites(WINDOW_MS);
  writes.opened(hermes);
  writes.wrote(hermes, 20, 1000);
  writes.ended(hermes, 2000);
  writes.opened(hermes);
  // The resumed stream writes 11 again, after 20 was written.
  writes.wrote(hermes, 11, 3000);
  assert.equal(writes.replayAfter(hermes, 4000), 10);
  writes.forget(hermes);
  assert.equal(writes.replayAfter(hermes, 4000), undefined);
});

test("RecentWrites keeps one entry a second and nothing with a window of 0", () => {
  const writes = new RecentWrites(WINDOW_MS);
  writes.wrote(hermes, 1, 1000);
  writes.wrote(hermes, 2, 1500);
  writes.ended(hermes, 1600);
  assert.equal(writes.replayAfter(hermes, 1600), 0);
  const off = new RecentWrites(0);
  off.wrote(hermes, 1, 1000);
  off.ended(hermes, 1000);
  assert.equal(off.replayAfter(hermes, 1000), undefined);
});

test("RecentWrites.restore() starts a resume at the kept point after a restart, until the next stream's window passes it", () => {
  const writes = new RecentWrites(WINDOW_MS);
  writes.restore(hermes, 41, 1_000_000);
  assert.equal(writes.replayAfter(hermes, 5_000_000), 41);
  writes.opened(hermes);
  assert.equal(writes.wrote(hermes, 42, 5_000_000), true);
  assert.equal(writes.wrote(hermes, 43, 5_000_500), false, "one entry a second");
  assert.equal(writes.replayAfter(hermes, 5_001_000), 41);
  writes.wrote(hermes, 50, 5_100_000);
  assert.equal(writes.replayAfter(hermes, 5_190_000), 49);
});
