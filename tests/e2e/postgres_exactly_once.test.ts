/**
 * Exactly once across brokers on one PostgreSQL: a poll, a stream and a wait for one agent on three brokers take
 * each message once; the agent's one stream is the newest, wherever it opened; an ask's reply crosses brokers.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { publish, type RunningBroker, waitFor } from "../helpers/broker.ts";
import { brokersOnOneDatabase as onOneDatabase, sharedPostgres } from "../helpers/postgres.ts";
import { openSse, type SseConnection } from "../helpers/sse.ts";

const cluster = sharedPostgres();

/** `count` brokers on a database of their own, stopped after the test. */
async function brokersOnOneDatabase(t: TestContext, count: number): Promise<RunningBroker[] | undefined> {
  const server = await cluster(t);
  return server === undefined ? undefined : (await onOneDatabase(t, server, count)).brokers;
}

/** The message ids a stream has written so far. */
const idsOf = (stream: SseConnection) => [...stream.raw().matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));

test("a poll on A, a stream on B and a wait on C take each message once, published on all three", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 3);
  if (brokers === undefined) return;
  const [a, b, c] = brokers;
  const stream = await openSse(`${b.url}/subscribe?agent=openclaw`);
  t.after(() => stream.close());
  const polled: number[] = [];
  const waited: number[] = [];
  let reading = true;
  const poller = (async () => {
    while (reading) {
      const page = await (await fetch(`${a.url}/poll?agent=openclaw&limit=5`)).json();
      polled.push(...page.map((message: { interop: { id: number } }) => message.interop.id));
    }
  })();
  const waiter = (async () => {
    while (reading) {
      const response = await fetch(`${c.url}/wait?agent=openclaw&timeout=1`);
      if (response.status === 200) waited.push((await response.json()).interop.id);
      else await response.body?.cancel();
    }
  })();
  t.after(async () => {
    reading = false;
    await Promise.allSettled([poller, waiter]);
  });

  const acknowledged: number[] = [];
  await Promise.all(brokers.map(async (broker, index) => {
    for (let n = 0; n < 50; n++) {
      const response = await publish(broker.url, `pub-${index}`, "openclaw", { index, n });
      assert.equal(response.status, 200, await response.clone().text());
      acknowledged.push((await response.json()).id);
    }
  }));
  const taken = () => [...polled, ...idsOf(stream), ...waited];
  await waitFor(() => taken().length >= acknowledged.length, 20_000, "every message to be taken").catch(() => {});
  reading = false;
  await Promise.all([poller, waiter]);
  const all = taken();
  t.diagnostic(`${acknowledged.length} published: ${polled.length} polled on A, ${idsOf(stream).length} streamed on B, ` +
    `${waited.length} waited for on C`);
  assert.equal(all.length, new Set(all).size, "no message taken twice");
  assert.deepEqual(all.sort((x, y) => x - y), acknowledged.sort((x, y) => x - y), "every message taken");
  assert.deepEqual(idsOf(stream), [...idsOf(stream)].sort((x, y) => x - y), "the stream in order");
});

test("the newest stream wins across brokers: the one on A gets event replaced when one opens on B", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const first = await openSse(`${a.url}/subscribe?agent=openclaw`);
  t.after(() => first.close());
  assert.equal((await publish(a.url, "hermes", "openclaw", { n: 1 })).status, 200);
  assert.deepEqual((await first.take(1)).map((event) => JSON.parse(event.data).n), [1]);
  const second = await openSse(`${b.url}/subscribe?agent=openclaw`);
  t.after(() => second.close());
  const [replaced] = await first.take(1);
  assert.equal(replaced.event, "replaced");
  assert.match(replaced.data, /a newer stream for openclaw took over on another broker/);
  await first.ended;
  assert.equal((await publish(a.url, "hermes", "openclaw", { n: 2 })).status, 200);
  assert.deepEqual((await second.take(1)).map((event) => JSON.parse(event.data).n), [2], "the new stream has what comes next");
});

test("an ask on A gets the reply published on B", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const asking = fetch(`${a.url}/ask?from=hermes&to=openclaw&timeout=20`, { method: "POST", body: JSON.stringify({ q: "ping" }) });
  const question = await waitFor(async () => (await (await fetch(`${b.url}/poll?agent=openclaw`)).json())[0], 10_000, "the question on B");
  await fetch(`${b.url}/broadcast?from=openclaw&reply_to=${question.interop.id}`, { method: "POST", body: JSON.stringify({ a: "pong" }) });
  const answered = await (await asking).json();
  assert.equal(answered.reply.a, "pong");
  assert.deepEqual(await (await fetch(`${b.url}/poll?agent=hermes`)).json(), [], "the reply was taken by the ask");
});

test("a publish retried on another broker, at once or later, finds the first by its Idempotency-Key", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const send = async (url: string, key: string) => {
    const response = await publish(url, "hermes", "openclaw", { key }, { "idempotency-key": key });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()).id as number;
  };
  for (let n = 0; n < 10; n++) {
    const key = `at-once-${n}`;
    const [first, retry] = await Promise.all([send(a.url, key), send(b.url, key)]);
    assert.equal(retry, first, `${key}: both answers name one message`);
  }
  const later = await send(a.url, "later");
  assert.equal(await send(b.url, "later"), later);
  const stored = await (await fetch(`${b.url}/poll?agent=openclaw&limit=100`)).json();
  assert.deepEqual(stored.map((message: { key: string }) => message.key).sort(), [...Array.from({ length: 10 }, (_, n) => `at-once-${n}`), "later"].sort());
});

test("a key used for a direct send is refused for a broadcast on another broker, and a keyed broadcast's retry there finds it", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const keyed = (url: string, to: string | undefined, key: string) => publish(url, "hermes", to, { text: key }, { "idempotency-key": key });
  assert.equal((await keyed(a.url, "openclaw", "direct")).status, 200);
  const refused = await keyed(b.url, undefined, "direct");
  assert.equal(refused.status, 409);
  assert.equal((await refused.json()).code, "idempotency_key_reused");
  const first = await (await keyed(a.url, undefined, "everyone")).json();
  assert.deepEqual((await (await keyed(b.url, undefined, "everyone")).json()).ids, first.ids);
  const stored = await (await fetch(`${b.url}/poll?agent=openclaw&limit=100`)).json();
  assert.deepEqual(stored.map((message: { text: string }) => message.text), ["direct", "everyone"]);
});

test("an agent's first request on a broker that does not know its inbox yet takes what is pending there", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  // Before B's next look at the cluster (every second): five rounds, so that the old upsert (the cursor moved to
  // B's newest id) could not pass them all by chance.
  for (let round = 0; round < 5; round++) {
    const agent = `late-${round}`;
    assert.deepEqual(await (await fetch(`${a.url}/poll?agent=${agent}`)).json(), [], "the inbox is created on A");
    const sent = await (await publish(a.url, "hermes", agent, { round })).json();
    assert.equal((await publish(b.url, "hermes", "openclaw", { newer: round })).status, 200);
    const taken = await (await fetch(`${b.url}/poll?agent=${agent}`)).json();
    assert.deepEqual(taken.map((message: { interop: { id: number } }) => message.interop.id), [sent.id], `${agent} on B`);
  }
});

// Red team 63: the poll's claim moved the cursor as a stream's does, without marking what it took: a stream resuming
// by an id before it sent it again.
test("what an ntfy poll=1 on A took is not written to a stream on B that resumes by an id before it", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const send = async (text: string) => (await (await publish(b.url, "hermes", "openclaw", { text })).json()).id as number;
  const first = await send("m1");
  assert.equal((await (await fetch(`${b.url}/poll?agent=openclaw`)).json()).length, 1);
  const polled = await send("m2");
  const taken = (await (await fetch(`${a.url}/ntfy/openclaw/json?poll=1`)).text()).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(taken.map((event) => event.message), ["m2"]);
  const after = await send("m3");
  const stream = await openSse(`${b.url}/subscribe?agent=openclaw`, { "last-event-id": String(first) });
  t.after(() => stream.close());
  assert.deepEqual((await stream.take(1)).map((event) => Number(event.id)), [after], `not the polled ${polled}`);
});

test("an ntfy poll=1 on A counts what it returns as delivered: a /poll on A or B hands none of it again", async (t) => {
  const brokers = await brokersOnOneDatabase(t, 2);
  if (brokers === undefined) return;
  const [a, b] = brokers;
  const sent = [];
  for (let n = 0; n < 3; n++) sent.push((await (await publish(b.url, "hermes", "openclaw", { text: `m${n}` })).json()).id);
  const polled = (await (await fetch(`${a.url}/ntfy/openclaw/json?poll=1`)).text()).trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(polled.map((event) => event.message), ["m0", "m1", "m2"]);
  assert.deepEqual(await (await fetch(`${b.url}/poll?agent=openclaw`)).json(), [], "B hands none of them again");
  assert.deepEqual(await (await fetch(`${a.url}/poll?agent=openclaw`)).json(), [], "nor does A");
  assert.equal(await (await fetch(`${b.url}/ntfy/openclaw/json?poll=1`)).text(), "", "nor an ntfy poll on B");
  const later = (await (await publish(a.url, "hermes", "openclaw", { text: "m3" })).json()).id;
  assert.deepEqual((await (await fetch(`${b.url}/poll?agent=openclaw`)).json()).map((m: { interop: { id: number } }) => m.interop.id), [later]);
  assert.ok(sent.every((id) => id < later));
});
