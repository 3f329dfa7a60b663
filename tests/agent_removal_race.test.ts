/** An agent removed while a publish, a read, a stream or a dead letter for it is on its way, against the real SQLite store: nothing acknowledged is lost or delivered twice. */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { type AdmitAgent, agentAdmission } from "../src/broker/agent_admission.ts";
import { Broker } from "../src/broker/broker.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { TextSink } from "./helpers/text_sink.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/**
 * A broker on a strict store in a temporary dir that admits every agent (as tokens do for an agent that has one),
 * and what its store holds for openclaw once it is closed.
 */
async function openBroker(t: TestContext, admitAgent: AdmitAgent = () => {}) {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "strict"), dir.path, { agents: [hermes], admitAgent }));
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

test("a stream prepared before its agent's removal and started after it ends at once, and a message to the agent's new inbox is delivered once", async (t) => {
  const { broker } = await openBroker(t);
  await broker.addAgent(openclaw);
  const { open } = await broker.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true));
  assert.equal(await broker.removeAgent(openclaw, false), 0);
  const sink = new TextSink();
  open(sink);
  assert.ok(sink.closed.aborted, "the stream ended");
  assert.match(sink.text, /event: error\ndata: .*openclaw was removed by the operator/);

  // openclaw comes back (it has a token): its new inbox's message is polled, once.
  const { envelopes: [message] } = await broker.publish(hermes, openclaw, { n: 1 });
  assert.deepEqual((await broker.poll(openclaw, 10)).map((envelope) => envelope.id), [message.id]);
  assert.doesNotMatch(sink.text, /^id: /m, "nothing was written to the ended stream");
});

test("an agent that reconnects during its removal is admitted after it, against --max-agents as it stands then", async (t) => {
  const { broker } = await openBroker(t, agentAdmission({ tokensOn: () => false, hasToken: () => false, maxAgents: 2 }));
  await broker.poll(openclaw, 1);
  const removed = broker.removeAgent(openclaw, false);
  const back = broker.poll(openclaw, 1);
  const third = broker.poll("other" as AgentName, 1);
  await removed;
  await Promise.allSettled([back, third]);
  assert.equal(Object.keys(broker.status().agents).length, 2, "the cap of 2 holds");
});

test("a dead letter parked while its agent is removed is refused: the removal deleted the message with the inbox", async (t) => {
  const { broker } = await openBroker(t);
  await broker.addAgent(openclaw);
  const { envelopes: [message] } = await broker.publish(hermes, openclaw, { n: 1 });
  await broker.poll(openclaw, 10);
  const removed = broker.removeAgent(openclaw, true);
  const parked = broker.deadLetters.park(openclaw, message.id, "refused");
  assert.equal(await removed, 1);
  await assert.rejects(parked, { code: "unknown_message" });
  const listed = () => broker.deadLetters.list(openclaw, 1000, false, broker.answer((letter) => JSON.stringify(letter)));
  await assert.rejects(listed(), { code: "unknown_agent" });
  // Nothing was parked for the old inbox to show on a new one.
  await broker.addAgent(openclaw);
  assert.deepEqual(await listed(), []);
});
