/** Broker.replay (what ntfy's `poll=1` reads), against the real SQLite store: where it starts and what it skips. */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { type AgentName, messageKey } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const [hermes, openclaw, other] = ["hermes", "openclaw", "other"] as AgentName[];

async function openBroker(t: TestContext): Promise<Broker> {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "strict"), dir.path, { agents: [hermes, openclaw, other] }));
  t.after(() => broker.close());
  return broker;
}

test("a replay since the ntfy id of another agent's message reads from the cursor: it says nothing of what this agent has", async (t) => {
  const broker = await openBroker(t);
  await broker.publish(hermes, openclaw, { text: "a" });
  await broker.publish(hermes, openclaw, { text: "b" });
  const { envelopes: [foreign] } = await broker.publish(hermes, other, { text: "for other" });

  const read = await broker.replay(openclaw, { from: "id", afterId: foreign.id, key: messageKey(foreign) }, 100);
  assert.deepEqual(read.map((envelope) => envelope.payload.text), ["a", "b"]);
  assert.equal(broker.status().agents[openclaw].pending, 0);
});

test("a replay skips an ask's reply that the asker's wait already took", async (t) => {
  const broker = await openBroker(t);
  const asking = broker.ask(hermes, openclaw, { text: "ready?" }, 10_000);
  const question = (await broker.wait(openclaw, 10_000))!;
  await broker.publish(openclaw, undefined, { text: "ready" }, { replyTo: question.id });
  const { reply } = await asking;
  assert.equal(reply?.payload.text, "ready");
  assert.deepEqual(await broker.replay(hermes, { from: "cursor" }, 100), [], "delivered once, to the ask");
});
