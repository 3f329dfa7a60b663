import assert from "node:assert/strict";
import { test } from "node:test";
import { IdempotentPublishes } from "../src/broker/idempotent_publishes.ts";
import type { Published } from "../src/broker/publishes.ts";
import { type Envelope, parseAgentName } from "../src/message.ts";
import type { MessageStore } from "../src/store/store.ts";

/** A store that knows only messages by key, and a publish that stores one under its key, leaving bob out. */
function keyedStore() {
  const byKey = new Map<string, Envelope[]>();
  const store = { findByKey: (_from: string, key: string) => Promise.resolve(byKey.get(key) ?? []) } as unknown as MessageStore;
  const publish = (key: string) => (): Promise<Published> => {
    const envelopes = [{ id: byKey.size + 1 } as unknown as Envelope];
    byKey.set(key, envelopes);
    return Promise.resolve({ envelopes, refused: [{ agent: parseAgentName("bob", "to"), code: "inbox_full", reason: "full" }] });
  };
  return { store, publish };
}

test("IdempotentPublishes answers a retried broadcast with its first attempt's refusals, and says when it forgot them", async () => {
  const { store, publish } = keyedStore();
  const publishes = new IdempotentPublishes(store);
  const alice = parseAgentName("alice", "from");
  const never = () => Promise.reject(new Error("a retry must not publish again"));
  await publishes.once(alice, "k0", true, publish("k0"));
  const retried = await publishes.once(alice, "k0", true, never);
  assert.deepEqual([retried.envelopes.map((envelope) => envelope.id), retried.refused.map((refusal) => refusal.agent)], [[1], ["bob"]]);
  assert.equal(retried.refusalsUnknown, undefined);
  // 10,000 later keyed broadcasts push k0's refusals out of memory; its messages are still found by key.
  for (let n = 1; n <= 10_000; n++) await publishes.once(alice, `k${n}`, true, publish(`k${n}`));
  assert.deepEqual(await publishes.once(alice, "k0", true, never), { envelopes: retried.envelopes, refused: [], refusalsUnknown: true });
  assert.deepEqual((await publishes.once(alice, "k10000", true, never)).refused.map((refusal) => refusal.agent), ["bob"]);
  // A publish to one named recipient leaves no one out: its retry claims nothing unknown.
  assert.deepEqual(await publishes.once(alice, "k0", false, never), { envelopes: retried.envelopes, refused: [] });
});
