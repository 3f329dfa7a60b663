/**
 * On a broker of its own, a stream catching up and a poll of the same inbox hand out each message once: what a poll
 * took while the stream's read of the store was in flight (read before the poll's commit marked it taken) is the
 * poll's, not sent on the stream again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import { parseAgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { TextSink } from "./helpers/text_sink.ts";

const hermes = parseAgentName("hermes");
const openclaw = parseAgentName("openclaw");

/** Resolves once `done()` holds, looking after each turn of the event loop (the test's timeout bounds it). */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

test("a stream whose catch-up read was in flight while a poll took messages does not send them again", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(10) }));
  t.after(() => broker.close());
  const ids: number[] = [];
  for (let n = 0; n < 5; n++) ids.push((await broker.publish(openclaw, hermes, { text: `m${n}` })).envelopes[0].id);
  // The stream's first read of hermes's inbox finds all five, and is held there, as a slow read would be.
  const read = store.readAfter.bind(store);
  const found = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  store.readAfter = async (...args) => {
    store.readAfter = read;
    const page = await read(...args);
    found.resolve();
    await gate.promise;
    return page;
  };
  const sink = new TextSink();
  t.after(() => sink.close());
  (await broker.prepareStream(hermes, { from: "cursor" }, sseFormat(2000, true))).open(sink);
  await found.promise;
  // Meanwhile a poll takes the first two, committed.
  const polled = (await broker.poll(hermes, 2)).map((envelope) => envelope.id);
  assert.deepEqual(polled, ids.slice(0, 2));
  gate.resolve();
  const sent = () => sink.ids();
  await until(() => sent().length >= 3);
  assert.deepEqual(sent(), ids.slice(2), "the stream sends what the poll did not take, each once");
  assert.equal(broker.status().agents[hermes]?.redelivered, 0);
  assert.equal(broker.status().agents[hermes]?.pending, 0);
});
