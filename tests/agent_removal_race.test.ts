/** An agent removed while a publish to it is on its way, against the real SQLite store: nothing acknowledged is lost. */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/**
 * A broker on a strict store in a temporary dir that admits every agent (as tokens do for an agent that has one),
 * and what its store holds for openclaw once it is closed.
 */
async function openBroker(t: TestContext) {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "strict"), dir.path, { agents: [hermes], admitAgent: () => {} }));
  let closed = false;
  t.after(() => closed ? undefined : broker.close());
  const stored = async () => {
    closed = true;
    await broker.close();
    const store = new SqliteStore(dir.path, "strict");
    try {
      const inboxes = (await store.loadInboxes()).map((inbox) => inbox.agent);
      const messages = (await store.readAfter(openclaw, 0, 100)).map((envelope) => envelope.id);
      return { inboxes, messages };
    } finally {
      await store.close();
    }
  };
  return { broker, stored };
}

test("a publish whose recipient's inbox is removed while the publish creates it is refused as to an unknown agent, and leaves nothing stored", async (t) => {
  const { broker, stored } = await openBroker(t);

  // The publish creates openclaw's inbox (committed before it stores the message); the removal comes meanwhile.
  const published = broker.publish(hermes, openclaw, { n: 1 });
  const removed = broker.removeAgent(openclaw, false);

  await assert.rejects(published, { code: "unknown_agent" });
  assert.equal(await removed, 0);
  assert.equal(openclaw in broker.status().agents, false, "openclaw stays removed");
  assert.deepEqual(await stored(), { inboxes: [hermes], messages: [] });
});

test("a publish that comes while its recipient is being removed creates the inbox again after the removal, and its message is kept", async (t) => {
  const { broker, stored } = await openBroker(t);
  await broker.addAgent(openclaw);

  const removed = broker.removeAgent(openclaw, false);
  const published = broker.publish(hermes, openclaw, { n: 1 });

  assert.equal(await removed, 0);
  const { envelopes: [envelope] } = await published;
  assert.deepEqual(await stored(), { inboxes: [hermes, openclaw], messages: [envelope.id] });
});
