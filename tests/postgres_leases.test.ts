/**
 * Inbox leases on a PostgreSQL store other brokers share: kept on the inbox's row, granted under the lock its takes
 * hold, and added to an existing database by a migration.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { type TestContext, test } from "node:test";
import postgres from "postgres";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";
import { isInboxLeased } from "../src/store/store.ts";
import { leasedWait, REPOLL_GRACE_MS } from "../src/broker/leased_wait.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { migrate } from "../src/store/postgres_schema.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { waitFor } from "./helpers/broker.ts";
import { handClock } from "./helpers/hand_clock.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const openclaw = "openclaw" as AgentName;
const hermes = "hermes" as AgentName;
const cluster = sharedPostgres();
const twoBrokers = twoBrokersOn(cluster);

test("a lease is granted once the take holding the inbox's row commits, and on every broker it holds", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, admin } = brokers;
  await a.addAgent(openclaw);
  // A take in progress on another broker: it holds the inbox's row until it commits.
  const taking = Promise.withResolvers<void>();
  const locked = Promise.withResolvers<void>();
  const take = admin.begin(async (tx) => {
    await tx`SELECT 1 FROM interop_inboxes WHERE agent = ${openclaw} FOR NO KEY UPDATE`;
    locked.resolve();
    await taking.promise;
  });
  let granted = false;
  let acquiring: Promise<string>;
  try {
    await locked.promise;
    acquiring = a.leases.acquire(openclaw, 60).then((id) => ((granted = true), id));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(granted, false, "granted while a take held the inbox");
  } finally {
    // Committed also when the test failed: the admin connection closes after it.
    taking.resolve();
    await take;
  }
  const lease = await acquiring;
  await assert.rejects(b.leases.acquire(openclaw, 60), { code: "inbox_leased" });
  await assert.rejects(b.poll(openclaw, 10), { code: "inbox_leased" });
  assert.deepEqual(await b.leases.take(openclaw, lease, (own) => b.poll(openclaw, 10, { lease: own })), []);
  assert.notEqual(await a.leases.acquire(openclaw, 60), lease, "the holder's take on B ended the lease");
});

/** The pending TTL of these tests, by the hand clock; retention runs every half of it, by the real one. */
const TTL = 400;

test("--pending-ttl expires nothing of an inbox under a lease, on any broker, one more TTL at most; the take has what was shown", async (t) => {
  // Expired under the lease, what the reader showed was gone by its take: it reported less than it had shown.
  const clock = handClock();
  const brokers = await twoBrokers(t, { pendingTtlMs: uniform(TTL), now: clock.now });
  if (brokers === undefined) return;
  const { a, admin } = brokers;
  await a.addAgent(openclaw);
  const expired = async (agent: AgentName) => (await admin<{ expired: number }[]>`SELECT expired FROM interop_inboxes WHERE agent = ${agent}`)[0].expired;
  await a.publish(hermes, openclaw, { text: "shown" });
  await a.publish(hermes, openclaw, { text: "shown, then let go" });
  const lease = await a.leases.acquire(openclaw, 60);
  const [shown] = await a.peek(openclaw, 1);
  await a.publish(openclaw, hermes, { text: "not leased" });
  clock.advance(TTL * 1.5);
  await waitFor(async () => Number(await expired(hermes)) === 1, 10_000, "hermes's message to expire");
  assert.equal(Number(await expired(openclaw)), 0, "kept under the lease");
  const taken = await a.leases.take(openclaw, lease, (own) => a.poll(openclaw, 10, { shownUpTo: shown.id, lease: own }));
  assert.deepEqual(taken.map((message) => message.payload.text), ["shown"]);
  await waitFor(async () => Number(await expired(openclaw)) === 1, 10_000, "the one left to expire once the lease ended");
});

test("a lease renewed for ever holds --pending-ttl expiry of its inbox one more TTL, on every broker, not for ever", async (t) => {
  // The reader's renewals held its inbox's messages for as long as it renewed: expiry never came.
  const clock = handClock();
  const brokers = await twoBrokers(t, { pendingTtlMs: uniform(TTL), now: clock.now });
  if (brokers === undefined) return;
  const { a, b, admin } = brokers;
  await a.addAgent(openclaw);
  const expired = async () => (await admin<{ expired: number }[]>`SELECT expired FROM interop_inboxes WHERE agent = ${openclaw}`)[0].expired;
  await a.publish(hermes, openclaw, { text: "shown, never taken" });
  const lease = await b.leases.acquire(openclaw, 60);
  clock.advance(TTL * 2.5);
  assert.equal(await b.leases.acquire(openclaw, 60, lease), lease, "renewed, still held");
  await waitFor(async () => Number(await expired()) === 1, 10_000, "the message to expire under the lease");
  let lost = false;
  const leaseLost = () => void (lost = true);
  assert.deepEqual(await b.leases.take(openclaw, lease, (own) => b.poll(openclaw, 10, { lease: own, leaseLost }), leaseLost), []);
  assert.equal(lost, false, "the lease held all along");
});

test("a take under a lease that expired takes what is left and is told the lease was lost; one under its lease is not", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, admin } = brokers;
  await a.addAgent(openclaw);
  await a.publish(hermes, openclaw, { text: "one" });
  await a.publish(hermes, openclaw, { text: "two" });
  const lease = await a.leases.acquire(openclaw, 60);
  const shown = await a.peek(openclaw, 10);
  // Ended as time would end it, and another reader (on another broker) takes part of what was shown.
  await admin`UPDATE interop_inboxes SET lease_until = now() - interval '1 second' WHERE agent = ${openclaw}`;
  assert.deepEqual((await b.poll(openclaw, 1)).map((message) => message.payload.text), ["one"]);
  let lost = 0;
  const leaseLost = () => void lost++;
  const take = (id: string, upTo: number) => a.leases.take(openclaw, id, (own) => a.poll(openclaw, 10, { shownUpTo: upTo, lease: own, leaseLost }), leaseLost);
  assert.deepEqual((await take(lease, shown[1].id)).map((message) => message.payload.text), ["two"]);
  assert.equal(lost, 1);
  await a.publish(hermes, openclaw, { text: "three" });
  const held = await a.leases.acquire(openclaw, 60);
  const [three] = await a.peek(openclaw, 10);
  assert.deepEqual((await take(held, three.id)).map((message) => message.payload.text), ["three"]);
  assert.equal(lost, 1, "a take under its own lease is not told it was lost");
  // A take of one message alone (what a leased reply wait showed) is told so too.
  await a.publish(hermes, openclaw, { text: "four" });
  const single = await a.leases.acquire(openclaw, 60);
  const [four] = await a.peek(openclaw, 10);
  await admin`UPDATE interop_inboxes SET lease_until = now() - interval '1 second' WHERE agent = ${openclaw}`;
  const alone = await a.leases.take(openclaw, single, (own) => a.takeOne(openclaw, four.id, { lease: own, leaseLost }), leaseLost);
  assert.deepEqual([alone?.payload.text, lost], ["four", 2]);
});

test("a lease granted with its answer lost (the connection broke after the COMMIT) is ended once PostgreSQL answers, and no other", async (t) => {
  // It held the inbox for its whole length (here 60 s, up to 300), though no client knew its id: every other
  // reader's take refused 409, every wait held off.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, storeA } = brokers;
  await a.addAgent(openclaw);
  const grant = storeA.shared.lease.bind(storeA.shared);
  const endLease = storeA.shared.endLease.bind(storeA.shared);
  const ended: string[] = [];
  storeA.shared.endLease = async (agent, id) => {
    await endLease(agent, id);
    ended.push(id);
  };
  // Each grant through A runs to its end (committed, or refused), then its answer is lost.
  storeA.shared.lease = async (...args) => {
    await grant(...args).catch(() => {});
    throw new InteropError("storage_unavailable", "Storage unavailable: the connection to PostgreSQL broke");
  };
  await assert.rejects(a.leases.acquire(openclaw, 60), { code: "storage_unavailable" });
  const held = await waitFor(
    () => b.leases.acquire(openclaw, 60).catch((error) => isInboxLeased(error) ? undefined : Promise.reject(error)),
    30_000,
    "another reader's lease once the one in doubt ended",
  ) as string;
  // Another reader holds the inbox now: a grant in doubt (refused, its answer lost) leaves that reader's lease.
  await assert.rejects(a.leases.acquire(openclaw, 60), { code: "storage_unavailable" });
  await waitFor(() => ended.length === 2, 10_000, "the second grant's lease ended");
  await assert.rejects(b.leases.acquire(openclaw, 60), { code: "inbox_leased" }, "the other reader's lease still holds");
  // A renewal in doubt (it committed: the lease is extended, keeping its id) leaves its holder the lease too.
  await assert.rejects(a.leases.acquire(openclaw, 60, held), { code: "storage_unavailable" });
  await waitFor(() => ended.length === 3, 10_000, "the renewal's possible new lease ended");
  assert.ok(!ended.includes(held), "the holder's lease was never ended by id");
  let lost = false;
  const leaseLost = () => void (lost = true);
  assert.deepEqual(await b.leases.take(openclaw, held, (own) => b.poll(openclaw, 10, { lease: own, leaseLost }), leaseLost), []);
  assert.equal(lost, false, "the holder took under its lease, held all along");
});

test("a database migrated before leases existed gets them in place: its inboxes keep their cursors", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => admin.end());
  // Version 7's schema with an inbox in it.
  await migrate(admin);
  await admin`ALTER TABLE interop_inboxes DROP COLUMN lease_id, DROP COLUMN lease_until`;
  await admin`DELETE FROM interop_migrations WHERE version = 8`;
  await admin`INSERT INTO interop_inboxes (agent, delivered_id) VALUES (${openclaw}, 41)`;
  const store = await PostgresStore.open({ url, durability: "strict", claimant: { pid: process.pid, host: "test", version: "test" }, warn: () => {} });
  t.after(() => store.close());
  assert.deepEqual((await admin`SELECT version FROM interop_migrations WHERE version = 8`).length, 1);
  const lease = await store.shared.lease(openclaw, 60, undefined);
  assert.ok((await store.shared.leaseLeft(openclaw))! > 59_000);
  assert.deepEqual(await store.shared.take(openclaw, 10, undefined, lease), []);
  assert.equal(await store.shared.leaseLeft(openclaw), undefined, "ended by its holder's take");
  assert.equal((await store.shared.version(openclaw)).deliveredId, 41);
});

test("a poll of an empty inbox is refused while another reader leases it, on every broker, as on SQLite", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const lease = await a.leases.acquire(openclaw, 60);
  // As the router polls: the answer is read first, and an empty one took nothing, so it never reached the store.
  const poll = (own: string | undefined) => b.poll(openclaw, 10, { answer: b.answer((envelope) => JSON.stringify(envelope)), lease: own });
  await assert.rejects(b.leases.take(openclaw, undefined, poll), { code: "inbox_leased" });
  assert.deepEqual(await b.leases.take(openclaw, lease, poll), [], "the holder's own poll is answered");
  assert.deepEqual(await b.leases.take(openclaw, undefined, poll), [], "and ended the lease");
});

test("an awaited reply a leased reader may have shown is left to that reader; the asker gets it once the lease ends", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const { envelopes: [question] } = await a.publish(openclaw, hermes, { text: "which branch?" });
  const { envelopes: [reply] } = await b.publish(hermes, openclaw, { text: "main" }, { replyTo: question.id });
  // A reader (interop poll) leases openclaw's inbox on B and shows its page: the reply is on it.
  const lease = await b.leases.acquire(openclaw, 60);
  assert.deepEqual((await b.peek(openclaw, 10)).map((envelope) => envelope.id), [reply.id]);
  // The asker's wait on A: taking the reply now would hand out a message the reader printed.
  let answered: number | undefined;
  const waiting = a.waitForReply(openclaw, question.id, 10_000).then((envelope) => (answered = envelope?.id ?? 0));
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(answered, undefined, "the asker took the reply from under the reader's lease");
  // The reader printed nothing after all: its take of nothing ends the lease, and the asker is served.
  assert.deepEqual(await b.leases.take(openclaw, lease, (own) => b.poll(openclaw, 10, { shownUpTo: 0, lease: own })), []);
  await waiting;
  assert.equal(answered, reply.id);
});

test("a leased reader's take hands out an awaited reply it showed before the wait began; other readers stop before it", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const { envelopes: [question] } = await a.publish(openclaw, hermes, { text: "which branch?" });
  const { envelopes: [reply] } = await b.publish(hermes, openclaw, { text: "main" }, { replyTo: question.id });
  const { envelopes: [after] } = await b.publish(hermes, openclaw, { text: "after" });
  const lease = await b.leases.acquire(openclaw, 60);
  assert.deepEqual((await b.peek(openclaw, 10)).map((envelope) => envelope.id), [reply.id, after.id], "shown before the wait");
  // The asker's wait on A begins: it leaves the reply to the lease (its holder printed it), but records it as awaited.
  const waiting = a.waitForReply(openclaw, question.id, 1_000);
  await waitFor(async () => (await brokers.admin`SELECT 1 FROM interop_awaited_replies`).length > 0, 5_000, "the wait recorded");
  assert.deepEqual(await a.peek(openclaw, 10), [], "another reader stops before the awaited reply");
  const taken = await b.leases.take(openclaw, lease, (own) => b.poll(openclaw, 10, { shownUpTo: after.id, lease: own }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [reply.id, after.id], "the holder takes what it printed");
  assert.equal(await waiting, undefined, "and the asker does not get it again");
});

test("a sender's withdrawal on one broker of a message a leased reader on another may have shown is refused while the lease holds", async (t) => {
  // takeOne ignored the lease for a withdrawal: the reader's take up to the message it printed found it withdrawn.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const { envelopes: [message] } = await a.publish(hermes, openclaw, { text: "deploy?" });
  const lease = await b.leases.acquire(openclaw, 60);
  assert.deepEqual((await b.peek(openclaw, 10)).map((envelope) => envelope.id), [message.id]);
  await assert.rejects(a.tasks.withdraw(openclaw, message.id), { code: "inbox_leased" });
  const taken = await b.leases.take(openclaw, lease, (own) => b.poll(openclaw, 10, { shownUpTo: message.id, lease: own }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [message.id]);
  assert.equal(await a.tasks.withdraw(openclaw, message.id), false, "delivered: no longer withdrawable");
  const { envelopes: [second] } = await a.publish(hermes, openclaw, { text: "never mind" });
  assert.equal(await a.tasks.withdraw(openclaw, second.id), true);
});

test("a leased wait on one broker is shown a message committed on another, under a lease that holds on both", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const waiting = leasedWait(a, openclaw, 30, 10_000, new AbortController().signal);
  const { envelopes: [message] } = await b.publish(hermes, openclaw, { text: "deploy?" });
  const shown = await waiting;
  assert.equal(shown?.message.id, message.id);
  await assert.rejects(b.poll(openclaw, 10), { code: "inbox_leased" });
  const taken = await a.leases.take(openclaw, shown!.lease, (own) => a.poll(openclaw, 1, { shownUpTo: message.id, lease: own }));
  assert.deepEqual(taken.map((envelope) => envelope.id), [message.id]);
});

test("an ask on a shared store records its wait as soon as its question is stored, before the settle clock lets it take", async (t) => {
  // Recorded after the clock (20 ms), a reply published through another broker meanwhile was an ordinary message:
  // the asker's stream there took it and the ask timed out (review28: 2-10 of 30 asks to an agent that answers from
  // its stream, /tmp/review28/t13_pg_fast_stream_reply.py).
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, admin } = brokers;
  await a.addAgent(openclaw);
  await a.addAgent(hermes);
  const settle = Promise.withResolvers<void>();
  const asking = a.ask(hermes, openclaw, { text: "deploy?" }, 10_000, undefined, () => settle.promise);
  try {
    await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies WHERE agent = ${hermes}`).length === 1, 5_000, "the wait's record");
    const [question] = await b.poll(openclaw, 1);
    await b.publish(openclaw, hermes, { text: "yes" }, { replyTo: question.id });
    assert.deepEqual(await b.poll(hermes, 10), [], "B's reader stops before the awaited reply");
  } finally {
    settle.resolve();
  }
  assert.equal((await asking).reply?.payload.text, "yes");
});

test("a leased reply wait on one broker is shown the reply published on another, under a lease; take=ID takes it alone", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  await a.addAgent(hermes);
  const { envelopes: [earlier] } = await b.publish(hermes, openclaw, { text: "earlier" });
  const { envelopes: [question] } = await a.publish(openclaw, hermes, { text: "deploy?" });
  const waiting = leasedWait(a, openclaw, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  const { envelopes: [reply] } = await b.publish(hermes, openclaw, { text: "yes" }, { replyTo: question.id });
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  await assert.rejects(b.poll(openclaw, 10), { code: "inbox_leased" });
  const taken = await a.leases.take(openclaw, shown!.lease, (own) => a.takeOne(openclaw, reply.id, { lease: own }));
  assert.equal(taken?.id, reply.id);
  // The take ended the lease, and took nothing ahead of the reply.
  assert.deepEqual((await b.poll(openclaw, 10)).map((envelope) => envelope.id), [earlier.id]);
});

/** A and B with openclaw's and hermes's inboxes, and openclaw's question to hermes published through A. */
async function askedOnA(t: TestContext) {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return undefined;
  await brokers.a.addAgent(openclaw);
  await brokers.a.addAgent(hermes);
  const { envelopes: [question] } = await brokers.a.publish(openclaw, hermes, { text: "deploy?" });
  return { ...brokers, question };
}

/** Resolves once `count` awaited-reply records hold openclaw's inbox. */
async function recordsHeld(admin: postgres.Sql, count: number, what: string): Promise<void> {
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies WHERE agent = ${openclaw}`).length === count, 5_000, what);
}

test("a leased reply wait's reply left untaken (its client was cancelled) is an ordinary message on every broker", async (t) => {
  const asked = await askedOnA(t);
  if (asked === undefined) return;
  const { a, b, admin, question } = asked;
  const waiting = leasedWait(a, openclaw, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  await recordsHeld(admin, 1, "the wait's record");
  await b.publish(hermes, openclaw, { text: "yes" }, { replyTo: question.id });
  const shown = await waiting;
  assert.equal(shown?.message.payload.text, "yes");
  assert.deepEqual(await a.leases.take(openclaw, shown!.lease, (own) => a.poll(openclaw, 1, { shownUpTo: 0, lease: own })), []);
  await recordsHeld(admin, 0, "the record's end");
  assert.deepEqual((await b.poll(openclaw, 10)).map((envelope) => envelope.payload.text), ["yes"]);
});

test("a leased reply wait's hold lasts until its client's take, on every broker: readers elsewhere stop before the reply till then", async (t) => {
  // The record ended when the wait answered: between that answer and the client's take=ID, a stream on any broker
  // could take the reply, and interop mcp's ask answered "No reply" after its timeout (pglease30).
  const asked = await askedOnA(t);
  if (asked === undefined) return;
  const { a, b, admin, question } = asked;
  // A wait shorter than the time to its take: the record must outlast it, held by the lease.
  const waiting = leasedWait(a, openclaw, 30, 1_000, new AbortController().signal, { replyTo: question.id });
  await recordsHeld(admin, 1, "the wait's record");
  const { envelopes: [reply] } = await b.publish(hermes, openclaw, { text: "yes" }, { replyTo: question.id });
  const { envelopes: [after] } = await b.publish(hermes, openclaw, { text: "after" });
  const shown = await waiting;
  assert.equal(shown?.message.id, reply.id);
  // Past the wait's own timeout, and past the end its record had (the wait's end)...
  await new Promise((resolve) => setTimeout(resolve, 1_200));
  // ...a reader that heeds no lease (a stream's read, a peek) on either broker still stops before the reply.
  assert.deepEqual(await b.peek(openclaw, 10), [], "B's reader stops before the reply");
  assert.deepEqual(await a.peek(openclaw, 10), [], "A's reader stops before the reply");
  const taken = await a.leases.take(openclaw, shown!.lease, (own) => a.takeOne(openclaw, reply.id, { lease: own }));
  assert.equal(taken?.id, reply.id);
  // The take ended the lease, and with it the hold: what follows the reply is read on every broker.
  await recordsHeld(admin, 0, "the record's end");
  assert.deepEqual((await b.peek(openclaw, 10)).map((envelope) => envelope.id), [after.id]);
});

test("a leased reply wait that showed nothing holds the reply on for its client's next wait, on every broker", async (t) => {
  // Its record ended with the wait: a reply published between interop mcp's ask's long polls went to a reader of
  // the asker's inbox on any broker, and the ask answered "No reply" after its timeout (pglease30).
  const asked = await askedOnA(t);
  if (asked === undefined) return;
  const { a, b, question } = asked;
  assert.equal(await leasedWait(a, openclaw, 30, 50, new AbortController().signal, { replyTo: question.id }), undefined);
  const waitEnded = performance.now();
  const { envelopes: [reply] } = await b.publish(hermes, openclaw, { text: "yes" }, { replyTo: question.id });
  const peeked = await b.peek(openclaw, 10);
  // The hold is REPOLL_GRACE_MS long: a machine too loaded to publish and peek within it shows nothing either way.
  if (performance.now() - waitEnded >= REPOLL_GRACE_MS) return t.skip("publish and peek took longer than the hold");
  assert.deepEqual(peeked, [], "B's reader stops before the reply");
  const shown = await leasedWait(a, openclaw, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  assert.equal(shown?.message.id, reply.id);
  assert.equal((await b.leases.take(openclaw, shown!.lease, (own) => b.takeOne(openclaw, reply.id, { lease: own })))?.id, reply.id);
});

test("a reply held from its question's commit (hold_reply) is held on every broker before the ask's first wait, for that wait", async (t) => {
  // Published plain, the question's reply committed in the round trip before interop mcp's ask's first leased wait
  // went to a reader of the asker's inbox on any broker, and the ask answered "No reply" after its timeout.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(hermes);
  const question = await a.publishHoldingReply(openclaw, hermes, { text: "deploy?" }, 60_000);
  const { envelopes: [reply] } = await b.publish(hermes, openclaw, { text: "yes" }, { replyTo: question.id });
  const { envelopes: [after] } = await b.publish(hermes, openclaw, { text: "after" });
  assert.deepEqual(await b.peek(openclaw, 10), [], "B's reader stops before the reply");
  const shown = await leasedWait(a, openclaw, 30, 10_000, new AbortController().signal, { replyTo: question.id });
  assert.equal(shown?.message.id, reply.id);
  assert.equal((await b.leases.take(openclaw, shown!.lease, (own) => b.takeOne(openclaw, reply.id, { lease: own })))?.id, reply.id);
  await recordsHeld(brokers.admin, 0, "the records' end");
  assert.deepEqual((await b.peek(openclaw, 10)).map((envelope) => envelope.id), [after.id]);
});

test("a leased reply wait takes over the hold recorded in its question's commit: the record ends as the wait's own begins", async (t) => {
  // Left to its own time (ten minutes here), the record kept the reply from every reader after the ask gave up.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, admin } = brokers;
  const question = await a.publishHoldingReply(openclaw, hermes, { text: "deploy?" }, 600_000);
  await recordsHeld(admin, 1, "the question's record");
  assert.equal(await leasedWait(a, openclaw, 30, 50, new AbortController().signal, { replyTo: question.id }), undefined);
  // The wait's record ends REPOLL_GRACE_MS after it, for a next wait that never comes; the question's ended before.
  await recordsHeld(admin, 0, "the records' end");
});
