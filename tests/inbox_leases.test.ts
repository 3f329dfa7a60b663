/** Leases on inboxes (InboxLeases): one peek-then-take reader at a time, and no take by anyone else meanwhile. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { InboxLeases } from "../src/broker/inbox_leases.ts";
import { InteropError } from "../src/errors.ts";
import { parseAgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { handClock } from "./helpers/hand_clock.ts";
import { holdNextRead } from "./helpers/peek_mid_read.ts";

const leo = parseAgentName("leo");
const ann = parseAgentName("ann");

function leased(error: unknown, retryAfter: number): boolean {
  return error instanceof InteropError && error.code === "inbox_leased" && error.retryAfter === retryAfter;
}

/** A broker on a SQLite store of its own, closed (and its data dir removed) after the test. */
async function openBroker(t: { after(fn: () => unknown): void }, now?: () => number): Promise<{ broker: Broker; store: SqliteStore }> {
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, now === undefined ? {} : { now }));
  t.after(() => broker.close());
  return { broker, store };
}

test("a lease holds off other leases and takes until its own take ends it, and only on its inbox", async () => {
  let now = 0;
  const leases = new InboxLeases(() => now);
  const id = await leases.acquire(leo, 60);
  now = 20_500;
  await assert.rejects(leases.acquire(leo, 60), (error) => leased(error, 40));
  await assert.rejects(leases.take(leo, undefined, () => Promise.resolve("taken")), (error) => leased(error, 40));
  await assert.rejects(leases.take(leo, "another-id", () => Promise.resolve("taken")), (error) => leased(error, 40));
  assert.equal(await leases.take(ann, undefined, () => Promise.resolve("ann's")), "ann's");
  assert.equal(await leases.take(leo, id, () => Promise.resolve("mine")), "mine");
  // Ended by its take once it is done; one that failed (red team 54: a full disk) leaves it to the holder's next try,
  // which is not refused, or to its end: what it showed is still not taken.
  const next = await leases.acquire(leo, 60);
  await assert.rejects(leases.take(leo, next, () => Promise.reject(new Error("disk"))), /disk/);
  await assert.rejects(leases.take(leo, undefined, () => Promise.resolve("plain")), (error) => leased(error, 60));
  assert.equal(await leases.acquire(leo, 60, next), next, "renewed by its holder");
  assert.equal(await leases.take(leo, next, () => Promise.resolve("mine at last")), "mine at last");
  assert.equal(await leases.take(leo, undefined, () => Promise.resolve("plain")), "plain");
});

test("a lease that expires lets the others in; its late take still ends nothing of theirs", async () => {
  let now = 0;
  const leases = new InboxLeases(() => now);
  const stale = await leases.acquire(leo, 5);
  now = 5_000;
  const fresh = await leases.acquire(leo, 5);
  assert.equal(await leases.take(leo, stale, () => Promise.resolve("late")).catch((error) => error.code), "inbox_leased");
  leases.end(leo, stale);
  await assert.rejects(leases.acquire(leo, 5), (error) => leased(error, 5));
  leases.end(leo, fresh);
  await leases.acquire(leo, 5);
});

test("a lease is granted once the takes already in progress have ended: what its reader peeks next no one takes", async () => {
  const leases = new InboxLeases(() => 0);
  const take = Promise.withResolvers<string>();
  const taking = leases.take(leo, undefined, () => take.promise);
  let granted = false;
  const acquiring = leases.acquire(leo, 60).then(() => (granted = true));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(granted, false);
  // Held from the request on: a take that starts now is refused.
  await assert.rejects(leases.take(leo, undefined, () => Promise.resolve("late")), /Another reader is polling leo's inbox/);
  take.resolve("first");
  assert.equal(await taking, "first");
  await acquiring;
  assert.equal(granted, true);
});

test("a long poll waits for a lease to end, or expire, before it takes anything; its own end cuts the wait short", async () => {
  let now = 0;
  const leases = new InboxLeases(() => now);
  const id = await leases.acquire(leo, 60);
  let freed = false;
  const waiting = leases.whenFree(leo, new AbortController().signal).then(() => (freed = true));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(freed, false);
  leases.end(leo, id);
  await waiting;
  // An expired lease frees it at its expiry, without an end.
  now = 1_000;
  await leases.acquire(leo, 0.05);
  setTimeout(() => (now = 1_050), 10);
  await leases.whenFree(leo, new AbortController().signal);
  const gone = new AbortController();
  await leases.acquire(ann, 60);
  const cut = leases.whenFree(ann, gone.signal);
  gone.abort();
  await cut;
});

test("a holder renews its lease from now with its id; no one else can, and a removed agent's inbox starts free", async () => {
  let now = 0;
  const leases = new InboxLeases(() => now);
  const id = await leases.acquire(leo, 60);
  now = 50_000;
  assert.equal(await leases.acquire(leo, 60, id), id);
  now = 100_000;
  await assert.rejects(leases.acquire(leo, 60), (error) => leased(error, 10));
  await assert.rejects(leases.acquire(leo, 60, "not-the-holder"), (error) => leased(error, 10));
  leases.forget(leo);
  assert.equal(await leases.take(leo, undefined, () => Promise.resolve("free")), "free");
});

test("a broker's lease lasts its seconds whichever way its wall clock is stepped", async (t) => {
  // Leases ran on the wall clock: an hour forward ended a 60 s lease at once (another reader took what its holder had
  // shown: a repeat), an hour back held a dead reader's lease for the hour (409, retry-after 3595).
  const clock = handClock();
  const { broker } = await openBroker(t, clock.now);
  const held = await broker.leases.acquire(leo, 60);
  clock.advance(3_600_000);
  await assert.rejects(broker.leases.take(leo, undefined, () => broker.poll(leo, 10)), (error) => leased(error, 60));
  broker.leases.end(leo, held);
  await broker.leases.acquire(leo, 0.2);
  clock.advance(-7_200_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(await broker.leases.take(leo, undefined, () => broker.poll(leo, 10)), [], "the expired lease let the next reader in");
});

test("an awaited reply a leased reader may have shown is left to that reader; the asker gets it once the lease ends", async (t) => {
  const { broker } = await openBroker(t);
  const hermes = parseAgentName("hermes");
  const openclaw = parseAgentName("openclaw");
  const { envelopes: [question] } = await broker.publish(hermes, openclaw, { text: "which branch?" });
  // No one waits for it yet: the reply stays in hermes's inbox, where a reader (interop poll) leases and shows it.
  const { envelopes: [reply] } = await broker.publish(openclaw, hermes, { text: "main" }, { replyTo: question.id });
  const lease = await broker.leases.acquire(hermes, 60);
  assert.deepEqual((await broker.peek(hermes, 10)).map((envelope) => envelope.id), [reply.id]);
  // The asker's wait (a retried A2A SendMessage, a SubscribeToTask): taking the reply now hands it out twice.
  let answered: number | undefined;
  const waiting = broker.waitForReply(hermes, question.id, 10_000).then((envelope) => (answered = envelope?.id ?? 0));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(answered, undefined, "the asker took the reply from under the reader's lease");
  // The reader printed nothing after all: its take of nothing ends the lease, and the asker is handed the reply.
  assert.deepEqual(await broker.leases.take(hermes, lease, () => broker.poll(hermes, 10, { shownUpTo: 0 })), []);
  await waiting;
  assert.equal(answered, reply.id);
});

test("an awaited reply whose hand-off after a lease fails in the store answers the asker with the error, not its timeout", async (t) => {
  const { broker, store } = await openBroker(t);
  const hermes = parseAgentName("hermes");
  const openclaw = parseAgentName("openclaw");
  const { envelopes: [question] } = await broker.publish(hermes, openclaw, { text: "which branch?" });
  await broker.publish(openclaw, hermes, { text: "main" }, { replyTo: question.id });
  const lease = await broker.leases.acquire(hermes, 60);
  // The asker's first hand-off is refused by the lease: seen here, so the store fails only for the one after it.
  const refused = Promise.withResolvers<void>();
  const take = broker.leases.take.bind(broker.leases);
  broker.leases.take = (agent, id, work) => take(agent, id, work).catch((error) => (refused.resolve(), Promise.reject(error)));
  const started = performance.now();
  const waiting = broker.waitForReply(hermes, question.id, 3_000);
  await refused.promise;
  store.readReplies = () => Promise.reject(new InteropError("storage_unavailable", "Storage unavailable: disk I/O error"));
  broker.leases.end(hermes, lease);
  await assert.rejects(waiting, (error) => error instanceof InteropError && error.code === "storage_unavailable");
  assert.ok(performance.now() - started < 2_000, "the asker waited out its timeout");
});

test("a sender's withdrawal (A2A CancelTask) of a message a leased reader may have shown is refused while the lease holds; that reader's take then has it", async (t) => {
  // It was withdrawn from under the lease: the reader had printed a message its sender then saw cancelled, and
  // its take up to that message found it gone.
  const { broker } = await openBroker(t);
  const { envelopes: [message] } = await broker.publish(ann, leo, { text: "deploy?" });
  const lease = await broker.leases.acquire(leo, 60);
  assert.deepEqual((await broker.peek(leo, 10)).map((envelope) => envelope.id), [message.id]);
  await assert.rejects(broker.tasks.withdraw(leo, message.id), (error) => leased(error, 60));
  const taken = await broker.leases.take(leo, lease, () => broker.poll(leo, 10, { shownUpTo: message.id }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [message.id]);
  assert.equal(await broker.tasks.withdraw(leo, message.id), false, "delivered: no longer withdrawable");
  // Without a lease a withdrawal goes through as before.
  const { envelopes: [second] } = await broker.publish(ann, leo, { text: "never mind" });
  assert.equal(await broker.tasks.withdraw(leo, second.id), true);
});

test("a plain wait's take of a pending message is a take the lease sees: a peek under a lease granted meanwhile does not show it too", { timeout: 20_000 }, async (t) => {
  // `/wait` waits for the inbox to be free, then took with a poll the lease knew nothing of: `interop poll` leasing the
  // inbox while that poll read was shown the same message (it printed it, its take got nothing, the wait had it).
  const { broker, store } = await openBroker(t);
  const { envelopes: [pending] } = await broker.publish(ann, leo, { text: "once" });
  const held = holdNextRead(store);
  const waiting = broker.wait(leo, 10_000);
  const { lease, messages } = await held.peekMidRead(broker, leo);
  // The wait's read is done: it took the message, or waits for the next.
  const agent = () => broker.status().agents[leo];
  while (agent()?.pending !== 0 && agent()?.waiting !== 1) await new Promise((resolve) => setImmediate(resolve));
  const shownUpTo = messages.at(-1)?.id ?? 0;
  const taken = await broker.leases.take(leo, lease, () => broker.poll(leo, 10, { shownUpTo }));
  assert.deepEqual(taken.map((envelope) => envelope.id), messages.map((envelope) => envelope.id), "the peek showed what its take did not get");
  // Not both: the message went to one reader, once.
  const waited = messages.length > 0 ? undefined : await waiting;
  assert.deepEqual([waited?.id, ...taken.map((envelope) => envelope.id)].filter((id) => id !== undefined), [pending.id]);
  assert.equal(broker.status().agents[leo]?.pending, 0);
});

test("a plain wait that finds the inbox leased after all takes nothing the lease holder was shown; it has it once the lease ends untaken", { timeout: 20_000 }, async (t) => {
  const { broker } = await openBroker(t);
  const { envelopes: [pending] } = await broker.publish(ann, leo, { text: "once" });
  // Leased between the route's wait for a free inbox and the wait's take (broker.wait is that take).
  const lease = await broker.leases.acquire(leo, 30);
  assert.deepEqual((await broker.peek(leo, 10)).map((envelope) => envelope.id), [pending.id]);
  let waited: number | undefined;
  const waiting = broker.wait(leo, 10_000).then((envelope) => (waited = envelope?.id));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(waited, undefined, "the wait took what the lease holder was shown");
  // The holder leaves it (its take of nothing ends the lease): the wait has it.
  assert.deepEqual(await broker.leases.take(leo, lease, () => broker.poll(leo, 10, { shownUpTo: 0 })), []);
  await waiting;
  assert.equal(waited, pending.id);
});
