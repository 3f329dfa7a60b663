/**
 * A stream on PostgreSQL whose claim (the compare-and-set that takes a page for it) commits but loses its answer:
 * what it took is still sent.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { sseFormat } from "../src/http/sse_format.ts";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { waitFor } from "./helpers/broker.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { TextSink } from "./helpers/text_sink.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;
const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
const cluster = sharedPostgres();

for (const committed of [true, false]) {
  const what = committed ? "committed with its answer lost (the connection broke)" : "failed (PostgreSQL down)";
  test(`a stream whose claim ${what} sends what it read, once, in order`, async (t) => {
    const server = await cluster(t);
    if (server === undefined) return;
    const url = await server.createDatabase();
    const store = await PostgresStore.open({
      url,
      durability: "strict",
      claimant: { pid: process.pid, host: "test", version: "test" },
      warn: () => {},
    });
    let opened: Broker | undefined;
    t.after(() => opened !== undefined ? opened.close() : store.close());
    const broker = opened = await Broker.open(
      testBrokerOptions(store, "/nonexistent", { agents: [hermes, openclaw], admitAgent: () => {} }),
    );
    for (let n = 1; n <= 3; n++) await broker.publish(hermes, openclaw, { n });

    // The first claim fails; one that commits first is as when the connection breaks between the COMMIT and the reply.
    const claim = store.shared.claim.bind(store.shared);
    let failed = false;
    store.shared.claim = async (...args) => {
      if (failed) return await claim(...args);
      if (committed) await claim(...args);
      failed = true;
      throw new InteropError("storage_unavailable", "Storage unavailable: the connection to PostgreSQL broke");
    };
    const sink = new TextSink();
    t.after(() => sink.close());
    (await broker.prepareStream(openclaw, { from: "cursor" }, sseFormat(2000, true))).open(sink);
    await waitFor(() => failed, 30_000, "the stream's first claim");
    // Reads on at the next wake-up: this commit (or the idle re-read, 5 s, had it come while the claim failed).
    await broker.publish(hermes, openclaw, { n: 4 });
    await waitFor(() => ids(sink.text).includes(4), 30_000, "the stream to send the message published after the claim");
    assert.equal(sink.closed.aborted, false);
    assert.deepEqual(ids(sink.text), [1, 2, 3, 4], "what the failed claim read is sent, once, in order");
  });
}
