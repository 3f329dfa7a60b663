// Retention and dead letters against a stand-in store whose COMMIT lost its answer (PostgreSQL stopped in that
// instant: `CommitInDoubt`, settled once the server answers): what committed is counted, once.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DeadLetters } from "../src/broker/dead_letters.ts";
import type { AgentInboxes } from "../src/broker/agent_inboxes.ts";
import { DeliveryMarks } from "../src/broker/delivery_marks.ts";
import type { Observers } from "../src/broker/observers.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { applyRetention } from "../src/broker/retention.ts";
import { InteropError } from "../src/errors.ts";
import { type AgentName, parseAgentName } from "../src/message.ts";
import { CommitInDoubt, type InboxRecord, type MessageStore } from "../src/store/store.ts";

const bob = parseAgentName("bob", "agent");
const unavailable = () => new InteropError("storage_unavailable", "Storage unavailable: PostgreSQL cannot be reached; retry shortly");

/** A rejection as the PostgreSQL store's for a COMMIT in doubt, its outcome `committed` (undefined: it did not). */
function inDoubt<T>(committed: T | undefined): Promise<T> {
  return Promise.reject(new CommitInDoubt<T>(unavailable(), Promise.resolve(committed)));
}

function bobsInbox(): Map<AgentName, InboxRecord> {
  return new Map([[bob, { agent: bob, deliveredId: 10, purgedId: 0, pending: 5, lastSeen: null, deadLetters: 0, expired: 0 }]]);
}

test("retention whose prune, expiry and cursor pass lost their COMMIT's answer counts what they did once PostgreSQL says they committed", async () => {
  // The counts were left as they were: bob's pending stayed 5 for good (the messages gone, the next run finding
  // none to expire), and his purge mark behind what was deleted.
  const inboxes = bobsInbox();
  const store = {
    prune: () => inDoubt({ changed: new Map([[bob, 4]]), more: false }),
    expire: () => inDoubt({ changed: new Map([[bob, 2]]), more: false }),
    passTaken: () => inDoubt(new Map([[bob, 12]])),
  } as unknown as MessageStore;
  const expired: Array<[string, number]> = [];
  const policy = { retentionMs: 1000, pendingTtlMs: uniform(1000), onExpired: (agent: AgentName, count: number) => expired.push([agent, count]) };
  await applyRetention(store, inboxes, new DeliveryMarks(1000, false), policy, Date.now());
  const inbox = inboxes.get(bob)!;
  assert.deepEqual({ purgedId: inbox.purgedId, pending: inbox.pending, expired: inbox.expired }, { purgedId: 4, pending: 3, expired: 2 });
  assert.equal(inbox.deliveredId, 12, "the cursor moved over what was taken above it");
  assert.deepEqual(expired, [[bob, 2]]);
});

test("retention whose expiry's COMMIT did not commit fails storage_unavailable, counting nothing (the next run tries again)", async () => {
  const inboxes = bobsInbox();
  const store = { prune: () => Promise.resolve({ changed: new Map(), more: false }), expire: () => inDoubt(undefined) } as unknown as MessageStore;
  await assert.rejects(
    applyRetention(store, inboxes, new DeliveryMarks(1000, false), { retentionMs: 1000, pendingTtlMs: uniform(1000) }, Date.now()),
    { code: "storage_unavailable" },
  );
  assert.deepEqual({ pending: inboxes.get(bob)!.pending, expired: inboxes.get(bob)!.expired }, { pending: 5, expired: 0 });
});

test("a dead letter whose COMMIT lost its answer is counted once PostgreSQL says it committed, and its park again counts nothing", async () => {
  // The park failed 503 and its client's park again found the letter there: bob's dead_letters stayed 0 on this
  // broker (interop status --max-dead-letters saw none) and the metric missed it.
  const inbox = bobsInbox().get(bob)!;
  const stored: number[] = [];
  const store = {
    find: (id: number) => Promise.resolve({ id, to: bob }),
    outcome: () => Promise.resolve({ taken: true, withdrawnAt: undefined, reply: undefined, deadLetter: undefined }),
    addDeadLetter: (_agent: AgentName, letter: { messageId: number }) => {
      const added = !stored.includes(letter.messageId);
      stored.push(letter.messageId);
      return stored.length === 1 ? inDoubt(added) : Promise.resolve(added);
    },
  } as unknown as MessageStore;
  const told: number[] = [];
  const letters = new DeadLetters({
    store,
    agents: { find: () => Promise.resolve(inbox) } as unknown as AgentInboxes,
    observers: { deadLettered: (_agent: AgentName, id: number) => told.push(id) } as unknown as Observers,
    now: () => Date.now(),
    publish: () => Promise.reject(new Error("not called")),
    mayBePending: () => false,
    takeOne: () => Promise.reject(new Error("not called")),
    unleased: () => Promise.reject(new Error("not called")),
  });
  await letters.park(bob, 7, "refused");
  await letters.park(bob, 7, "refused");
  assert.equal(inbox.deadLetters, 1);
  assert.deepEqual(told, [7]);
});
