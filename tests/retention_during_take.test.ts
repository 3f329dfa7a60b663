/**
 * Expiry while a take out of order commits, on a broker of its own (SQLite): the broker marks the message taken and
 * hands it to its reader before its commit says so, and a retention step can run in between.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { handClock } from "./helpers/hand_clock.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/** The pending TTL, by the hand clock; retention runs every half of it, by the real one. */
const TTL = 400;

test("a message a reply wait takes while an expiry step runs is handed to its reader, not counted expired as well", async (t) => {
  // It was both: the step deleted the message the take had marked taken and not yet committed, counted it expired,
  // and the pending count went below 0 once the take counted it delivered.
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  // The take's commit waits for the next expiry step, which then runs while the take is under way.
  let takenId = 0;
  let stepRan: PromiseWithResolvers<void> | undefined;
  const write = store.write.bind(store);
  store.write = async (batch) => {
    if (batch.inboxes.some((update) => update.polled?.some((range) => range.upTo === takenId))) {
      stepRan = Promise.withResolvers();
      await stepRan.promise;
    }
    return write(batch);
  };
  const expire = store.expire.bind(store);
  let steps = 0;
  store.expire = async (...args) => {
    const step = await expire(...args);
    steps++;
    stepRan?.resolve();
    return step;
  };
  const clock = handClock();
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { pendingTtlMs: uniform(TTL), now: clock.now }));
  t.after(() => broker.close());
  const { envelopes: [reply] } = await broker.publish(hermes, openclaw, { text: "the reply" });
  takenId = reply.id;
  clock.advance(TTL * 1.5);
  const before = steps;
  const taking = broker.takeOne(openclaw, reply.id);
  // Two steps: one while the take commits, and one after, which finds it taken. (Waited for by a check of its own:
  // retention's timer does not hold the process open, and Deno ends a test that waits on it alone.)
  await waitFor(() => steps >= before + 2, 10_000, "two expiry steps");
  assert.equal((await taking)?.id, reply.id);
  const status = broker.status().agents[openclaw];
  assert.deepEqual({ pending: status.pending, expired: status.expired }, { pending: 0, expired: 0 });
  assert.equal((await store.find(reply.id))?.id, reply.id, "kept for replay, as a delivered message is");
});
