// The inbox records of a broker on a shared store (PostgreSQL), against a stand-in store, when the store goes away
// in the middle of creating one.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentInboxes } from "../src/broker/agent_inboxes.ts";
import type { CommitQueue } from "../src/broker/commit_queue.ts";
import { InteropError } from "../src/errors.ts";
import { parseAgentName } from "../src/message.ts";
import type { MessageStore, SharedInboxes } from "../src/store/store.ts";

const carol = parseAgentName("carol", "agent");

test("an inbox whose creation meets a PostgreSQL outage leaves no record: the agent is not listed, and the next request creates it", async () => {
  // The record stayed: /agents and /status listed carol through the outage, and once it ended her publishes were
  // refused 404 unknown_agent (no inbox row) until the cluster view's next look dropped it.
  let down = true;
  const created: string[] = [];
  const shared = {
    // The look before the creation still answered: carol is not there yet.
    cluster: () => Promise.resolve({ brokers: [], streams: new Map(), cursors: new Map(created.map((agent) => [agent, 0])) }),
    createInbox: (agent: string) => {
      if (down) return Promise.reject(new InteropError("storage_unavailable", "Storage unavailable: PostgreSQL cannot be reached; retry shortly"));
      created.push(agent);
      return Promise.resolve(0);
    },
  } as unknown as SharedInboxes;
  const ignore = () => {};
  const agents = new AgentInboxes({
    store: { id: "store", shared } as unknown as MessageStore,
    commits: { note: ignore } as unknown as CommitQueue,
    records: new Map(),
    admitAgent: undefined,
    lastId: () => 0,
    streaming: () => false,
    forget: ignore,
    now: () => Date.now(),
  });
  await assert.rejects(agents.inboxFor(carol, "read"), { code: "storage_unavailable" });
  assert.equal(agents.get(carol), undefined);
  down = false;
  assert.equal((await agents.inboxFor(carol, "read")).agent, carol);
  assert.deepEqual(created, [carol]);
});
