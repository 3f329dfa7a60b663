/**
 * A wait for a reply on a PostgreSQL store other brokers share reads no more replies than its waiters need: asked
 * for up to 500 replies to the questions awaited, the broker read 300 of 1 MiB to one question to hand its one
 * waiter the first.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Broker } from "../src/broker/broker.ts";
import { leasedWait } from "../src/broker/leased_wait.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { READ_CHARS } from "../src/broker/read_pages.ts";
import type { AgentName } from "../src/message.ts";
import type { PostgresStore } from "../src/store/postgres.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const openclaw = "openclaw" as AgentName;
const hermes = "hermes" as AgentName;
const twoBrokers = twoBrokersOn(sharedPostgres());
/** Replies pending to one question: far more than a wait needs. */
const REPLIES = 30;
/** Room in an inbox for them. */
const ROOMY = { maxPending: uniform(100) };

/** Counts what `store`'s reads of pending replies return: each read's rows, in order. */
function countReplyReads(store: PostgresStore): number[] {
  const reads: number[] = [];
  const pendingReplies = store.shared.pendingReplies.bind(store.shared);
  store.shared.pendingReplies = async (...args) => {
    const replies = await pendingReplies(...args);
    reads.push(replies.length);
    return replies;
  };
  return reads;
}

/** Hermes's question to openclaw, and REPLIES replies to it, published on B: pending in hermes's inbox. */
async function questionWithReplies(a: Broker, b: Broker): Promise<{ question: number; replies: number[] }> {
  const { envelopes: [question] } = await a.publish(hermes, openclaw, { q: "who deploys?" });
  const replies: number[] = [];
  for (let n = 0; n < REPLIES; n++) {
    replies.push((await b.publish(openclaw, hermes, { a: `reply ${n}` }, { replyTo: question.id })).envelopes[0].id);
  }
  return { question: question.id, replies };
}

test("a wait for a reply reads only the oldest pending reply to its question, not every reply", async (t) => {
  const brokers = await twoBrokers(t, ROOMY);
  if (brokers === undefined) return;
  const { a, b, storeA } = brokers;
  await b.addAgent(openclaw);
  const { question, replies } = await questionWithReplies(a, b);
  const reads = countReplyReads(storeA);
  const reply = await a.waitForReply(hermes, question, 10_000);
  assert.equal(reply?.id, replies[0]);
  assert.deepEqual(reads.filter((rows) => rows > 0), [1], `replies read to hand over the first: ${reads}`);
});

test("waits for replies to one question read no more at a time than --max-body-bytes fits in a read", async (t) => {
  // Two messages a read at this size.
  const brokers = await twoBrokers(t, { ...ROOMY, maxMessageBytes: READ_CHARS / 2 });
  if (brokers === undefined) return;
  const { a, b, storeA } = brokers;
  await b.addAgent(openclaw);
  const { question, replies } = await questionWithReplies(a, b);
  const reads = countReplyReads(storeA);
  const handed = await Promise.all([0, 1, 2].map(() => a.waitForReply(hermes, question, 10_000)));
  assert.deepEqual(handed.map((reply) => reply?.id).sort((x, y) => x! - y!), replies.slice(0, 3));
  assert.ok(reads.every((rows) => rows <= 2), `replies read at a time: ${reads}`);
  assert.equal(reads.reduce((sum, rows) => sum + rows, 0), 3, `replies read: ${reads}`);
});

test("a leased wait for a reply reads only the reply it shows", async (t) => {
  const brokers = await twoBrokers(t, ROOMY);
  if (brokers === undefined) return;
  const { a, b, storeA } = brokers;
  await b.addAgent(openclaw);
  const { question, replies } = await questionWithReplies(a, b);
  const reads = countReplyReads(storeA);
  const shown = await leasedWait(a, hermes, 30, 10_000, new AbortController().signal, { replyTo: question });
  assert.equal(shown?.message.id, replies[0]);
  assert.deepEqual(reads.filter((rows) => rows > 0), [1], `replies read to show the first: ${reads}`);
  a.leases.end(hermes, shown!.lease);
});
