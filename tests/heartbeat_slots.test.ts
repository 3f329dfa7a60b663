import assert from "node:assert/strict";
import { test } from "node:test";
import { HeartbeatSlots, SLOT_STREAMS } from "../src/broker/heartbeat_slots.ts";

/** The broker's timer on a clock of its own: `next()` when due, `add` bringing it sooner when asked. */
class Clock<T> {
  now = 0;
  nextAt: number;
  wakeUps = 0;
  beats = new Map<T, number[]>();
  opened = new Map<T, number>();
  readonly slots: HeartbeatSlots<T>;
  constructor(slots: HeartbeatSlots<T>) {
    this.slots = slots;
    this.nextAt = slots.tickMs;
  }
  run(ms: number): this {
    const until = this.now + ms;
    while (this.nextAt <= until) {
      this.now = this.nextAt;
      const { due, waitMs } = this.slots.next(this.now);
      this.wakeUps++;
      for (const item of due) this.beats.set(item, [...(this.beats.get(item) ?? []), this.now]);
      this.nextAt = this.now + waitMs;
    }
    this.now = until;
    return this;
  }
  add(item: T): void {
    this.opened.set(item, this.now);
    const sooner = this.slots.add(item, this.now);
    if (sooner !== undefined) this.nextAt = this.now + sooner;
  }
  /** Every item's first heartbeat within `intervalMs` of its opening, and the next each `intervalMs` after. */
  assertOnTime(intervalMs: number, items: Iterable<T>): void {
    for (const item of items) {
      const times = this.beats.get(item) ?? [];
      assert.ok(times.length > 0 && times[0] - this.opened.get(item)! <= intervalMs, `${item} opened at ${this.opened.get(item)}: ${times}`);
      assert.ok(times.every((at, i) => i === 0 || at - times[i - 1] === intervalMs), `${item}: ${times}`);
    }
  }
}

test("HeartbeatSlots gives each stream one heartbeat per interval, in ticks of 250 ms or more, with at most 64 slots", () => {
  const slots = new HeartbeatSlots<number>(15_000, 0);
  assert.equal(slots.tickMs, 250);
  const clock = new Clock(slots);
  for (let n = 0; n < 3000; n++) clock.add(n);
  slots.delete(7);
  clock.run(15_000);
  assert.equal(clock.beats.size, 2999);
  assert.ok([...clock.beats.values()].every((times) => times.length === 1));
  // A day's interval: 64 slots of 22.5 minutes, not 345,600 of 250 ms.
  assert.equal(new HeartbeatSlots(86_400_000, 0).tickMs, 86_400_000 / 64);
  assert.equal(new HeartbeatSlots(100, 0).tickMs, 100);
});

test("HeartbeatSlots wakes only for slots with streams: 100 streams take 4 ticks an interval, none take one", () => {
  const clock = new Clock(new HeartbeatSlots<number>(15_000, 0));
  assert.equal(clock.run(15_000).wakeUps, 1);
  for (let n = 0; n < 100; n++) clock.add(n);
  clock.wakeUps = 0;
  clock.run(60_000);
  assert.equal(clock.wakeUps, 4 * Math.ceil(100 / SLOT_STREAMS));
  clock.assertOnTime(15_000, clock.opened.keys());
});

test("HeartbeatSlots gives a stream opened at any moment its first heartbeat within the interval, and then one each interval", () => {
  for (const heartbeatMs of [1000, 15_000]) {
    const clock = new Clock(new HeartbeatSlots<number>(heartbeatMs, 0));
    const closed = new Set<number>();
    // Streams come (and some go) every 70 ms, into full slots, empty ones and ones the ticks passed over.
    for (let n = 0; n < 600; n++) {
      clock.run(70);
      clock.add(n);
      if (n % 3 === 0 && n > 0) {
        clock.slots.delete(n - 1);
        closed.add(n - 1);
      }
    }
    clock.run(3 * heartbeatMs);
    clock.assertOnTime(heartbeatMs, [...clock.opened.keys()].filter((n) => !closed.has(n)));
  }
});

test("HeartbeatSlots brings the next tick sooner for a stream whose slot comes before it", () => {
  // One full slot just written: the next tick is a whole interval away, and a new slot's comes 250 ms on.
  const clock = new Clock(new HeartbeatSlots<number>(1000, 0));
  for (let n = 0; n < SLOT_STREAMS; n++) clock.add(n);
  clock.run(260);
  clock.add(1000);
  assert.equal(clock.nextAt, 500);
  clock.run(3000);
  clock.assertOnTime(1000, clock.opened.keys());
});
