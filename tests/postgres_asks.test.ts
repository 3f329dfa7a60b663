/**
 * An ask on a PostgreSQL store other brokers share: its wait for the reply is recorded with the question, so a reply
 * read on another broker the moment it commits is still left to the ask.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";
import { waitFor } from "./helpers/broker.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const openclaw = "openclaw" as AgentName;
const hermes = "hermes" as AgentName;
const twoBrokers = twoBrokersOn(sharedPostgres());

test("an ask's reply published and read on another broker before any statement after the question's commit is left to the ask", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, storeA } = brokers;
  await b.addAgent(openclaw);
  // A record of the wait written after the question commits is written here only once B has read the reply: the
  // window of one round trip, made as long as the test needs.
  const readOnB = Promise.withResolvers<void>();
  t.after(() => readOnB.resolve());
  const awaitReply = storeA.shared.awaitReply.bind(storeA.shared);
  storeA.shared.awaitReply = async (...args) => {
    await readOnB.promise;
    return await awaitReply(...args);
  };
  const asking = a.ask(hermes, openclaw, { q: "ping" }, 20_000);
  const question = await waitFor(async () => (await b.poll(openclaw, 1))[0], 10_000, "the question on B");
  const { envelopes: [reply] } = await b.publish(openclaw, hermes, { a: "pong" }, { replyTo: question.id });
  const read = await b.poll(hermes, 10);
  readOnB.resolve();
  assert.deepEqual(read.map((envelope) => envelope.id), [], "hermes's in-order read on B took the reply from under the ask");
  assert.equal((await asking).reply?.id, reply.id);
});

test("an ask that ends without its reply ends its record: the reply is then an ordinary message on every broker", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, admin } = brokers;
  await b.addAgent(openclaw);
  const { question, reply } = await a.ask(hermes, openclaw, { q: "ping" }, 300);
  assert.equal(reply, undefined);
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies`).length === 0, 5_000, "the record ended");
  const { envelopes: [late] } = await b.publish(openclaw, hermes, { a: "late" }, { replyTo: question.id });
  assert.deepEqual((await b.poll(hermes, 10)).map((envelope) => envelope.id), [late.id]);
});

test("an awaited reply's end whose statement failed (its connection killed) is tried again: the record goes, not at the wait's timeout", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { storeA, admin } = brokers;
  const id = await storeA.shared.awaitReply(hermes, 1, 120_000);
  let ended: Promise<unknown> | undefined;
  // The record's row held here, so the end's DELETE waits on it: its connection is killed while it waits.
  await admin.begin(async (tx) => {
    await tx`SELECT 1 FROM interop_awaited_replies WHERE id = ${id} FOR UPDATE`;
    ended = storeA.shared.endAwait(hermes, id).then(() => "ended", (error: Error) => error);
    // pg_stat_activity is read once a transaction unless its snapshot is cleared: a first look taken before the
    // DELETE arrived (a loaded machine) was all this loop saw for its 10 s.
    const blocked = await waitFor(async () => {
      await tx`SELECT pg_stat_clear_snapshot()`;
      return (await tx<{ pid: number }[]>`
        SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM interop_awaited_replies%'`)[0];
    }, 10_000, "the end's DELETE waiting for the row");
    await tx`SELECT pg_terminate_backend(${blocked.pid})`;
  });
  assert.equal(await ended, "ended");
  assert.equal((await admin`SELECT id FROM interop_awaited_replies`).length, 0, "the record is left");
});

test("a reply wait whose record's write lost its answer (it may have committed) ends the record with the wait, not at its timeout", async (t) => {
  // The record's id came back only from a write that answered: one committed whose answer was lost held the reply
  // from every broker's readers for the wait's whole timeout (here a minute; up to an hour), long after the wait.
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, b, storeA, admin } = brokers;
  await b.addAgent(openclaw);
  const awaitReply = storeA.shared.awaitReply.bind(storeA.shared);
  storeA.shared.awaitReply = async (...args) => {
    await awaitReply(...args);
    throw new InteropError("storage_unavailable", "Could not record an awaited reply: the connection was lost");
  };
  const { envelopes: [question] } = await a.publish(hermes, openclaw, { q: "ping" });
  const left = new AbortController();
  const waiting = a.waitForReply(hermes, question.id, 60_000, left.signal);
  t.after(() => left.abort());
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies`).length === 1, 10_000, "the record written");
  // The client hangs up: the wait ends, taking nothing.
  left.abort();
  assert.equal(await waiting, undefined);
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies`).length === 0, 10_000, "the record ended with its wait");
  const { envelopes: [reply] } = await b.publish(openclaw, hermes, { a: "pong" }, { replyTo: question.id });
  assert.deepEqual((await b.poll(hermes, 10)).map((envelope) => envelope.id), [reply.id]);
});

test("an ask refused before its commit (unknown agent) ends no record: no statement, no wake-up of every broker's readers", async (t) => {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return;
  const { a, storeA } = brokers;
  let ends = 0;
  const endAwait = storeA.shared.endAwait.bind(storeA.shared);
  storeA.shared.endAwait = (...args) => {
    ends++;
    return endAwait(...args);
  };
  await assert.rejects(a.ask(hermes, "nobody" as AgentName, { q: "ping" }, 20_000), { code: "unknown_agent" });
  assert.equal(ends, 0);
});
