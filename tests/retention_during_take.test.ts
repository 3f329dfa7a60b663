/**
 * Expiry while a take commits, on a broker of its own (SQLite): the broker hands messages to their reader (a reply
 * wait's take, a poll's read) or withdraws one before its commit says so, and a retention step can run in between.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { MessageAnswer } from "../src/broker/message_answer.ts";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { ExpiryOptions } from "../src/store/store.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { handClock } from "./helpers/hand_clock.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/** The pending TTL, by the hand clock; retention runs every half of it, by the real one. */
const TTL = 400;

/**
 * A broker on a store whose expiry steps are counted (`steps`, with the `taking` each was given) and can be waited
 * for (`nextStep`, the next one to end).
 */
async function brokerWithSteps(t: { after(fn: () => unknown): void }) {
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  const steps: Array<ExpiryOptions["taking"]> = [];
  const expire = store.expire.bind(store);
  store.expire = async (cutoffs, options) => {
    const step = await expire(cutoffs, options);
    steps.push(options?.taking);
    return step;
  };
  // Waited for by a check of its own: retention's timer does not hold the process open, and Deno ends a test that
  // waits on it alone.
  const nextStep = () => {
    const after = steps.length;
    return waitFor(() => steps.length > after, 10_000, "an expiry step");
  };
  const clock = handClock();
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { pendingTtlMs: uniform(TTL), now: clock.now }));
  t.after(() => broker.close());
  const counts = () => {
    const { pending, expired } = broker.status().agents[openclaw];
    return { pending, expired };
  };
  return { store, broker, clock, steps, counts, nextStep };
}

/** Holds `store`'s commits that `holds` picks until the next expiry step has run. */
function commitsAfterAStep(
  { store, nextStep }: Awaited<ReturnType<typeof brokerWithSteps>>,
  holds: (batch: Parameters<SqliteStore["write"]>[0]) => boolean,
): void {
  const write = store.write.bind(store);
  store.write = async (batch) => {
    if (holds(batch)) await nextStep();
    return write(batch);
  };
}

test("a message a reply wait takes while an expiry step runs is handed to its reader, not counted expired as well", async (t) => {
  // It was both: the step deleted the message the take had marked taken and not yet committed, counted it expired,
  // and the pending count went below 0 once the take counted it delivered.
  const setup = await brokerWithSteps(t);
  const { store, broker, clock, steps, counts } = setup;
  const { envelopes: [reply] } = await broker.publish(hermes, openclaw, { text: "the reply" });
  commitsAfterAStep(setup, (batch) => batch.inboxes.some((update) => update.polled?.some((range) => range.upTo === reply.id)));
  clock.advance(TTL * 1.5);
  const before = steps.length;
  const taking = broker.takeOne(openclaw, reply.id);
  // Two steps: one while the take commits, and one after, which finds it taken.
  await waitFor(() => steps.length >= before + 2, 10_000, "two expiry steps");
  assert.equal((await taking)?.id, reply.id);
  assert.deepEqual(counts(), { pending: 0, expired: 0 });
  assert.equal((await store.find(reply.id))?.id, reply.id, "kept for replay, as a delivered message is");
});

test("a poll whose answer an expiry step runs through hands out what it read, and that alone is not counted expired", async (t) => {
  // A poll reads, encodes its answer a slice at a time (a turn between two), then marks what it read delivered: a
  // step in between deleted what it had read, counted it expired, and the poll handed it out too; the pending count
  // then lost the fresh messages behind it (a peek found 2 pending where /status said 0).
  const setup = await brokerWithSteps(t);
  const { store, broker, clock, counts, nextStep } = setup;
  // Large enough that each read of the answer's pages holds one (a page holds a slice's worth, the first at least).
  const big = "x".repeat(700_000);
  const old = [];
  for (let i = 0; i < 3; i++) old.push((await broker.publish(hermes, openclaw, { text: `${big}${i}` })).envelopes[0]);
  clock.advance(TTL * 1.5);
  // The poll's second read waits for an expiry step: the first page is read, and the step runs before the poll marks it.
  let reads = 0;
  const readAfter = store.readAfter.bind(store);
  store.readAfter = async (...args) => {
    if (args[0] === openclaw && ++reads === 2) await nextStep();
    return readAfter(...args);
  };
  const answer = new MessageAnswer((envelope) => JSON.stringify(envelope), 16 * 1024 * 1024);
  const handed = await broker.poll(openclaw, 10, { answer });
  assert.deepEqual(handed.map((envelope) => envelope.id), [old[0].id]);
  assert.deepEqual(counts(), { pending: 0, expired: 2 });
  assert.deepEqual(await broker.peek(openclaw, 10), []);
  // What the poll handed out is delivered, kept for replay; what it had not read yet expired.
  assert.deepEqual(await Promise.all(old.map(async ({ id }) => (await store.find(id))?.id)), [old[0].id, undefined, undefined]);
});

test("a message withdrawn while an expiry step runs is counted out of pending once, and a withdrawal holds nothing from expiry after", async (t) => {
  const setup = await brokerWithSteps(t);
  const { broker, clock, steps, counts, nextStep } = setup;
  const { envelopes: [cancelled] } = await broker.publish(hermes, openclaw, { text: "cancelled" });
  commitsAfterAStep(setup, (batch) => batch.inboxes.some((update) => update.withdrawn?.some(({ id }) => id === cancelled.id)));
  clock.advance(TTL * 1.5);
  assert.equal(await broker.tasks.withdraw(openclaw, cancelled.id), true);
  assert.deepEqual(counts(), { pending: 0, expired: 0 });
  // A withdrawn id stays taken for good (a second cancel must not count it again), but expiry is no longer told of
  // it: every step was given each withdrawal's id, and a step with thousands of them took seconds.
  await nextStep();
  assert.deepEqual(steps.at(-1), []);
  assert.deepEqual(counts(), { pending: 0, expired: 0 });
});
