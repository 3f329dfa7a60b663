/** How requests that must see a shared store's cluster view as it is now share the reads of it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentInboxes } from "../src/broker/agent_inboxes.ts";
import type { CommitQueue } from "../src/broker/commit_queue.ts";
import { parseAgentName } from "../src/message.ts";
import type { ClusterView, InboxRecord, MessageStore, SharedInboxes } from "../src/store/store.ts";

const bob = parseAgentName("bob", "agent");

/** AgentInboxes over a stand-in shared store whose reads of the view each wait for the test to answer them. */
function inboxesOverHeldReads() {
  const reads: Array<(view: ClusterView) => void> = [];
  const shared = {
    cluster: () => new Promise<ClusterView>((resolve) => reads.push(resolve)),
  } as unknown as SharedInboxes;
  const agents = new AgentInboxes({
    store: { id: "store", shared } as unknown as MessageStore,
    commits: {} as CommitQueue,
    records: new Map<typeof bob, InboxRecord>(),
    admitAgent: undefined,
    lastId: () => 0,
    streaming: () => false,
    forget: () => {},
    now: () => 0,
  });
  const view = (cursors: Array<[typeof bob, number]>, pending: Array<[typeof bob, number]> = []): ClusterView => ({
    brokers: [],
    streams: new Map(),
    cursors: new Map(cursors),
    pending: new Map(pending),
  });
  return { agents, reads, view };
}

test("AgentInboxes.lookAgain() waits for a read started after it, which callers meanwhile share", async () => {
  const { agents, reads, view } = inboxesOverHeldReads();
  // The read every second, under way when the requests come: it may have missed bob, created since it started.
  const periodic = agents.look();
  const requests = [agents.lookAgain(), agents.lookAgain(), agents.lookAgain()];
  assert.equal(reads.length, 1, "the requests' read waits for the one under way");
  reads[0](view([]));
  await periodic;
  // It starts once the one under way answered, a few promise turns later.
  for (let turn = 0; turn < 10 && reads.length < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(reads.length, 2, "the requests' read started once the one under way answered");
  reads[1](view([[bob, 7]]));
  await Promise.all(requests);
  assert.equal(agents.get(bob)?.deliveredId, 7, "the requests saw the view read after they came");
  assert.equal(reads.length, 2, "and shared one read of it");
});

test("AgentInboxes.lookAgain() reads at once when no read is under way", async () => {
  const { agents, reads, view } = inboxesOverHeldReads();
  const request = agents.lookAgain();
  assert.equal(reads.length, 1);
  reads[0](view([[bob, 3]]));
  await request;
  assert.equal(agents.get(bob)?.deliveredId, 3);
});

test("AgentInboxes takes an inbox's pending count from the view, unless its own moved or one of its publishes was committing meanwhile", async () => {
  // Each broker counted its own publishes and deliveries alone: one publishing to an agent whose stream was on another
  // broker counted them pending for good, and refused every publish to it (507 inbox_full) past --max-pending.
  const { agents, reads, view } = inboxesOverHeldReads();
  const answer = async (n: number, pending: number) => {
    const look = agents.look();
    reads[n](view([[bob, 9]], [[bob, pending]]));
    await look;
    return agents.get(bob)!.pending;
  };
  assert.equal(await answer(0, 2), 2, "an inbox another broker created comes with its count");
  agents.get(bob)!.pending = 7;
  assert.equal(await answer(1, 0), 0, "what another broker's stream delivered is no longer counted");
  // Its own count moved while the view was read: the view may have been read before or after that.
  const moving = agents.look();
  agents.get(bob)!.pending++;
  reads[2](view([[bob, 9]], [[bob, 3]]));
  await moving;
  assert.equal(agents.get(bob)!.pending, 1);
  // A publish of its own committing as the read starts may commit before or after the view's snapshot.
  const ended = agents.publishing([agents.get(bob)!]);
  assert.equal(await answer(3, 4), 1);
  ended();
  assert.equal(await answer(4, 4), 4, "the next quiet read sets it right");
});
