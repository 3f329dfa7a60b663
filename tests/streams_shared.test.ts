// Streams on a store several brokers share (PostgreSQL), against a stand-in store: closing a stream's entry, and
// telling a removed agent from one another broker created.
import assert from "node:assert/strict";
import { mock, test } from "node:test";
import { AgentInboxes } from "../src/broker/agent_inboxes.ts";
import type { CommitQueue } from "../src/broker/commit_queue.ts";
import { Streams, type StreamsDeps } from "../src/broker/streams.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import { parseAgentName } from "../src/message.ts";
import type { StreamSink } from "../src/runtime/types.ts";
import type { InboxRecord, MessageStore, SharedInboxes } from "../src/store/store.ts";

const bob = parseAgentName("bob", "agent");

/**
 * Streams over a shared store whose closeStream fails `failures` times (`closes` holds when each try came), where
 * this broker knows bob's inbox (`known`) or only the cluster view has it (`inCluster`).
 */
function streamsOverSharedStore(failures: number, { known = true, inCluster = false, removed = true } = {}) {
  const closes: number[] = [];
  const shared = {
    openStream: () => Promise.resolve(0),
    closeStream: () => {
      closes.push(Date.now());
      return closes.length <= failures ? Promise.reject(new Error("the database is unreachable")) : Promise.resolve();
    },
    version: () => Promise.resolve({ version: 0, deliveredId: 0 }),
    cluster: () => Promise.resolve({ brokers: [], streams: new Map(), cursors: new Map(inCluster ? [[bob, 0]] : []) }),
  } as unknown as SharedInboxes;
  const store = {
    id: "store",
    outage: undefined,
    shared,
    readAfter: () => Promise.resolve([]),
    wasRemoved: () => Promise.resolve(removed),
  } as unknown as MessageStore;
  const inbox: InboxRecord = { agent: bob, deliveredId: 0, purgedId: 0, pending: 0, lastSeen: null, deadLetters: 0, expired: 0 };
  const ignore = () => {};
  // The inbox records as the broker keeps them (what the removal check asks), over the same stand-in store.
  const agents = new AgentInboxes({
    store,
    commits: undefined as unknown as CommitQueue,
    records: new Map(known ? [[bob, inbox]] : []),
    admitAgent: undefined,
    lastId: () => 0,
    streaming: () => false,
    forget: ignore,
    now: () => Date.now(),
  });
  const deps: StreamsDeps = {
    store,
    readInOrder: (agent, afterId, limit) => store.readAfter(agent, afterId, limit),
    inboxFor: () => Promise.resolve(inbox),
    readAsHolder: (agent, hadInboxOn) => agents.readAsHolder(agent, hadInboxOn),
    currentInbox: () => (known ? inbox : undefined),
    lastId: () => 0,
    sawId: ignore,
    isTaken: () => false,
    delivered: ignore,
    ended: ignore,
    replayPoint: ignore,
    secondStream: "replace",
    writeTimeoutMs: 60_000,
    resumeWindowMs: 0,
    heartbeatMs: 15_000,
  };
  return { streams: new Streams(deps), closes };
}

/** A sink whose client hangs up when `hangUp` is called. */
function sink(): StreamSink & { hangUp(): void } {
  const closed = new AbortController();
  return {
    write: () => 0,
    drained: () => Promise.resolve(),
    close: () => closed.abort(),
    destroy: () => closed.abort(),
    closed: closed.signal,
    hangUp: () => closed.abort(),
  };
}

/** Lets the promise callbacks that follow a timer run (setImmediate is not mocked). */
const settle = async () => {
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
};

async function advance(ms: number): Promise<void> {
  for (let step = 0; step < ms; step += 250) {
    mock.timers.tick(250);
    await settle();
  }
}

test("a stream's closing that keeps failing is tried again after 0.25, 0.5, 1, 2 s, then every 4 s, until it lands", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    const { streams, closes } = streamsOverSharedStore(7);
    const client = sink();
    (await streams.prepare(bob, { from: "cursor" }, sseFormat(2000, true))).open(client);
    await settle();
    client.hangUp();
    await settle();
    await advance(30_000);
    const gaps = closes.slice(1).map((at, index) => at - closes[index]);
    assert.deepEqual(gaps, [250, 500, 1000, 2000, 4000, 4000, 4000]);
  } finally {
    mock.timers.reset();
  }
});

test("a stream's closing that fails once the broker stops is not tried again", async () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  try {
    const { streams, closes } = streamsOverSharedStore(Infinity);
    const client = sink();
    (await streams.prepare(bob, { from: "cursor" }, sseFormat(2000, true))).open(client);
    await settle();
    streams.closeAll({ event: "shutdown", message: "the broker is stopping" });
    await settle();
    await advance(10_000);
    assert.equal(closes.length, 1);
  } finally {
    mock.timers.reset();
  }
});

test("a resume from a client that had bob's inbox on this store is refused (agent_removed) when no broker of it has one and the store records its removal", async () => {
  const { streams } = streamsOverSharedStore(0, { known: false });
  const resume = { from: "id", afterId: 0, store: "store", hadInboxOn: "store" } as const;
  await assert.rejects(streams.prepare(bob, resume, sseFormat(2000, true)), { code: "agent_removed" });
});

test("a resume from a client that had bob's inbox on this store is served when the store records no removal of bob (a restored backup)", async () => {
  const { streams } = streamsOverSharedStore(0, { known: false, removed: false });
  const resume = { from: "id", afterId: 0, store: "store", hadInboxOn: "store" } as const;
  assert.equal(typeof (await streams.prepare(bob, resume, sseFormat(2000, true))).open, "function");
});

test("a resume from a client that had bob's inbox is served when another broker created it since this one last looked", async () => {
  const { streams } = streamsOverSharedStore(0, { known: false, inCluster: true });
  const resume = { from: "id", afterId: 0, store: "store", hadInboxOn: "store" } as const;
  assert.equal(typeof (await streams.prepare(bob, resume, sseFormat(2000, true))).open, "function");
});
