/**
 * Reads of whole messages from the store are bounded by what they hold, not by a count alone: an agent that fills its
 * own inbox with messages of --max-body-bytes and opens a stream had the broker read 500 of them at once (500 MiB, the
 * event loop held for seconds), and a resume by an id past the cursor read 1000 at a time to skip them.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Broker, type HistoryEntry } from "../../src/broker/broker.ts";
import type { ListedDeadLetter } from "../../src/broker/dead_letters.ts";
import { uniform } from "../../src/broker/per_agent.ts";
import { READ_CHARS } from "../../src/broker/read_pages.ts";
import { sseFormat } from "../../src/http/sse_format.ts";
import { type AgentName, DEFAULT_MAX_BODY_BYTES, type Envelope } from "../../src/message.ts";
import { SqliteStore } from "../../src/store/sqlite.ts";
import { testBrokerOptions } from "../helpers/broker_options.ts";
import { tempDir } from "../helpers/cli.ts";
import { sharedPostgres } from "../helpers/postgres.ts";
import { TextSink } from "../helpers/text_sink.ts";
import { twoBrokersOn } from "../helpers/two_brokers.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
/** Messages of nearly --max-body-bytes each: 40 of them hold 2.4 times what a read may. */
const BIG_TEXT = "x".repeat(DEFAULT_MAX_BODY_BYTES - 100);
const BACKLOG = 40;
/** Withdrawn messages: three reads' worth at 16 a read (the count sec30 bounded reads of 1 MiB messages to). */
const CANCELS = 48;

/** The characters of stored payload a page holds. */
function held(page: Envelope[]): number {
  return page.reduce((sum, envelope) => sum + JSON.stringify(envelope.payload).length, 0);
}

/**
 * A broker (default --max-body-bytes) with BACKLOG big messages pending for openclaw, whose store records the most
 * messages a read asked for and the most characters a read of more than one message returned.
 */
async function openBroker(t: TestContext) {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new SqliteStore(dir.path, "relaxed");
  const asked = { most: 0, held: 0 };
  const readAfter = store.readAfter.bind(store);
  store.readAfter = async (agent, afterId, limit, maxChars) => {
    asked.most = Math.max(asked.most, limit);
    const page = await readAfter(agent, afterId, limit, maxChars);
    if (page.length > 1) asked.held = Math.max(asked.held, held(page));
    return page;
  };
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(1000) }));
  t.after(() => broker.close());
  const ids: number[] = [];
  for (let n = 0; n < BACKLOG; n++) ids.push((await broker.publish(hermes, openclaw, { text: BIG_TEXT, n })).envelopes[0].id);
  asked.most = 0;
  asked.held = 0;
  return { broker, asked, ids };
}

/** Waits (turns of the event loop, 20 s at most) until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

test("a stream catching up on a backlog of big messages reads no more of them at a time than READ_CHARS holds", async (t) => {
  const { broker, asked, ids } = await openBroker(t);
  const sink = new TextSink();
  t.after(() => sink.close());
  (await broker.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  const sent = () => [...sink.text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
  await until(() => sent().length === ids.length);
  assert.deepEqual(sent(), ids, "the whole backlog, once, in order");
  assert.ok(asked.held <= READ_CHARS, `a read held ${asked.held} characters (at most ${READ_CHARS})`);
});

test("a stream resumed by an id past the cursor skips the big messages up to it reading no more at a time than READ_CHARS holds", async (t) => {
  const { broker, asked, ids } = await openBroker(t);
  const sink = new TextSink();
  t.after(() => sink.close());
  const resume = { from: "id", afterId: ids[ids.length - 1], store: broker.storeId } as const;
  (await broker.prepareStream(openclaw, resume, sseFormat(2000, true))).open(sink);
  await until(() => broker.status().agents.openclaw.pending === 0);
  assert.equal(broker.status().agents.openclaw.pending, 0, "what the client had counts as delivered");
  assert.ok(asked.held <= READ_CHARS, `a read held ${asked.held} characters (at most ${READ_CHARS})`);
});

test("messages withdrawn since the broker started (A2A CancelTask) make no read of an inbox ask the store for more", async (t) => {
  // Every in-order read asked for its count plus one message per withdrawal (all agents', for good): after 3 pages'
  // worth of cancels, a stream's page of 16 messages of 1 MiB read 64 of them at once, and a /wait of one read 49.
  const { broker, asked, ids } = await openBroker(t);
  const codex = "codex" as AgentName;
  for (let n = 0; n < CANCELS; n++) {
    const { envelopes: [sent] } = await broker.publish(hermes, codex, { text: `withdrawn ${n}` });
    assert.equal(await broker.tasks.withdraw(codex, sent.id), true);
  }
  asked.most = 0;
  assert.equal((await broker.wait(openclaw, 1000))?.id, ids[0]);
  assert.ok(asked.most <= 1, `a wait's read asked for ${asked.most} messages (1)`);
  const sink = new TextSink();
  t.after(() => sink.close());
  (await broker.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  const sent = () => [...sink.text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
  await until(() => sent().length === ids.length - 1);
  assert.deepEqual(sent(), ids.slice(1), "the rest of the backlog, once, in order");
  assert.ok(asked.held <= READ_CHARS, `a read held ${asked.held} characters (at most ${READ_CHARS})`);
});

test("on brokers sharing PostgreSQL too, withdrawn messages make no peek of an inbox ask the store for more", async (t) => {
  const brokers = await twoBrokersOn(sharedPostgres())(t);
  if (brokers === undefined) return;
  const { a, storeA } = brokers;
  const codex = "codex" as AgentName;
  await a.addAgent(openclaw);
  await a.addAgent(codex);
  await a.publish(hermes, openclaw, { text: "pending" });
  for (let n = 0; n < CANCELS; n++) {
    const { envelopes: [sent] } = await a.publish(hermes, codex, { text: `withdrawn ${n}` });
    assert.equal(await a.tasks.withdraw(codex, sent.id), true);
  }
  let most = 0;
  const readAfter = storeA.readAfter.bind(storeA);
  storeA.readAfter = (agent, afterId, limit) => {
    most = Math.max(most, limit);
    return readAfter(agent, afterId, limit);
  };
  assert.equal((await a.peek(openclaw, 1)).length, 1);
  assert.equal(most, 1, `a peek of one asked for ${most} messages`);
});

/** The characters an answer of a broker `restartedSmaller` holds. */
const RESTART_BUDGET = 1024 * 1024;
/** A message stored before the restart: 200 KB, far above the --max-body-bytes (4 KiB) the broker restarts with. */
const STORED = "y".repeat(200 * 1024);

/**
 * A broker restarted with --max-body-bytes of 4 KiB (answers of RESTART_BUDGET) over what `publish` stored under the
 * default, its store given to `watch` before it opens.
 */
async function restartedSmaller(t: TestContext, publish: (broker: Broker) => Promise<void>, watch: (store: SqliteStore) => void): Promise<Broker> {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const before = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { maxPending: uniform(1000) }));
  try {
    await publish(before);
  } finally {
    await before.close();
  }
  const store = new SqliteStore(dir.path, "relaxed");
  watch(store);
  const options = { maxPending: uniform(1000), maxMessageBytes: 4096, answerBudget: RESTART_BUDGET };
  const broker = await Broker.open(testBrokerOptions(store, dir.path, options));
  t.after(() => broker.close());
  return broker;
}

test("a peek over messages stored under a larger --max-body-bytes than the broker's now reads no more at a time than its answer holds", async (t) => {
  // Pages sized as if no message held more than --max-body-bytes: after a few small messages, a broker restarted with
  // a smaller one read 30 of those stored before at once (sec31: 30 of 7 MB, restarted at 64 KiB).
  let most = 0;
  const broker = await restartedSmaller(t, async (before) => {
    for (let n = 0; n < 10; n++) await before.publish(hermes, openclaw, { text: `small ${n}` });
    for (let n = 0; n < 30; n++) await before.publish(hermes, openclaw, { text: STORED, n });
  }, (store) => {
    const readAfter = store.readAfter.bind(store);
    store.readAfter = async (agent, afterId, limit, maxChars) => {
      const page = await readAfter(agent, afterId, limit, maxChars);
      most = Math.max(most, held(page));
      return page;
    };
  });
  const answer = broker.answer((envelope) => JSON.stringify(envelope), openclaw);
  t.after(() => answer.release());
  const peeked = await broker.peek(openclaw, 40, answer);
  assert.equal(peeked.length, 10 + 5, "the small ones and the big ones that fit");
  assert.ok(answer.cut);
  assert.ok(most <= RESTART_BUDGET + STORED.length + 100, `a read held ${most} characters (the answer's budget: ${RESTART_BUDGET})`);
});

test("/history and /dead-letters over messages stored under a larger --max-body-bytes than the broker's now read no more at a time than their answer holds", async (t) => {
  // Pages sized by a count at --max-body-bytes each (or the largest read so far): after a restart with a smaller one,
  // a list read from the newest, small messages, then 30 of the big ones stored before them at once.
  const ids: number[] = [];
  let most = 0;
  // A dead letter's message is read by its id: what one page of letters reads is what `find` returns for it.
  let letterPage = 0;
  const broker = await restartedSmaller(t, async (before) => {
    for (let n = 0; n < 30; n++) ids.push((await before.publish(hermes, openclaw, { text: STORED, n })).envelopes[0].id);
    for (let n = 0; n < 10; n++) ids.push((await before.publish(hermes, openclaw, { text: `small ${n}` })).envelopes[0].id);
  }, (store) => {
    const readLatest = store.readLatest.bind(store);
    store.readLatest = async (agent, limit, beforeId, maxChars) => {
      const page = await readLatest(agent, limit, beforeId, maxChars);
      most = Math.max(most, held(page));
      return page;
    };
    const deadLetters = store.deadLetters.bind(store);
    store.deadLetters = async (agent, limit, beforeId, maxChars) => {
      letterPage = 0;
      return await deadLetters(agent, limit, beforeId, maxChars);
    };
    const find = store.find.bind(store);
    store.find = async (id) => {
      const found = await find(id);
      if (found !== undefined) most = Math.max(most, letterPage += held([found]));
      return found;
    };
  });
  const bound = RESTART_BUDGET + STORED.length + 100;
  const history = broker.answer((entry: HistoryEntry) => JSON.stringify(entry), openclaw);
  t.after(() => history.release());
  const listed = (await broker.history(openclaw, 40, history)).map((entry) => entry.id);
  assert.deepEqual(listed, ids.slice(-15), "the small ones and the big ones that fit");
  assert.ok(history.cut);
  assert.ok(most <= bound, `a /history read held ${most} characters (the answer's budget: ${RESTART_BUDGET})`);
  // Parked once the history is read: a park takes a message that is still in the inbox out of it.
  for (const id of ids) await broker.deadLetters.park(openclaw, id, "410 Gone");
  most = 0;
  const letters = broker.answer((letter: ListedDeadLetter) => JSON.stringify(letter), openclaw);
  t.after(() => letters.release());
  assert.deepEqual((await broker.deadLetters.list(openclaw, 40, false, letters)).map((letter) => letter.id), ids.slice(-15));
  assert.ok(letters.cut);
  assert.ok(most <= bound, `a /dead-letters read held ${most} characters (the answer's budget: ${RESTART_BUDGET})`);
});
