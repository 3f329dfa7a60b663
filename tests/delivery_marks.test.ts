import assert from "node:assert/strict";
import { test } from "node:test";
import { DeliveryMarks } from "../src/broker/delivery_marks.ts";
import type { AgentName } from "../src/message.ts";
import type { InboxRecord } from "../src/store/store.ts";

const hermes = "hermes" as AgentName;
const inboxAt = (deliveredId: number) =>
  new Map([[hermes, { agent: hermes, deliveredId, purgedId: 0, pending: 0, lastSeen: null, deadLetters: 0, expired: 0 } as InboxRecord]]);

test("DeliveryMarks lets retention delete only what was delivered a whole period ago, however old the messages", () => {
  const marks = new DeliveryMarks(64_000, false);
  // What the cursor held when the broker started counts as delivered long ago: the store does not say when.
  assert.deepEqual([...marks.deliveredBefore(inboxAt(5), 0)], [[hermes, 5]]);
  // Delivered at 1 s: kept until 65 s.
  assert.deepEqual([...marks.deliveredBefore(inboxAt(9), 1_000)], [[hermes, 5]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(9), 64_999)], [[hermes, 5]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(9), 65_000)], [[hermes, 9]]);
  // A move is noted by the first call a 64th of the period after the last mark (14, at 129.499 s): kept a little
  // longer, never shorter.
  assert.deepEqual([...marks.deliveredBefore(inboxAt(12), 65_500)], [[hermes, 9]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(14), 66_000)], [[hermes, 9]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(14), 129_499)], [[hermes, 9]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(14), 129_500)], [[hermes, 12]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(14), 193_498)], [[hermes, 12]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(14), 193_499)], [[hermes, 14]]);
  // A removed inbox's marks go with it.
  assert.deepEqual([...marks.deliveredBefore(new Map(), 194_000)], []);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(20), 195_000)], [[hermes, 20]]);
});

test("DeliveryMarks on a store other brokers share counts a cursor first seen as delivered now: another broker may just have", () => {
  const marks = new DeliveryMarks(64_000, true);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(5), 1_000)], [[hermes, 0]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(5), 64_999)], [[hermes, 0]]);
  assert.deepEqual([...marks.deliveredBefore(inboxAt(7), 65_000)], [[hermes, 5]]);
});
