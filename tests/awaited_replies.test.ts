/**
 * On a broker of its own, a reply that a wait awaits (`interop mcp`'s leased ask, `/ask`) reaches that wait and no
 * other reader of the asker's inbox: a stream (`interop listen` on the same agent), a poll or a peek, a plain wait
 * stop before it while the wait lasts, and read on in order once it was taken or the wait ended.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { leasedWait, REPOLL_GRACE_MS } from "../src/broker/leased_wait.ts";
import { type Envelope, parseAgentName } from "../src/message.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { handClock } from "./helpers/hand_clock.ts";
import { holdNextRead } from "./helpers/peek_mid_read.ts";
import { streamFromCursor } from "./helpers/text_sink.ts";

const hermes = parseAgentName("hermes");
const openclaw = parseAgentName("openclaw");

async function openBroker(t: TestContext, options: { pendingTtlMs?: number; now?: () => number } = {}): Promise<Broker> {
  const dir = tempDir();
  t.after(dir.cleanup);
  const { pendingTtlMs, now } = options;
  const broker = await Broker.open(
    testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, {
      agents: [hermes, openclaw],
      ...(pendingTtlMs === undefined ? {} : { pendingTtlMs: uniform(pendingTtlMs), now }),
    }),
  );
  t.after(() => broker.close());
  return broker;
}

/** Resolves once `done()` holds, looking after each turn of the event loop (the test's timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

/** hermes asks openclaw (as `interop mcp`'s ask sends its question): the question. */
async function question(broker: Broker): Promise<Envelope> {
  return (await broker.publish(hermes, openclaw, { text: "deploy?" })).envelopes[0];
}

/** openclaw sends hermes a message before the reply, the reply, and one after it: the three, in id order. */
async function answer(broker: Broker, asked: Envelope): Promise<[Envelope, Envelope, Envelope]> {
  const { envelopes: [before] } = await broker.publish(openclaw, hermes, { text: "before" });
  const { envelopes: [reply] } = await broker.publish(openclaw, hermes, { text: "yes" }, { replyTo: asked.id });
  const { envelopes: [after] } = await broker.publish(openclaw, hermes, { text: "after" });
  return [before, reply, after];
}

test("a stream of the asker's inbox stops before the reply a leased ask awaits, and reads on in order once the ask took it", async (t) => {
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const asked = await question(broker);
  const waiting = leasedWait(broker, hermes, 30, 10_000, new AbortController().signal, { replyTo: asked.id });
  const [before, reply, after] = await answer(broker, asked);
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  // The stream had what came before the reply; not the reply, nor what came after it (that would pass it by).
  await until(() => stream.ids().length > 0);
  assert.deepEqual(stream.ids(), [before.id]);
  // The ask's take (`/poll?take=ID&lease_id=`): the reply is there for it, and the stream reads on.
  const taken = await broker.leases.take(hermes, shown!.lease, (own) => broker.takeOne(hermes, reply.id, { lease: own }));
  assert.equal(taken?.id, reply.id);
  await until(() => stream.ids().length > 1);
  assert.deepEqual(stream.ids(), [before.id, after.id]);
  // Every message delivered once: nothing pending, no repeats.
  await until(() => broker.status().agents[hermes]?.pending === 0);
  assert.equal(broker.status().agents[hermes]?.redelivered, 0);
  assert.equal(broker.status().agents[hermes]?.waiting, 0);
});

test("a poll, a peek and a plain wait of the asker's inbox stop before the reply a leased ask awaits, and read on once it was taken", async (t) => {
  const broker = await openBroker(t);
  const asked = await question(broker);
  const waiting = leasedWait(broker, hermes, 30, 10_000, new AbortController().signal, { replyTo: asked.id });
  const [before, reply, after] = await answer(broker, asked);
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  // A peek (as another leased wait, `interop mcp`'s wait, looks) and a poll see what comes before the reply only.
  assert.deepEqual((await broker.peek(hermes, 10)).map((envelope) => envelope.id), [before.id]);
  assert.deepEqual((await broker.poll(hermes, 10)).map((envelope) => envelope.id), [before.id]);
  assert.deepEqual(await broker.poll(hermes, 10), []);
  // A plain wait (`interop wait`) is handed nothing that comes after the reply meanwhile.
  let waited: Envelope | undefined;
  const plain = broker.wait(hermes, 10_000).then((envelope) => (waited = envelope));
  const { envelopes: [later] } = await broker.publish(openclaw, hermes, { text: "later" });
  assert.deepEqual(await broker.peek(hermes, 10), []);
  assert.equal(waited, undefined, "a plain wait passed the awaited reply by");
  assert.equal((await broker.leases.take(hermes, shown!.lease, (own) => broker.takeOne(hermes, reply.id, { lease: own })))?.id, reply.id);
  // Once the ask took the reply, the plain wait has the next message in order, and the poll the rest.
  assert.equal((await plain)?.id, after.id);
  assert.deepEqual((await broker.poll(hermes, 10)).map((envelope) => envelope.id), [later.id]);
  assert.equal(broker.status().agents[hermes]?.pending, 0);
});

test("a leased ask that leaves the reply (its call cancelled, or its client gone) releases it to the stream, in order", async (t) => {
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  // Cancelled: the take of nothing (`up_to=0`) ends the lease.
  const cancelled = await question(broker);
  const waiting = leasedWait(broker, hermes, 30, 10_000, new AbortController().signal, { replyTo: cancelled.id });
  const [before, reply, after] = await answer(broker, cancelled);
  const shown = await waiting;
  await until(() => stream.ids().length > 0);
  assert.deepEqual(stream.ids(), [before.id]);
  assert.deepEqual(await broker.leases.take(hermes, shown!.lease, (own) => broker.poll(hermes, 1, { shownUpTo: 0, lease: own })), []);
  await until(() => stream.ids().length > 2);
  assert.deepEqual(stream.ids(), [before.id, reply.id, after.id]);
  // Gone without a word: the lease the reply was shown under expires, and with it the hold.
  const abandoned = await question(broker);
  const gone = leasedWait(broker, hermes, 1, 10_000, new AbortController().signal, { replyTo: abandoned.id });
  const [before2, reply2, after2] = await answer(broker, abandoned);
  assert.equal((await gone)?.message.id, reply2.id);
  await until(() => stream.ids().length > 3);
  assert.deepEqual(stream.ids().slice(3), [before2.id]);
  await until(() => stream.ids().length > 5);
  assert.deepEqual(stream.ids().slice(3), [before2.id, reply2.id, after2.id]);
  assert.equal(broker.status().agents[hermes]?.pending, 0);
  assert.equal(broker.status().agents[hermes]?.redelivered, 0);
});

/** A leased reply wait for the reply to `asked` (`interop mcp`'s ask) is shown `reply`, and takes it with its lease. */
async function takenByLeasedWait(broker: Broker, asked: Envelope, reply: Envelope): Promise<void> {
  const shown = await leasedWait(broker, hermes, 30, 10_000, new AbortController().signal, { replyTo: asked.id });
  assert.equal(shown?.message.id, reply.id);
  assert.equal((await broker.leases.take(hermes, shown!.lease, (own) => broker.takeOne(hermes, reply.id, { lease: own })))?.id, reply.id);
}

test("a leased ask's reply committed between two of its long polls waits for the next one, not on the asker's stream", async (t) => {
  // The hold ended with the poll that showed nothing: the stream took the reply before interop mcp's ask polled again,
  // and the ask answered "No reply" after its timeout (pglease30).
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const asked = await question(broker);
  assert.equal(await leasedWait(broker, hermes, 30, 50, new AbortController().signal, { replyTo: asked.id }), undefined);
  const waitEnded = performance.now();
  const [before, reply, after] = await answer(broker, asked);
  await until(() => stream.ids().length > 0);
  const streamed = stream.ids();
  // The hold is REPOLL_GRACE_MS long: a machine too loaded to publish within it lets the stream have the reply.
  if (performance.now() - waitEnded >= REPOLL_GRACE_MS) return t.skip("publishing took longer than the hold");
  assert.deepEqual(streamed, [before.id]);
  await takenByLeasedWait(broker, asked, reply);
  await until(() => stream.ids().length > 1);
  assert.deepEqual(stream.ids(), [before.id, after.id]);
});

test("a leased ask that times out before its reply, and polls no more, leaves the stream reading on: the reply comes to it, in order", async (t) => {
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const asked = await question(broker);
  assert.equal(await leasedWait(broker, hermes, 30, 50, new AbortController().signal, { replyTo: asked.id }), undefined);
  const [before, reply, after] = await answer(broker, asked);
  await until(() => stream.ids().length > 2);
  assert.deepEqual(stream.ids(), [before.id, reply.id, after.id]);
});

test("a reply held from its question's commit (hold_reply), committed before the ask's first wait, waits for that wait, not on the stream", async (t) => {
  // Published plain, the question's reply committed in the round trip before interop mcp's ask's first leased wait
  // went to hermes's stream, and the ask answered "No reply" after its timeout.
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const asked = await broker.publishHoldingReply(hermes, openclaw, { text: "deploy?" }, 60_000);
  const [before, reply, after] = await answer(broker, asked);
  await until(() => stream.ids().length > 0);
  assert.deepEqual(stream.ids(), [before.id]);
  await takenByLeasedWait(broker, asked, reply);
  await until(() => stream.ids().length > 1);
  assert.deepEqual(stream.ids(), [before.id, after.id]);
});

test("a reply held from its question's commit that no wait took over comes to the stream, in order, once the hold's time passed", async (t) => {
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const asked = await broker.publishHoldingReply(hermes, openclaw, { text: "deploy?" }, 200);
  const [before, reply, after] = await answer(broker, asked);
  await until(() => stream.ids().length > 2);
  assert.deepEqual(stream.ids(), [before.id, reply.id, after.id]);
});

// Without the take-over, the hold from the commit (ten minutes here) fails the test by its timeout.
test("a leased reply wait takes over the hold from the question's commit: once it ended, its own rules let the stream read on", { timeout: 30_000 }, async (t) => {
  // Left to its own time, the hold from the commit kept the reply from the stream after the ask gave up.
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const asked = await broker.publishHoldingReply(hermes, openclaw, { text: "deploy?" }, 600_000);
  assert.equal(await leasedWait(broker, hermes, 30, 50, new AbortController().signal, { replyTo: asked.id }), undefined);
  const [before, reply, after] = await answer(broker, asked);
  // Held REPOLL_GRACE_MS after the wait, for a next one that never comes.
  await until(() => stream.ids().length > 2);
  assert.deepEqual(stream.ids(), [before.id, reply.id, after.id]);
});

test("an awaited reply that --pending-ttl expired while its leased ask held it stops the asker's stream no more", async (t) => {
  // The reply was gone, but its cursor never passed it: the stream took nothing more until the lease ended, and the
  // lease, renewed, need never end.
  const ttl = 400;
  const clock = handClock();
  const broker = await openBroker(t, { pendingTtlMs: ttl, now: clock.now });
  const stream = await streamFromCursor(broker, hermes);
  const asked = await question(broker);
  const waiting = leasedWait(broker, hermes, 60, 10_000, new AbortController().signal, { replyTo: asked.id });
  const { envelopes: [reply] } = await broker.publish(openclaw, hermes, { text: "yes" }, { replyTo: asked.id });
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  // Past the bound a lease holds expiry to (two TTLs), the lease renewed: the reply expires under it.
  clock.advance(ttl * 2.5);
  assert.equal(await broker.leases.acquire(hermes, 60, shown!.lease), shown!.lease);
  await waitFor(() => broker.status().agents[hermes].expired === 1, 10_000, "the held reply to expire");
  const { envelopes: [later] } = await broker.publish(openclaw, hermes, { text: "later" });
  await waitFor(() => stream.ids().length > 0, 10_000, "the stream to read on past the expired reply");
  assert.deepEqual(stream.ids(), [later.id]);
  assert.equal(broker.status().agents[hermes]?.pending, 0);
});

/**
 * hermes's /ask of openclaw, answered (with a message before the reply and one after) while the ask settles: the 20 ms
 * it waits to see whether its client closed with the request (client_settle.ts), held open until `settle`.
 */
async function answeredWhileSettling(broker: Broker) {
  const settling = Promise.withResolvers<void>();
  const asked = Promise.withResolvers<void>();
  const asking = broker.ask(hermes, openclaw, { text: "deploy?" }, 10_000, undefined, () => {
    asked.resolve();
    return settling.promise;
  });
  await asked.promise;
  const [question] = await broker.peek(openclaw, 1);
  const [before, reply, after] = await answer(broker, question);
  return { asking, settle: () => settling.resolve(), before, reply, after };
}

test("an /ask's reply committed while the ask settles waits in the inbox for it, not on the asker's stream", async (t) => {
  const broker = await openBroker(t);
  const stream = await streamFromCursor(broker, hermes);
  const { asking, settle, before, reply, after } = await answeredWhileSettling(broker);
  await until(() => stream.ids().length > 0);
  assert.deepEqual(stream.ids(), [before.id]);
  settle();
  assert.equal((await asking).reply?.id, reply.id);
  await until(() => stream.ids().length > 1);
  assert.deepEqual(stream.ids(), [before.id, after.id]);
});

test("an `interop mcp` wait that found nothing before an /ask's reply is shown what follows it once the ask took it", async (t) => {
  const broker = await openBroker(t);
  const { asking, settle, before, reply, after } = await answeredWhileSettling(broker);
  assert.deepEqual((await broker.poll(hermes, 10)).map((envelope) => envelope.id), [before.id]);
  // The leased wait `interop mcp`'s wait tool makes: nothing to show before the reply, so it waits.
  let shown: number | undefined;
  const waiting = leasedWait(broker, hermes, 30, 10_000, new AbortController().signal).then((found) => (shown = found?.message.id));
  await broker.peek(hermes, 1);
  assert.equal(shown, undefined);
  settle();
  assert.equal((await asking).reply?.id, reply.id);
  await waiting;
  assert.equal(shown, after.id);
});

/** hermes's question, answered, and `interop poll`'s peek under a lease, before any wait for the reply: it shows all three. */
async function shownBeforeTheWait(t: TestContext) {
  const broker = await openBroker(t);
  const asked = await question(broker);
  const [before, reply, after] = await answer(broker, asked);
  const lease = await broker.leases.acquire(hermes, 30);
  assert.deepEqual((await broker.peek(hermes, 10)).map((envelope) => envelope.id), [before.id, reply.id, after.id]);
  return { broker, asked, before, reply, after, lease };
}

test("a reader that showed the reply before a wait awaited it takes it with what it showed, as it printed them", async (t) => {
  // `interop poll`'s peek showed all three; then a /wait?reply_to= for the reply begins.
  const { broker, asked, before, reply, after, lease } = await shownBeforeTheWait(t);
  const waiting = broker.waitForReply(hermes, asked.id, 200);
  const taken = await broker.leases.take(hermes, lease, () => broker.poll(hermes, 10, { shownUpTo: after.id }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [before.id, reply.id, after.id]);
  // The reply was the reader's (it printed it): the wait gets nothing, and nothing is left to print again.
  assert.equal(await waiting, undefined);
  assert.deepEqual(await broker.poll(hermes, 10), []);
});

test("a take up to what its reader showed that takes an awaited reply lets the stream read on at once, not after the wait", async (t) => {
  // The stream stopped before the reply; the take moved the cursor past it, but nothing woke the stream: what followed
  // waited for the next message to the inbox or the end of the reply's wait (here 10 minutes).
  const { broker, asked, before, reply, after, lease } = await shownBeforeTheWait(t);
  const ended = new AbortController();
  const waiting = broker.waitForReply(hermes, asked.id, 600_000, ended.signal);
  t.after(() => ended.abort());
  // `interop listen` connects meanwhile: it has what comes before the reply, and stops there.
  const stream = await streamFromCursor(broker, hermes);
  await waitFor(() => stream.ids().length > 0, 10_000, "the stream to have what precedes the reply");
  const { envelopes: [later] } = await broker.publish(openclaw, hermes, { text: "later" });
  // It takes up to the reply only (it printed no more yet).
  const taken = await broker.leases.take(hermes, lease, (own) => broker.poll(hermes, 10, { shownUpTo: reply.id, lease: own }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [reply.id]);
  await waitFor(() => stream.ids().includes(later.id), 10_000, "the stream to read on past the reply the take took");
  assert.deepEqual(stream.ids(), [before.id, after.id, later.id]);
  assert.equal(broker.status().agents[hermes]?.pending, 0);
  ended.abort();
  assert.equal(await waiting, undefined);
});

test("a plain wait served once a held reply is released is not handed what a peek under a lease granted meanwhile showed", { timeout: 20_000 }, async (t) => {
  // The release served plain waiters with a take the lease did not see: a peek (`interop poll`) leasing the inbox while
  // that take read showed the reply too, and printed it as the plain wait was handed it (a repeat).
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { agents: [hermes, openclaw] }));
  t.after(() => broker.close());
  const asked = await question(broker);
  // `interop wait` on the asker, waiting before the reply comes: the reply is held from it.
  let waited: Envelope | undefined;
  const plain = broker.wait(hermes, 10_000).then((envelope) => (waited = envelope));
  await until(() => broker.status().agents[hermes]?.waiting === 1);
  const waiting = leasedWait(broker, hermes, 30, 10_000, new AbortController().signal, { replyTo: asked.id });
  const { envelopes: [reply] } = await broker.publish(openclaw, hermes, { text: "yes" }, { replyTo: asked.id });
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  // The next read of one message from the store (the release's take for the plain wait) waits for a peek.
  const held = holdNextRead(store, 1);
  // The ask's call was cancelled: its take of nothing ends the lease, and with it the hold (read as 10, past the gate).
  assert.deepEqual(await broker.leases.take(hermes, shown!.lease, (own) => broker.poll(hermes, 10, { shownUpTo: 0, lease: own })), []);
  const { lease, messages } = await held.peekMidRead(broker, hermes);
  await plain;
  const taken = await broker.leases.take(hermes, lease, (own) => broker.poll(hermes, 10, { shownUpTo: messages.at(-1)?.id ?? 0, lease: own }));
  // The reply went to one reader, once: what the peek showed, its take took.
  assert.deepEqual(taken.map((envelope) => envelope.id), messages.map((envelope) => envelope.id));
  assert.deepEqual([waited?.id, ...messages.map((envelope) => envelope.id)].filter((id) => id !== undefined), [reply.id]);
  assert.equal(broker.status().agents[hermes]?.pending, 0);
});
