/** An agent's removal on a broker whose store other brokers share (PostgreSQL), racing a publish to it. */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import postgres from "postgres";
import { Broker } from "../src/broker/broker.ts";
import type { AgentName } from "../src/message.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { sharedPostgres } from "./helpers/postgres.ts";

const hermes = "hermes" as AgentName;
const cluster = sharedPostgres();

test("a publish arriving during its recipient's removal re-creates the inbox after it: no message is stored under no inbox", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => admin.end());
  const store = await PostgresStore.open({ url, durability: "strict", claimant: { pid: process.pid, host: "test", version: "test" }, warn: () => {} });
  let opened: Broker | undefined;
  // The broker closes its store; one that failed to open leaves it to close.
  t.after(() => opened !== undefined ? opened.close() : store.close());
  const broker = opened = await Broker.open(testBrokerOptions(store, "/nonexistent", { agents: [hermes], admitAgent: () => {} }));

  // Each round: the removal is under way (not yet committed, so the shared view still lists the agent) when the
  // publish looks the agent up.
  for (let round = 0; round < 5; round++) {
    const agent = `agent${round}` as AgentName;
    await broker.addAgent(agent);
    const [removed, published] = await Promise.allSettled([broker.removeAgent(agent, false), broker.publish(hermes, agent, { round })]);
    assert.equal(removed.status, "fulfilled");
    assert.equal(published.status, "fulfilled", "the publish came after the removal and created the inbox again");
    const inboxes = await admin`SELECT 1 FROM interop_inboxes WHERE agent = ${agent}`;
    const messages = await admin`SELECT 1 FROM interop_messages WHERE recipient = ${agent}`;
    assert.deepEqual([inboxes.length, messages.length], [1, 1], `${agent}: its inbox row holds its message`);
    assert.ok(agent in broker.status().agents, "the broker and the store agree");
  }
});
