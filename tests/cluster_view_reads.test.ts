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
  /** Each read's answer, or its failure (a rejected promise). */
  const reads: Array<(view: ClusterView | Promise<ClusterView>) => void> = [];
  /** Whether each read asked for the pending counts. */
  const counting: boolean[] = [];
  // Not from 0: a monotonic clock starts anywhere.
  const clock = { now: 5000 };
  const shared = {
    cluster: (counts = false) => {
      counting.push(counts);
      return new Promise<ClusterView>((resolve) => reads.push(resolve));
    },
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
    monotonic: () => clock.now,
  });
  const view = (cursors: Array<[typeof bob, number]>, pending?: Array<[typeof bob, number]>): ClusterView => ({
    brokers: [],
    streams: new Map(),
    cursors: new Map(cursors),
    pending: pending && new Map(pending),
  });
  return { agents, reads, counting, clock, view };
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

test("AgentInboxes takes an inbox's pending count from the view, plus what its own count moved by while the view was read", async () => {
  // Each broker counted its own publishes and deliveries alone: one publishing to an agent whose stream was on another
  // broker counted them pending for good, and refused every publish to it (507 inbox_full) past --max-pending.
  const { agents, reads, view } = inboxesOverHeldReads();
  const answer = async (pending: number, meanwhile = () => {}) => {
    const look = agents.look(true);
    meanwhile();
    reads.at(-1)!(view([[bob, 9]], [[bob, pending]]));
    await look;
    return agents.get(bob)!.pending;
  };
  assert.equal(await answer(2), 2, "an inbox another broker created comes with its count");
  agents.get(bob)!.pending = 7;
  assert.equal(await answer(0), 0, "what another broker's stream delivered is no longer counted");
  // Under steady traffic its own count moves during every read: the view may have been read before or after that,
  // so the figure is off by that much at most until the next read, not kept wrong for good.
  assert.equal(await answer(3, () => agents.get(bob)!.pending += 2), 5);
  assert.equal(await answer(4, () => agents.get(bob)!.pending--), 3);
  assert.equal(await answer(0, () => agents.get(bob)!.pending--), 0, "never below 0");
  // A read of the view that must see it now (a /status) may start after a count and answer first: the count applies.
  const counting = agents.look(true);
  const plain = agents.look();
  reads[reads.length - 1](view([[bob, 9]]));
  reads[reads.length - 2](view([[bob, 9]], [[bob, 6]]));
  await Promise.all([counting, plain]);
  assert.equal(agents.get(bob)!.pending, 6);
});

test("AgentInboxes counts a publish committing as the count starts, whether it reaches the database before it is read or after", async () => {
  const { agents, reads, view } = inboxesOverHeldReads();
  const counted = agents.look(true);
  reads[0](view([[bob, 0]], [[bob, 0]]));
  await counted;
  const inbox = agents.get(bob)!;
  // Counted pending as the publish starts (for --max-pending), before its commit.
  const publish = (messages: number) => {
    inbox.pending += messages;
    return agents.committing([inbox], messages);
  };
  const count = async (inDatabase: number) => {
    const look = agents.look(true);
    reads.at(-1)!(view([[bob, 0]], [[bob, inDatabase]]));
    await look;
    return inbox.pending;
  };
  const late = publish(3);
  assert.equal(await count(0), 3, "committed after the database was read: still pending");
  late();
  const early = publish(2);
  assert.equal(await count(5), 7, "committed before: counted twice until the next count, never left out");
  early();
  assert.equal(await count(5), 5);
  // A commit that fails takes its messages off again: from a count that never held them, back to exactly it.
  const failing = publish(4);
  assert.equal(await count(5), 9);
  inbox.pending -= 4;
  failing();
  assert.equal(inbox.pending, 5);
});

test("AgentInboxes counts an inbox that another read of the view brought while a count was under way", async () => {
  const { agents, reads, view } = inboxesOverHeldReads();
  const counting = agents.look(true);
  const plain = agents.look();
  reads[1](view([[bob, 0]]));
  await plain;
  assert.equal(agents.get(bob)!.pending, 0, "a read without the counts knows nothing of bob's");
  reads[0](view([[bob, 0]], [[bob, 500]]));
  await counting;
  assert.equal(agents.get(bob)!.pending, 500);
});

test("AgentInboxes counts one read at a time, the next no sooner than ten times as long as the last took, 10 s at most", async () => {
  // A count reads the undelivered messages of each inbox written since the last one (0.25 s for 1,000,000 in
  // PostgreSQL), and each broker asks every second.
  const { agents, reads, counting, clock, view } = inboxesOverHeldReads();
  const answered = (count: boolean) => view([[bob, 0]], count ? [[bob, 0]] : undefined);
  const first = agents.look(true);
  const second = agents.look(true);
  clock.now += 50;
  reads[0](answered(true));
  reads[1](answered(false));
  await Promise.all([first, second]);
  assert.deepEqual(counting, [true, false], "a count was under way: the second read of the view counted nothing");
  /** A read every tick asks for, `wait` ms after the last one ended, taking `took` ms, answered as it asked. */
  const tick = async (wait: number, took = 0) => {
    clock.now += wait;
    const look = agents.look(true);
    clock.now += took;
    reads.at(-1)!(answered(counting.at(-1)!));
    await look;
  };
  await tick(499);
  await tick(1);
  assert.deepEqual(counting, [true, false, false, true], "the count took 50 ms: the next waited 500 ms after it");
  const now = agents.lookAgain();
  reads[4](answered(false));
  await now;
  assert.equal(counting[4], false, "a read that must see the view now counts nothing");
  // A count that fails (PostgreSQL went away, after a while) lets the next one come on the next tick.
  clock.now += 1000;
  const failed = agents.look(true);
  clock.now += 5000;
  reads[5](Promise.reject(new Error("connection lost")));
  await assert.rejects(failed);
  await tick(0, 4000);
  assert.equal(counting[6], true);
  // That one waited 4 s (on a lock a DDL held): the next comes 10 s later at most, not 40.
  await tick(9999);
  await tick(1);
  assert.deepEqual(counting.slice(7), [false, true]);
});
