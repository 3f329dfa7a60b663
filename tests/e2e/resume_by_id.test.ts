/**
 * A stream that resumes by an id past its inbox's cursor (the cursor lagged at a kill -9, or the client peeked):
 * what it skips counts as delivered only when the id is this store's, as listen and ntfy ids say; any other start
 * past the cursor (an id that names no store, a time) reads from the cursor, so nothing pending is stranded.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { openSse } from "../helpers/sse.ts";

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

test("an id past the cursor that names no store reads from the cursor: what it skipped comes again, none stays pending unread", async (t) => {
  const { broker } = await peekedInbox(t);
  // A Last-Event-ID alone (an EventSource, curl) may be another store's (a new data dir at the same URL), whose
  // client has none of these three.
  const resumed = await openSse(`${broker.url}/subscribe?agent=hermes`, { "Last-Event-ID": "3" });
  t.after(() => resumed.close());
  const events = await resumed.take(3, 5_000);
  assert.deepEqual(events.map((event) => JSON.parse(event.data).text), ["message 1", "message 2", "message 3"]);
  await waitFor(async () => (await hermes(broker)).pending === 0, 10_000, "nothing pending");
});

test("an ntfy stream since an ntfy id of another store reads from the cursor: all three come", async (t) => {
  const { broker, ids, stream } = await peekedInbox(t);
  // Same id, another creation time.
  const foreign = await fetch(`${broker.url}/ntfy/hermes/json?since=${ids[2]}-zzzz`, { signal: stream });
  const reader = foreign.body!.getReader();
  let read = "";
  while ((read.match(/"event":"message"/g) ?? []).length < 3) read += new TextDecoder().decode((await reader.read()).value);
  assert.deepEqual([...read.matchAll(/"message":"(message \d)"/g)].map((match) => match[1]), ["message 1", "message 2", "message 3"]);
});

test("an ntfy poll since a time after messages still pending gets them too: a read past the cursor would strand them", async (t) => {
  const { broker } = await peekedInbox(t);
  // The next second starts: a message created then is the only one "since" it.
  const second = Math.floor(Date.now() / 1000) + 1;
  while (Date.now() < second * 1000) await new Promise((resolve) => setTimeout(resolve, 20));
  await publish(broker.url, "openclaw", "hermes", { text: "message 4" });
  assert.deepEqual(await ntfyPoll(broker, String(second)), ["message 1", "message 2", "message 3", "message 4"]);
  assert.equal((await hermes(broker)).pending, 0);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json(), []);
});

test("an ntfy id past every id this store assigned (another data dir's) reads from the cursor, not 409", async (t) => {
  const { broker, ids } = await peekedInbox(t);
  assert.deepEqual(await ntfyPoll(broker, `${ids[2] + 5}-zzzz`), ["message 1", "message 2", "message 3"]);
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

test("a resume naming this store with another agent's message id reads from the cursor: the agent's own pending ones are sent, not skipped", async (t) => {
  const { broker } = await peekedInbox(t);
  const store = (await (await fetch(`${broker.url}/status`)).json()).store_id;
  // An id past hermes's three, of a message to someone else (a client that kept one saved id across agents).
  const foreign = (await (await publish(broker.url, "hermes", "openclaw", { text: "for openclaw" })).json()).id;
  const resumed = await openSse(`${broker.url}/subscribe?agent=hermes`, { "Last-Event-ID": String(foreign), "Interop-Store": store });
  t.after(() => resumed.close());
  const events = await resumed.take(3, 5_000);
  assert.deepEqual(events.map((event) => JSON.parse(event.data).text), ["message 1", "message 2", "message 3"]);
  await waitFor(async () => (await hermes(broker)).pending === 0, 10_000, "nothing pending");
});
