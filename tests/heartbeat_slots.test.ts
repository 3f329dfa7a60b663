import assert from "node:assert/strict";
import { test } from "node:test";
import { HeartbeatSlots } from "../src/broker/heartbeat_slots.ts";

test("HeartbeatSlots gives each stream one heartbeat per interval, in ticks of 250 ms or more, with at most 64 slots", () => {
  const slots = new HeartbeatSlots<number>(15_000);
  assert.equal(slots.tickMs, 250);
  for (let n = 0; n < 130; n++) slots.add(n);
  slots.delete(7);
  const beats = new Map<number, number>();
  for (let tick = 0; tick < 60; tick++) for (const n of slots.next()) beats.set(n, (beats.get(n) ?? 0) + 1);
  assert.equal(beats.size, 129);
  assert.ok([...beats.values()].every((count) => count === 1));
  // A day's interval: 64 slots of 22.5 minutes, not 345,600 of 250 ms.
  assert.equal(new HeartbeatSlots(86_400_000).tickMs, 86_400_000 / 64);
  assert.equal(new HeartbeatSlots(100).tickMs, 100);
});
