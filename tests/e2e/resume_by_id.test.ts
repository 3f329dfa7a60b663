/**
 * A stream that resumes by an id past its inbox's cursor (the cursor lagged at a kill -9, or the client peeked):
 * what it skips counts as delivered only when the id is this store's, as listen and ntfy ids say.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";

/** A broker with three messages for hermes that a peek has seen and nothing has taken; the stream opened on it is aborted after the test. */
async function peekedInbox(t: TestContext): Promise<{ broker: RunningBroker; ids: number[]; stream: AbortSignal }> {
  const broker = await startBroker();
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await broker.cleanup();
  });
  const ids: number[] = [];
  for (const n of [1, 2, 3]) ids.push((await (await publish(broker.url, "openclaw", "hermes", { text: `message ${n}` })).json()).id);
  // A peek takes nothing: the cursor stays before the three, as it does when a kill -9 came before its commit.
  const peeked = await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json();
  assert.deepEqual(peeked.map((message: { interop: { id: number } }) => message.interop.id), ids);
  return { broker, ids, stream: abort.signal };
}

async function hermes(broker: RunningBroker): Promise<{ pending: number; streams: number; redelivered: number }> {
  return (await (await fetch(`${broker.url}/status`)).json()).agents.hermes;
}

test("a stream resumed by an id of this store past the cursor counts what it skips as delivered: nothing stays pending", async (t) => {
  const { broker, ids, stream } = await peekedInbox(t);
  const store = (await (await fetch(`${broker.url}/status`)).json()).store_id;
  // As listen resumes: the id with the store it came from.
  await fetch(`${broker.url}/subscribe?agent=hermes`, { signal: stream, headers: { "Last-Event-ID": String(ids[1]), "Interop-Store": store } });
  await waitFor(async () => (await hermes(broker)).streams === 1, 10_000, "the stream");
  // The third is written to the stream; the first two the client said it has.
  await waitFor(async () => (await hermes(broker)).pending === 0, 10_000, "nothing pending");
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json(), []);
  assert.equal((await hermes(broker)).redelivered, 0);
});

test("an id that names no store, or an ntfy id of another store, marks nothing as delivered", async (t) => {
  const { broker, ids, stream } = await peekedInbox(t);
  // A Last-Event-ID alone (an EventSource, curl): the stream starts after it, and what it skipped stays pending.
  await fetch(`${broker.url}/subscribe?agent=hermes`, { signal: stream, headers: { "Last-Event-ID": String(ids[2]) } });
  await waitFor(async () => (await hermes(broker)).streams === 1, 10_000, "the stream");
  assert.equal((await hermes(broker)).pending, 3);
  // An ntfy id of another store (same id, another creation time) is read from the cursor: all three come.
  const foreign = await fetch(`${broker.url}/ntfy/hermes/json?since=${ids[2]}-zzzz`, { signal: stream });
  const reader = foreign.body!.getReader();
  let read = "";
  while ((read.match(/"event":"message"/g) ?? []).length < 3) read += new TextDecoder().decode((await reader.read()).value);
  assert.deepEqual([...read.matchAll(/"message":"(message \d)"/g)].map((match) => match[1]), ["message 1", "message 2", "message 3"]);
});

/** The ntfy ids of hermes's pending messages (the message id and its creation time), read by a peek. */
async function ntfyIds(broker: RunningBroker): Promise<string[]> {
  const peeked = await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json();
  return peeked.map(({ interop }: { interop: { id: number; timestamp: string } }) => `${interop.id}-${Date.parse(interop.timestamp).toString(36)}`);
}

/** The texts of the messages of an ntfy poll's answer (newline-delimited JSON). */
async function ntfyPoll(broker: RunningBroker, since: string): Promise<string[]> {
  const answer = await fetch(`${broker.url}/ntfy/hermes/json?poll=1&since=${since}`);
  assert.equal(answer.status, 200);
  return (await answer.text()).split("\n").filter((line) => line !== "").map((line) => JSON.parse(line).message);
}

test("an ntfy poll since an ntfy id of this store past the cursor counts what it skips as delivered, as a stream does", async (t) => {
  const { broker } = await peekedInbox(t);
  const [, second] = await ntfyIds(broker);
  assert.deepEqual(await ntfyPoll(broker, second), ["message 3"]);
  assert.equal((await hermes(broker)).pending, 0, "the client said it has the first two");
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json(), []);
});

test("an ntfy poll since an ntfy id of another store reads from the cursor, as a stream does", async (t) => {
  const { broker, ids } = await peekedInbox(t);
  assert.deepEqual(await ntfyPoll(broker, `${ids[2]}-zzzz`), ["message 1", "message 2", "message 3"]);
  assert.equal((await hermes(broker)).pending, 0);
});
