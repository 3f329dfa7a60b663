/**
 * A wait for a reply on a PostgreSQL store other brokers share reads no more replies than its waiters need: asked
 * for up to 500 replies to the questions awaited, the broker read 300 of 1 MiB to one question to hand its one
 * waiter the first.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { leasedWait } from "../src/broker/leased_wait.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { READ_CHARS } from "../src/broker/read_pages.ts";
import type { AgentName } from "../src/message.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const openclaw = "openclaw" as AgentName;
const hermes = "hermes" as AgentName;
const twoBrokers = twoBrokersOn(sharedPostgres());
/** Replies pending to one question: far more than a wait needs. */
const REPLIES = 30;

/**
 * Brokers A and B, hermes's question to openclaw and `count` replies to it published on B, pending
 * in hermes's inbox; `reads` then counts what each of A's reads of pending replies returns. Undefined when skipped.
 */
async function questionWithReplies(t: TestContext, count = REPLIES) {
  const brokers = await twoBrokers(t, { maxPending: uniform(100) });
  if (brokers === undefined) return undefined;
  const { a, b, storeA } = brokers;
  await b.addAgent(openclaw);
  const { envelopes: [question] } = await a.publish(hermes, openclaw, { q: "who deploys?" });
  const replies: number[] = [];
  for (let n = 0; n < count; n++) {
    replies.push((await b.publish(openclaw, hermes, { a: `reply ${n}` }, { replyTo: question.id })).envelopes[0].id);
  }
  const reads: number[] = [];
  const pendingReplies = storeA.shared.pendingReplies.bind(storeA.shared);
  storeA.shared.pendingReplies = async (...args) => {
    const read = await pendingReplies(...args);
    reads.push(read.length);
    return read;
  };
  return { a, b, question: question.id, replies, reads };
}

test("a wait for a reply reads only the oldest pending reply to its question, not every reply", async (t) => {
  const fixture = await questionWithReplies(t);
  if (fixture === undefined) return;
  const { a, question, replies, reads } = fixture;
  const reply = await a.waitForReply(hermes, question, 10_000);
  assert.equal(reply?.id, replies[0]);
  assert.deepEqual(reads.filter((rows) => rows > 0), [1], `replies read to hand over the first: ${reads}`);
});

test("waits for replies to one question read no more of them at a time than READ_CHARS holds", async (t) => {
  // No reply pending yet: the three waits wait, and the replies' one commit wakes them together.
  const fixture = await questionWithReplies(t, 0);
  if (fixture === undefined) return;
  const { a, b, question, reads } = fixture;
  const waits = [0, 1, 2].map(() => a.waitForReply(hermes, question, 20_000));
  const deadline = Date.now() + 10_000;
  while (a.status().agents[hermes]?.waiting !== 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  // Two replies a read at this size (three are READ_CHARS and some).
  const text = "x".repeat(Math.floor(READ_CHARS / 3));
  const { envelopes } = await b.publishBatch(openclaw, hermes, [0, 1, 2].map((n) => ({ a: text, n })), { replyTo: question });
  const handed = await Promise.all(waits);
  assert.deepEqual(handed.map((reply) => reply?.id).sort((x, y) => x! - y!), envelopes.map((envelope) => envelope.id));
  assert.ok(reads.every((rows) => rows <= 2), `replies read at a time: ${reads}`);
  assert.equal(reads.reduce((sum, rows) => sum + rows, 0), 3, `replies read: ${reads}`);
});

test("a leased wait for a reply reads only the reply it shows", async (t) => {
  const fixture = await questionWithReplies(t);
  if (fixture === undefined) return;
  const { a, question, replies, reads } = fixture;
  const shown = await leasedWait(a, hermes, 30, 10_000, new AbortController().signal, { replyTo: question });
  assert.equal(shown?.message.id, replies[0]);
  assert.deepEqual(reads.filter((rows) => rows > 0), [1], `replies read to show the first: ${reads}`);
  a.leases.end(hermes, shown!.lease);
});
