import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { IdempotentPublishes, type KeyedRequest } from "../src/broker/idempotent_publishes.ts";
import type { Published } from "../src/broker/publishes.ts";
import { InteropError } from "../src/errors.ts";
import { type AgentName, type Envelope, parseAgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { MessageStore } from "../src/store/store.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const carol = parseAgentName("carol", "to");
const hello = { text: "hello" };
const isReused = (error: unknown) => error instanceof InteropError && error.code === "idempotency_key_reused";

/** A store that knows only messages by key, and a publish that stores one for carol under its key, leaving bob out. */
function keyedStore() {
  const byKey = new Map<string, Envelope[]>();
  const store = { findByKey: (_from: string, key: string) => Promise.resolve(byKey.get(key) ?? []) } as unknown as MessageStore;
  const publish = (storedKey: string): Promise<Published> => {
    const envelopes = [{ id: byKey.size + 1, to: carol, payload: hello } as unknown as Envelope];
    byKey.set(storedKey, envelopes);
    return Promise.resolve({ envelopes, refused: [{ agent: parseAgentName("bob", "to"), code: "inbox_full", reason: "full" }] });
  };
  return { store, publish };
}

test("IdempotentPublishes answers a retried broadcast with its first attempt's refusals, and says when it forgot them", async () => {
  const { store, publish } = keyedStore();
  const publishes = new IdempotentPublishes(store);
  const alice = parseAgentName("alice", "from");
  const broadcast: KeyedRequest = { to: undefined, replyTo: undefined, payloads: [hello] };
  const never = () => Promise.reject(new Error("a retry must not publish again"));
  await publishes.once(alice, "k0", broadcast, publish);
  const retried = await publishes.once(alice, "k0", broadcast, never);
  assert.deepEqual([retried.envelopes.map((envelope) => envelope.id), retried.refused.map((refusal) => refusal.agent)], [[1], ["bob"]]);
  assert.equal(retried.refusalsUnknown, undefined);
  // 10,000 later keyed broadcasts push k0's refusals out of memory; its messages are still found by key.
  for (let n = 1; n <= 10_000; n++) await publishes.once(alice, `k${n}`, broadcast, publish);
  assert.deepEqual(await publishes.once(alice, "k0", broadcast, never), { envelopes: retried.envelopes, refused: [], refusalsUnknown: true });
  assert.deepEqual((await publishes.once(alice, "k10000", broadcast, never)).refused.map((refusal) => refusal.agent), ["bob"]);
  // A publish to one named recipient leaves no one out: its retry claims nothing unknown.
  const toCarol = { ...broadcast, to: carol };
  const direct = await publishes.once(alice, "d0", toCarol, publish);
  assert.deepEqual(await publishes.once(alice, "d0", toCarol, never), { envelopes: direct.envelopes, refused: [] });
});

test("IdempotentPublishes refuses a broadcast under a direct send's key, and a direct send under a broadcast's, even to its one recipient", async () => {
  const { store, publish } = keyedStore();
  const publishes = new IdempotentPublishes(store);
  const alice = parseAgentName("alice", "from");
  const broadcast: KeyedRequest = { to: undefined, replyTo: undefined, payloads: [hello] };
  const toCarol = { ...broadcast, to: carol };
  const never = () => Promise.reject(new Error("a refused publish must not be stored"));
  await publishes.once(alice, "direct", toCarol, publish);
  await assert.rejects(publishes.once(alice, "direct", broadcast, never), isReused);
  // The broadcast reached carol alone: the same one message as a direct send to her, yet another request.
  await publishes.once(alice, "everyone", broadcast, publish);
  await assert.rejects(publishes.once(alice, "everyone", toCarol, never), isReused);
});

const [hermes, openclaw, leo] = ["hermes", "openclaw", "leo"] as AgentName[];

async function openBroker(t: TestContext): Promise<Broker> {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "strict"), dir.path, { agents: [hermes, openclaw, leo] }));
  t.after(() => broker.close());
  return broker;
}


test("a key used again for another recipient, body or reply is refused, and nothing is stored", async (t) => {
  const broker = await openBroker(t);
  const key = { idempotencyKey: "k1" };
  const first = await broker.publish(hermes, openclaw, { text: "deploy" }, key);
  assert.deepEqual((await broker.publish(hermes, openclaw, { text: "deploy" }, key)).envelopes, first.envelopes, "a true retry");
  await assert.rejects(broker.publish(hermes, leo, { text: "deploy" }, key), isReused, "another recipient");
  await assert.rejects(broker.publish(hermes, openclaw, { text: "roll back" }, key), isReused, "another body");
  await assert.rejects(broker.publishBatch(hermes, openclaw, [{ text: "deploy" }, { text: "again" }], key), isReused, "another batch");
  await assert.rejects(broker.publish(hermes, undefined, { text: "deploy" }, { ...key, replyTo: first.envelopes[0].id }), isReused, "a reply");
  await assert.rejects(broker.publish(hermes, undefined, { text: "deploy" }, key), isReused, "a broadcast");
  assert.equal(broker.status().agents[leo].pending, 0);
  assert.equal(broker.status().agents[openclaw].pending, 1);
  // While the first attempt is still committing, too.
  const racing = [broker.publish(hermes, openclaw, { text: "a" }, { idempotencyKey: "k2" }), broker.publish(hermes, leo, { text: "a" }, { idempotencyKey: "k2" })];
  const [won, lost] = await Promise.allSettled(racing);
  assert.equal(won.status, "fulfilled");
  assert.ok(lost.status === "rejected" && isReused(lost.reason));
  assert.equal(broker.status().agents[leo].pending, 0);
  // A broadcast's retry is the same message whoever its recipients are now.
  const everyone = await broker.publish(hermes, undefined, { text: "all" }, { idempotencyKey: "k3" });
  assert.deepEqual((await broker.publish(hermes, undefined, { text: "all" }, { idempotencyKey: "k3" })).envelopes, everyone.envelopes);
});
