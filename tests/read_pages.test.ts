/**
 * A stream behind many small messages reads them in few reads of the store: a read is bounded by what it holds
 * (READ_CHARS), not by as many messages as READ_CHARS holds at --max-body-bytes each (16), which read a PostgreSQL
 * backlog 16 messages a round trip. So do polls and peeks: sized as if each message held --max-body-bytes, a
 * PostgreSQL /poll?limit=500 of small messages read them in ~33 round trips, and so did lists that take nothing (/history,
 * /dead-letters), read from the newest in pages so sized.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker, type HistoryEntry } from "../src/broker/broker.ts";
import type { ListedDeadLetter } from "../src/broker/dead_letters.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { MessageStore } from "../src/store/store.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { TextSink } from "./helpers/text_sink.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const BACKLOG = 2000;
/** 2,000 messages at 500 a read are 4 reads and one that finds the end; a few more if a page meets a commit. */
const FEW_READS = 10;

/** Counts the reads of `agent`'s inbox the store is asked for. */
function countReads(store: MessageStore, agent: AgentName): { reads: number } {
  const counted = { reads: 0 };
  const readAfter = store.readAfter.bind(store);
  store.readAfter = (name, afterId, limit, maxChars) => {
    if (name === agent) counted.reads++;
    return readAfter(name, afterId, limit, maxChars);
  };
  return counted;
}

/** Publishes BACKLOG small messages to openclaw in batches of 50; their ids. */
async function publishBacklog(broker: Broker): Promise<number[]> {
  const ids: number[] = [];
  for (let n = 0; n < BACKLOG; n += 50) {
    const payloads = Array.from({ length: 50 }, (_, k) => ({ text: `small ${n + k}` }));
    ids.push(...(await broker.publishBatch(hermes, openclaw, payloads)).envelopes.map((envelope) => envelope.id));
  }
  return ids;
}

/** Opens openclaw's stream on `broker` and waits (10 s at most) for `ids`; what it sent. */
async function streamBacklog(t: TestContext, broker: Broker, ids: number[]): Promise<number[]> {
  const sink = new TextSink();
  t.after(() => sink.close());
  (await broker.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  const sent = () => sink.ids();
  const deadline = Date.now() + 10_000;
  while (sent().length < ids.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return sent();
}

test("a stream behind 2,000 small messages on SQLite reads them in a few reads of the store", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(BACKLOG) }));
  t.after(() => broker.close());
  const ids = await publishBacklog(broker);
  const counted = countReads(store, openclaw);
  assert.deepEqual(await streamBacklog(t, broker, ids), ids, "the whole backlog, once, in order");
  assert.ok(counted.reads <= FEW_READS, `${counted.reads} reads of the store (at most ${FEW_READS})`);
});

test("a stream behind 2,000 small messages on brokers sharing PostgreSQL reads them in a few reads of the store", async (t) => {
  const brokers = await twoBrokersOn(sharedPostgres())(t, { maxPending: uniform(BACKLOG) });
  if (brokers === undefined) return;
  const { a, b, storeB } = brokers;
  await a.addAgent(openclaw);
  // Published on A, streamed on B: B reads them from the table, as a stream behind a burst does.
  const ids = await publishBacklog(a);
  const counted = countReads(storeB, openclaw);
  assert.deepEqual(await streamBacklog(t, b, ids), ids, "the whole backlog, once, in order");
  assert.ok(counted.reads <= FEW_READS, `${counted.reads} reads of the store (at most ${FEW_READS})`);
});

/** Messages a poll or peek asks for, all small: one answer holds them all. */
const ASKED = 500;

test("a peek and a poll of 500 small messages on brokers sharing PostgreSQL read them in a few reads of the store", async (t) => {
  const brokers = await twoBrokersOn(sharedPostgres())(t, { maxPending: uniform(BACKLOG) });
  if (brokers === undefined) return;
  const { a, b, storeB } = brokers;
  await a.addAgent(openclaw);
  const ids = (await publishBacklog(a)).slice(0, ASKED);
  const counted = countReads(storeB, openclaw);
  const answer = () => b.answer((envelope) => JSON.stringify(envelope), openclaw);
  const peeked = answer();
  t.after(() => peeked.release());
  assert.deepEqual((await b.peek(openclaw, ASKED, peeked)).map((envelope) => envelope.id), ids);
  // The answer holds them all: one read, and one more if a page met a commit.
  assert.ok(counted.reads <= 2, `a peek made ${counted.reads} reads of the store`);
  counted.reads = 0;
  const taken = answer();
  t.after(() => taken.release());
  assert.deepEqual((await b.poll(openclaw, ASKED, { answer: taken })).map((envelope) => envelope.id), ids);
  assert.ok(counted.reads <= 2, `a poll made ${counted.reads} reads of the store`);
});

test("/history and /dead-letters of 500 small messages on brokers sharing PostgreSQL read them in a few reads of the store", async (t) => {
  const brokers = await twoBrokersOn(sharedPostgres())(t, { maxPending: uniform(BACKLOG) });
  if (brokers === undefined) return;
  const { a, b, storeB } = brokers;
  await a.addAgent(openclaw);
  const ids = (await publishBacklog(a)).slice(-ASKED);
  await Promise.all(ids.map((messageId) => storeB.addDeadLetter(openclaw, { messageId, reason: "410 Gone", parkedAt: 1 })));
  const counted = { history: 0, letters: 0 };
  const readLatest = storeB.readLatest.bind(storeB);
  storeB.readLatest = (agent, limit, beforeId, maxChars) => {
    counted.history++;
    return readLatest(agent, limit, beforeId, maxChars);
  };
  const deadLetters = storeB.deadLetters.bind(storeB);
  storeB.deadLetters = (agent, limit, beforeId, maxChars) => {
    counted.letters++;
    return deadLetters(agent, limit, beforeId, maxChars);
  };
  const history = b.answer((entry: HistoryEntry) => JSON.stringify(entry), openclaw);
  t.after(() => history.release());
  assert.deepEqual((await b.history(openclaw, ASKED, history)).map((entry) => entry.id), ids);
  // The answer holds them all: one read, as a peek of them makes.
  assert.equal(counted.history, 1, `a /history made ${counted.history} reads of the store`);
  const letters = b.answer((letter: ListedDeadLetter) => JSON.stringify(letter), openclaw);
  t.after(() => letters.release());
  assert.deepEqual((await b.deadLetters.list(openclaw, ASKED, false, letters)).map((letter) => letter.id), ids);
  assert.equal(counted.letters, 1, `a /dead-letters made ${counted.letters} reads of its letters`);
});

test("/history on a broker sharing PostgreSQL lists an inbox another broker created since it last looked", async (t) => {
  const brokers = await twoBrokersOn(sharedPostgres())(t);
  if (brokers === undefined) return;
  const { a, b } = brokers;
  // B reads the cluster view once a second: asked at once, it has not heard of openclaw yet.
  await a.addAgent(openclaw);
  const [id] = (await a.publishBatch(hermes, openclaw, [{ text: "made on A" }])).envelopes.map((envelope) => envelope.id);
  const history = b.answer((entry: HistoryEntry) => JSON.stringify(entry), openclaw);
  t.after(() => history.release());
  assert.deepEqual((await b.history(openclaw, 10, history)).map((entry) => [entry.id, entry.pending]), [[id, true]]);
});
