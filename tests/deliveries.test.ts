/** `Deliveries.take`: a message handed to a waiter out of order stays taken until the store has its mark. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { CommitQueue } from "../src/broker/commit_queue.ts";
import { Deliveries } from "../src/broker/deliveries.ts";
import { Observers } from "../src/broker/observers.ts";
import { InteropError } from "../src/errors.ts";
import type { AgentName, Envelope } from "../src/message.ts";
import type { InboxRecord } from "../src/store/store.ts";
import { waitFor } from "./helpers/broker.ts";

const bob = "bob" as AgentName;
const reply: Envelope = { id: 5, from: "ann" as AgentName, to: bob, timestamp: new Date(0).toISOString(), payload: { text: "the answer" } };

/** Deliveries over a commit queue whose marks the store refuses `refusals` times (a full disk), then takes. */
function deliveriesRefusing(refusals: number, stopping = new AbortController().signal) {
  const marks: unknown[] = [];
  const commits = {
    update(update: unknown) {
      marks.push(update);
      return refusals-- > 0 ? Promise.reject(new InteropError("storage_full", "no room")) : Promise.resolve([]);
    },
  } as unknown as CommitQueue;
  const inbox = { agent: bob, deliveredId: 0, purgedId: 0, pending: 1, lastSeen: null } as unknown as InboxRecord;
  const deliveries = new Deliveries({ commits, records: new Map([[bob, inbox]]), observers: new Observers(), shared: false, stopping });
  return { deliveries, marks };
}

// Red team 54: an ask's reply whose take the store refused (a full disk) was in the asker's inbox again after a
// restart: the mark was tried once, and its failure forgotten.
test("a reply taken while the store refuses its mark is marked again until it lands, and stays taken meanwhile", async () => {
  const { deliveries, marks } = deliveriesRefusing(2);
  deliveries.take(reply);
  assert.ok(deliveries.taken.has(reply.id));
  assert.deepEqual(deliveries.committing(), [reply.id], "held from expiry while its mark is not in");
  await waitFor(() => !deliveries.taken.has(reply.id), 10_000, "the mark to land");
  assert.equal(marks.length, 3);
  assert.deepEqual(marks[2], { agent: bob, polled: [{ after: 4, upTo: 5 }] });
  assert.deepEqual(deliveries.committing(), []);
});

test("a take's mark not in as the broker stops is tried once more, for its last commit, then no more", async () => {
  const stopping = new AbortController();
  const { deliveries, marks } = deliveriesRefusing(Infinity, stopping.signal);
  deliveries.take(reply);
  await waitFor(() => marks.length === 1, 5000, "the first mark");
  stopping.abort();
  await waitFor(() => marks.length === 2, 5000, "the last try");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(marks.length, 2);
  assert.ok(deliveries.taken.has(reply.id), "still taken in memory");
});
