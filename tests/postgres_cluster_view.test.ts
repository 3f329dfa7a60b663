/**
 * A broker sharing PostgreSQL answers as the store stands, not as its cluster view stood when it last read it (once a
 * second): asked at once after broker A created, removed or read from an inbox, broker B has not read the view since.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName } from "../src/message.ts";
import type { PostgresStore } from "../src/store/postgres.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const brokersOn = twoBrokersOn(sharedPostgres());

/**
 * B does not hear of removals on A (their notification makes it read the view at once, in a race with the test's
 * request): only a read of the view it makes, every second or for a request, tells it.
 */
function deafToRemovals(store: PostgresStore, host: "a" | "b"): void {
  if (host !== "b") return;
  const shared = store.shared!;
  const watch = shared.watch.bind(shared);
  shared.watch = (wake, replaced) => watch(wake, replaced, () => {});
}

/** The agents /status lists on `broker`. */
async function listed(broker: { statusJson(): Promise<Uint8Array> }): Promise<string[]> {
  return Object.keys(JSON.parse(new TextDecoder().decode(await broker.statusJson())).agents).sort();
}

test("/status on a broker sharing PostgreSQL lists an agent another broker added a moment before", async (t) => {
  const brokers = await brokersOn(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  assert.deepEqual(await listed(b), [hermes, openclaw]);
});

test("/agents on a broker sharing PostgreSQL leaves out an agent another broker removed a moment before", async (t) => {
  const brokers = await brokersOn(t, {}, deafToRemovals);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  assert.deepEqual(await listed(b), [hermes, openclaw], "B has read the view with openclaw in it");
  await a.removeAgent(openclaw, false);
  assert.deepEqual(Object.keys((await b.currentStatus()).agents), [hermes]);
});

test("interop agent add on a broker sharing PostgreSQL says an agent another broker added a moment before existed", async (t) => {
  const brokers = await brokersOn(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  assert.equal(await a.addAgent(openclaw), true);
  assert.equal(await b.addAgent(openclaw), false);
});

test("interop agent add on a broker sharing PostgreSQL creates an agent another broker removed a moment before", async (t) => {
  const brokers = await brokersOn(t, {}, deafToRemovals);
  if (brokers === undefined) return;
  const { a, b, stored } = brokers;
  await a.addAgent(openclaw);
  assert.deepEqual(await listed(b), [hermes, openclaw], "B has read the view with openclaw in it");
  await a.removeAgent(openclaw, false);
  assert.equal(await b.addAgent(openclaw), true);
  assert.equal((await stored()).inboxes, 1);
});

test("interop agent remove on a broker sharing PostgreSQL removes an agent another broker added a moment before", async (t) => {
  const brokers = await brokersOn(t);
  if (brokers === undefined) return;
  const { a, b, stored } = brokers;
  await a.addAgent(openclaw);
  await a.publish(hermes, openclaw, { text: "made on A" });
  assert.equal(await b.removeAgent(openclaw, true), 1);
  assert.equal((await stored()).inboxes, 0);
});

test("a broadcast on a broker sharing PostgreSQL reaches an agent another broker added a moment before", async (t) => {
  const brokers = await brokersOn(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const { envelopes } = await b.publish(hermes, undefined, { text: "to everyone" });
  assert.deepEqual(envelopes.map((envelope) => envelope.to), [openclaw]);
});

test("an A2A task on a broker sharing PostgreSQL is delivered once a reader on another broker read its message", async (t) => {
  const brokers = await brokersOn(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const [{ id }] = (await a.publish(hermes, openclaw, { text: "read on A" })).envelopes;
  // ntfy's poll: the cursor moves by a claim; the message is not marked taken.
  assert.deepEqual((await a.replay(openclaw, { from: "cursor" }, 10)).map((envelope) => envelope.id), [id]);
  assert.equal(await b.tasks.isDelivered(openclaw, id, await b.tasks.outcome(id)), true);
});

test("/status on a broker sharing PostgreSQL answers from its last view when the server stops answering the read", async (t) => {
  let hung = false;
  const brokers = await brokersOn(t, {}, (store, host) => {
    if (host !== "b") return;
    const shared = store.shared!;
    const cluster = shared.cluster.bind(shared);
    // A server that takes the query and never answers (not yet seen as an outage: the connection is up).
    shared.cluster = () => hung ? new Promise(() => {}) : cluster();
  });
  if (brokers === undefined) return;
  const { b } = brokers;
  hung = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const gaveUp = new Promise<string[]>((resolve) => (timer = setTimeout(() => resolve(["no answer in 60 s"]), 60_000)));
  t.after(() => clearTimeout(timer));
  assert.deepEqual(await Promise.race([listed(b), gaveUp]), [hermes]);
});

test("a count of a shared store's pending messages reads again only the inboxes a write changed since the last one", async (t) => {
  const brokers = await brokersOn(t, { maxPending: uniform(100) });
  if (brokers === undefined) return;
  const { a, admin, storeA, storeB } = brokers;
  await a.addAgent(openclaw);
  const counted = async () => (await storeB.shared!.cluster(true)).pending!.get(openclaw);
  const truth = async () =>
    (await admin<{ n: number }[]>`
      SELECT count(*)::int AS n FROM interop_messages
      WHERE recipient = ${openclaw} AND NOT polled AND id > (SELECT delivered_id FROM interop_inboxes WHERE agent = ${openclaw})`)[0].n;
  const ids = (await a.publishBatch(hermes, openclaw, [1, 2, 3, 4, 5].map((n) => ({ n })))).envelopes.map((envelope) => envelope.id);
  assert.equal(await counted(), 5);
  // A delete behind the store's back writes neither the inbox nor its head: the count read before stands (the
  // inbox's messages, 0.25 s of reading for 1,000,000, were not read again).
  await admin`DELETE FROM interop_messages WHERE id = ${ids[4]}`;
  assert.equal(await counted(), 5);
  // Each write of the store that changes a count is read again.
  const writes: Array<[string, () => Promise<unknown>]> = [
    ["a publish", () => a.publish(hermes, openclaw, { n: 6 })],
    ["a poll", () => a.poll(openclaw, 1)],
    ["a claim (ntfy's poll)", () => a.replay(openclaw, { from: "cursor" }, 1)],
    ["a take out of order", () => a.takeOne(openclaw, ids[3])],
    ["a removal, and the inbox created again", async () => {
      await a.removeAgent(openclaw, true);
      await a.addAgent(openclaw);
    }],
    ["a publish to the new inbox", () => a.publishBatch(hermes, openclaw, [{ n: 8 }, { n: 9 }])],
    ["an expiry", () => storeA.expire(new Map([[openclaw, Date.now() + 60_000]]))],
  ];
  let before = await truth();
  for (const [write, made] of writes) {
    await made();
    const count = await counted();
    assert.notEqual(count, before, `${write} changed the count`);
    assert.equal(count, await truth(), write);
    before = count;
  }
});
