/**
 * Readers of one inbox on brokers that share a PostgreSQL store: an ntfy `poll=1` and a stream racing for the same
 * messages hand each out once.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { uniform } from "../src/broker/per_agent.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import { type AgentName, wireJson } from "../src/message.ts";
import { waitFor } from "./helpers/broker.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { TextSink } from "./helpers/text_sink.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const cluster = sharedPostgres();
const twoBrokers = twoBrokersOn(cluster);
/** Publishes each raced by a poll: bounded, the race is lost within a few when it can be. */
const ROUNDS = 40;

for (const where of ["on another broker", "on the same broker"]) {
  test(`an ntfy poll=1 racing a stream ${where} for the same messages: each is handed out once, by one of them`, async (t) => {
    const brokers = await twoBrokers(t, { maxPending: uniform(1000) });
    if (brokers === undefined) return;
    const { a, b } = brokers;
    const poller = where === "on another broker" ? a : b;
    await a.addAgent(openclaw);
    const sink = new TextSink();
    t.after(() => sink.close());
    (await b.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
    const streamed = () => sink.ids();

    const sent: number[] = [];
    const polled: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const { envelopes: [envelope] } = await a.publish(hermes, openclaw, { round });
      sent.push(envelope.id);
      polled.push(...(await poller.replay(openclaw, { from: "cursor" }, 1000)).map((message) => message.id));
    }
    // The stream reads in id order: once it has a last message no poll races for, it has read all before it.
    const { envelopes: [last] } = await a.publish(hermes, openclaw, { last: true });
    await waitFor(() => streamed().includes(last.id), 10_000, "the stream to get the last message");
    const twice = polled.filter((id) => streamed().includes(id));
    assert.deepEqual(twice, [], `handed out by the poll and the stream (polled ${polled.length}, streamed ${streamed().length - 1})`);
    assert.deepEqual([...polled, ...streamed()].sort((x, y) => x - y), [...sent, last.id], "every message, once");
  });
}

test("on brokers sharing PostgreSQL, a poll and an ntfy poll=1 take only what fits in their answer, and nothing for a client that left", async (t) => {
  const brokers = await twoBrokers(t, { maxPending: uniform(1000), answerBudget: 2000 });
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const sent: number[] = [];
  for (let n = 0; n < 5; n++) sent.push((await a.publish(hermes, openclaw, { text: "y".repeat(800) })).envelopes[0].id);
  const left = new AbortController();
  left.abort();
  assert.deepEqual(await b.poll(openclaw, 1000, { answer: b.answer(wireJson), clientGone: left.signal }), []);
  assert.deepEqual(await b.replay(openclaw, { from: "cursor" }, 1000, b.answer(wireJson), left.signal), []);
  const answer = b.answer(wireJson);
  assert.deepEqual((await b.poll(openclaw, 1000, { answer })).map((envelope) => envelope.id), sent.slice(0, 2));
  assert.ok(answer.cut);
  const ntfy = a.answer(wireJson);
  assert.deepEqual((await a.replay(openclaw, { from: "cursor" }, 1000, ntfy)).map((envelope) => envelope.id), sent.slice(2, 4));
  assert.ok(ntfy.cut);
  assert.deepEqual((await a.poll(openclaw, 1000, { answer: a.answer(wireJson) })).map((envelope) => envelope.id), sent.slice(4));
});

test("on brokers sharing PostgreSQL, a poll takes no message its answer did not measure, such as one committed after its read", async (t) => {
  const brokers = await twoBrokers(t, { maxPending: uniform(1000), answerBudget: 2000 });
  if (brokers === undefined) return;
  const { a, b } = brokers;
  await a.addAgent(openclaw);
  const late: number[] = [];
  /** An answer whose read is followed by a commit on the other broker, before the poll takes. */
  const answerWithLateCommit = () => {
    const answer = b.answer(wireJson);
    const read = answer.read.bind(answer);
    answer.read = async (...args) => {
      const fits = await read(...args);
      late.push((await a.publish(hermes, openclaw, { text: "y".repeat(800) })).envelopes[0].id);
      return fits;
    };
    return answer;
  };
  assert.deepEqual(await b.poll(openclaw, 1000, { answer: answerWithLateCommit() }), [], "nothing read, nothing taken");
  const { envelopes: [first] } = await a.publish(hermes, openclaw, { text: "y".repeat(800) });
  const answer = answerWithLateCommit();
  const taken = await b.poll(openclaw, 1000, { answer });
  // The first late one was pending when this read measured; the second was committed after it.
  assert.deepEqual(taken.map((envelope) => envelope.id), [late[0], first.id]);
  assert.ok(!answer.cut);
  assert.deepEqual((await a.poll(openclaw, 1000)).map((envelope) => envelope.id), [late[1]], "the late one stays pending");
});
