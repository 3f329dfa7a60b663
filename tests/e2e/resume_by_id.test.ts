/** A stream that resumes by an id past its inbox's cursor (the cursor lagged at a kill -9, or the client peeked). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";

test("a stream resumed by an id past the cursor counts what it skips as delivered: nothing stays pending", async (t) => {
  let broker: RunningBroker | undefined;
  const abort = new AbortController();
  t.after(async () => {
    abort.abort();
    await broker?.cleanup();
  });
  broker = await startBroker();
  const ids: number[] = [];
  for (const n of [1, 2, 3]) ids.push((await (await publish(broker.url, "openclaw", "hermes", { text: `message ${n}` })).json()).id);
  // A peek takes nothing: the cursor stays before the three, as it does when a kill -9 came before its commit.
  const peeked = await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json();
  assert.deepEqual(peeked.map((message: { interop: { id: number } }) => message.interop.id), ids);

  await fetch(`${broker.url}/subscribe?agent=hermes`, { signal: abort.signal, headers: { "Last-Event-ID": String(ids[1]) } });
  const hermes = async () => (await (await fetch(`${broker!.url}/status`)).json()).agents.hermes;
  await waitFor(async () => (await hermes()).streams === 1, 10_000, "the stream");
  // The third is written to the stream; the first two the client said it has.
  await waitFor(async () => (await hermes()).pending === 0, 10_000, "nothing pending");
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`)).json(), []);
  assert.equal((await hermes()).redelivered, 0);
});
