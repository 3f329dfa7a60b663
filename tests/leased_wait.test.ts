/**
 * Leased waits (`/wait?peek=1&lease=S`, with `reply_to=Q` the reply to Q): a long poll that shows the next message
 * (or the reply) under a lease and takes nothing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import type { BrokerOptions } from "../src/broker/broker_options.ts";
import { leasedWait } from "../src/broker/leased_wait.ts";
import { REPLY_SCAN } from "../src/broker/shared_waiters.ts";
import { parseAgentName } from "../src/message.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const leo = parseAgentName("leo");
const ann = parseAgentName("ann");

async function openBroker(t: { after(fn: () => unknown): void }, overrides: Partial<BrokerOptions> = {}): Promise<Broker> {
  const dir = tempDir();
  t.after(dir.cleanup);
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, overrides));
  t.after(() => broker.close());
  return broker;
}

test("a leased wait shows the next message to arrive under a lease, taking nothing; the take with its lease has it", async (t) => {
  const broker = await openBroker(t);
  await broker.addAgent(leo);
  const waiting = leasedWait(broker, leo, 30, 10_000, new AbortController().signal);
  // Counted in /status as a /wait is (the agent is online while it waits).
  assert.equal(broker.status().agents[leo]?.waiting, 1);
  const { envelopes: [message] } = await broker.publish(ann, leo, { text: "deploy?" });
  const shown = await waiting;
  assert.equal(shown?.message.id, message.id);
  assert.equal(broker.status().agents[leo]?.waiting, 0);
  // Not taken, and held for its client: another reader's take waits for the lease.
  assert.deepEqual((await broker.peek(leo, 10)).map((envelope) => envelope.id), [message.id]);
  await assert.rejects(broker.leases.take(leo, undefined, () => broker.poll(leo, 10)), { code: "inbox_leased" });
  const taken = await broker.leases.take(leo, shown!.lease, () => broker.poll(leo, 1, { shownUpTo: message.id }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [message.id]);
});

test("a leased wait shows a message already pending at once, and the oldest first", async (t) => {
  const broker = await openBroker(t);
  const { envelopes: [first] } = await broker.publish(ann, leo, { text: "one" });
  await broker.publish(ann, leo, { text: "two" });
  const shown = await leasedWait(broker, leo, 30, 10_000, new AbortController().signal);
  assert.equal(shown?.message.id, first.id);
  // Its client was cancelled: the take of nothing ends the lease and leaves both, in order.
  assert.deepEqual(await broker.leases.take(leo, shown!.lease, () => broker.poll(leo, 1, { shownUpTo: 0 })), []);
  assert.deepEqual((await broker.poll(leo, 10)).map((envelope) => envelope.payload.text), ["one", "two"]);
});

test("a leased wait that times out or is ended holds no lease; one waits for another reader's lease first", async (t) => {
  const broker = await openBroker(t);
  assert.equal(await leasedWait(broker, leo, 30, 50, new AbortController().signal), undefined);
  const ended = new AbortController();
  const ending = leasedWait(broker, leo, 30, 10_000, ended.signal);
  ended.abort();
  assert.equal(await ending, undefined);
  // No lease left behind: another reader gets one at once.
  const other = await broker.leases.acquire(leo, 30);
  await broker.publish(ann, leo, { text: "for the other reader first" });
  let shown = false;
  const waiting = leasedWait(broker, leo, 30, 10_000, new AbortController().signal).then((result) => ((shown = true), result));
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(shown, false, "shown from under another reader's lease");
  // That reader printed nothing after all: its take of nothing ends its lease, and the wait is shown the message.
  await broker.leases.take(leo, other, () => broker.poll(leo, 10, { shownUpTo: 0 }));
  assert.equal((await waiting)?.message.payload.text, "for the other reader first");
});

test("a leased wait ends, showing nothing, once the broker stops", { timeout: 10_000 }, async (t) => {
  // It went on waiting for a message the closing store could not show: the server dropped its connection unanswered
  // after its grace (1 s), where a /wait is answered 204 at once (review28 /tmp/review28/t16_sigterm_leased.py).
  const broker = await openBroker(t);
  await broker.addAgent(leo);
  const waiting = leasedWait(broker, leo, 30, 60_000, new AbortController().signal);
  await broker.close();
  assert.equal(await waiting, undefined);
});

/** `leo` asks `ann` with an earlier message of ann's pending in leo's inbox: resolves with the earlier one and the question. */
async function askAfterAnother(broker: Broker) {
  await broker.addAgent(leo);
  await broker.addAgent(ann);
  const { envelopes: [earlier] } = await broker.publish(ann, leo, { text: "earlier" });
  const { envelopes: [question] } = await broker.publish(leo, ann, { text: "deploy?" });
  return { earlier, question };
}

test("a leased reply wait shows the reply behind an earlier message, taking nothing; take=ID takes it alone, ending the lease", async (t) => {
  const broker = await openBroker(t);
  const { earlier, question } = await askAfterAnother(broker);
  const waiting = leasedWait(broker, leo, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  assert.equal(broker.status().agents[leo]?.waiting, 1);
  // Another message does not end it: only the reply does.
  await broker.publish(ann, leo, { text: "not the reply" });
  const { envelopes: [reply] } = await broker.publish(ann, leo, { text: "yes" }, { replyTo: question.id });
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  assert.equal(broker.status().agents[leo]?.waiting, 0);
  await assert.rejects(broker.leases.take(leo, undefined, () => broker.poll(leo, 10)), { code: "inbox_leased" });
  const taken = await broker.leases.take(leo, shown!.lease, (own) => broker.takeOne(leo, reply.id, { lease: own }));
  assert.equal(taken?.id, reply.id);
  // The lease ended with the take, and nothing ahead of the reply was taken.
  assert.deepEqual((await broker.poll(leo, 10)).map((envelope) => envelope.payload.text), [earlier.payload.text, "not the reply"]);
});

test("a leased reply wait whose client was cancelled leaves the reply in the inbox, in order, as an ordinary message", async (t) => {
  const broker = await openBroker(t);
  const { question } = await askAfterAnother(broker);
  await broker.publish(ann, leo, { text: "yes" }, { replyTo: question.id });
  const shown = await leasedWait(broker, leo, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  assert.equal(shown?.message.payload.text, "yes");
  assert.deepEqual(await broker.leases.take(leo, shown!.lease, (own) => broker.poll(leo, 1, { shownUpTo: 0, lease: own })), []);
  assert.deepEqual((await broker.poll(leo, 10)).map((envelope) => envelope.payload.text), ["earlier", "yes"]);
  // A take of a message no longer pending takes nothing, and still ends its lease.
  const again = await broker.leases.acquire(leo, 30);
  assert.equal(await broker.leases.take(leo, again, (own) => broker.takeOne(leo, shown!.message.id, { lease: own })), undefined);
  await broker.leases.acquire(leo, 30);
});

test("a reply wait, leased or taking, finds the reply behind more pending messages than a reply scan reads", async (t) => {
  const broker = await openBroker(t, { maxPending: uniform(REPLY_SCAN * 2) });
  // An agent that asks while its inbox holds a backlog (`interop mcp`'s ask, with broadcasts left unread).
  await broker.publishBatch(ann, leo, Array.from({ length: REPLY_SCAN + 10 }, (_, index) => ({ text: `backlog ${index}` })));
  const { envelopes: [question] } = await broker.publish(leo, ann, { text: "deploy?" });
  // The reply arrives while the wait waits, and one already pending is shown at once.
  const waiting = leasedWait(broker, leo, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  const { envelopes: [reply] } = await broker.publish(ann, leo, { text: "yes" }, { replyTo: question.id });
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  assert.deepEqual(await broker.leases.take(leo, shown!.lease, (own) => broker.poll(leo, 1, { shownUpTo: 0, lease: own })), []);
  const again = await leasedWait(broker, leo, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  assert.equal(again?.message.id, reply.id);
  // A taking reply wait (`/wait?reply_to=`) finds it there too, once the lease ends.
  assert.deepEqual(await broker.leases.take(leo, again!.lease, (own) => broker.poll(leo, 1, { shownUpTo: 0, lease: own })), []);
  assert.equal((await broker.waitForReply(leo, question.id, 10_000))?.id, reply.id);
});

test("a reply a leased reply wait awaits goes to it as it arrives, not to a taking wait on the same inbox", async (t) => {
  const broker = await openBroker(t);
  await broker.addAgent(leo);
  const { envelopes: [question] } = await broker.publish(leo, ann, { text: "deploy?" });
  // `interop mcp`'s ask while another reader of the inbox waits (`interop wait`): a taking reply wait, which the
  // leased one replaced, was handed the reply first.
  const shown = leasedWait(broker, leo, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  const taking = broker.wait(leo, 10_000);
  while (broker.status().agents[leo]?.waiting !== 2) await new Promise((resolve) => setImmediate(resolve));
  const { envelopes: [reply] } = await broker.publish(ann, leo, { text: "yes" }, { replyTo: question.id });
  const lease = (await shown)?.lease;
  assert.equal((await shown)?.message.id, reply.id);
  // Nor does the taking wait have the next message, behind the reply, while the reply is shown and not taken (a peek
  // stops before the reply too); it has it once the ask took the reply, in order.
  let taken: number | undefined;
  void taking.then((envelope) => (taken = envelope?.id));
  const { envelopes: [next] } = await broker.publish(ann, leo, { text: "next" });
  assert.deepEqual(await broker.peek(leo, 10), []);
  assert.equal(taken, undefined);
  assert.equal((await broker.leases.take(leo, lease, (own) => broker.takeOne(leo, reply.id, { lease: own })))?.id, reply.id);
  assert.equal((await taking)?.id, next.id);
});
