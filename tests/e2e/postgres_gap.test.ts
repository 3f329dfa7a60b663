/**
 * The gap of sequences under concurrent writers: publishers on three brokers into each of three inboxes, each
 * COMMIT delayed by a random 0–50 ms, a stream on every broker (one inbox each: an agent has one stream). Every
 * stream gets every id of its inbox once, in order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { cleanUpAll } from "../helpers/clean_up_all.ts";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { sharedPostgres } from "../helpers/postgres.ts";
import { openSse, type SseConnection } from "../helpers/sse.ts";

const cluster = sharedPostgres();
const BROKERS = 3;
const PUBLISHERS_PER_BROKER = 3;
const MESSAGES_PER_PUBLISHER = 30;
const inbox = (n: number) => `inbox-${n % BROKERS}`;

/** The ids a stream has written so far, in the order written. */
const idsOf = (stream: SseConnection) => [...stream.raw().matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));

test("publishers on three brokers into each inbox with delayed COMMITs: a stream on every broker gets every id once, in order", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const brokers: RunningBroker[] = [];
  const streams: SseConnection[] = [];
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() =>
    cleanUpAll(
      () => streams.forEach((stream) => stream.close()),
      ...brokers.map((broker) => () => broker.cleanup()),
      () => admin.end(),
    )
  );
  for (let n = 0; n < BROKERS; n++) brokers.push(await startBroker({ args: ["--database-url", url] }));
  // Test only: every transaction that stored a message sleeps 0–50 ms at COMMIT, after it took its ids, so a
  // writer that took a higher id often commits first.
  await admin.unsafe(`
    CREATE FUNCTION interop_test_commit_delay() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN PERFORM pg_sleep(random() * 0.05); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER interop_test_commit_delay AFTER INSERT ON interop_messages
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION interop_test_commit_delay();`);
  for (const [b, broker] of brokers.entries()) {
    streams.push(await openSse(`${broker.url}/subscribe?agent=${inbox(b)}`, { "last-event-id": "0" }));
  }

  const acknowledged: number[][] = brokers.map(() => []);
  await Promise.all(brokers.flatMap((broker, b) =>
    Array.from({ length: PUBLISHERS_PER_BROKER }, async (_, p) => {
      for (let n = 0; n < MESSAGES_PER_PUBLISHER; n++) {
        const response = await publish(broker.url, `pub-${b}-${p}`, inbox(n + p), { b, p, n });
        assert.equal(response.status, 200, await response.clone().text());
        acknowledged[(n + p) % BROKERS].push((await response.json()).id);
      }
    })
  ));
  assert.equal(new Set(acknowledged.flat()).size, BROKERS * PUBLISHERS_PER_BROKER * MESSAGES_PER_PUBLISHER);

  for (const [index, stream] of streams.entries()) {
    const expected = acknowledged[index].sort((x, y) => x - y);
    // A stream that skipped an id never writes it: wait for the count with a deadline, then compare.
    await waitFor(() => idsOf(stream).length >= expected.length, 20_000, `stream ${index} to catch up`).catch(() => {});
    const ids = idsOf(stream);
    const missing = expected.filter((id) => !ids.includes(id));
    assert.deepEqual(missing, [], `stream on broker ${index} skipped ids`);
    assert.deepEqual(ids, expected, `stream on broker ${index}: every id once, in order`);
  }
  const chain = await admin<{ recipient: string; id: number; prev_id: number }[]>`
    SELECT recipient, id::int, prev_id::int FROM interop_messages ORDER BY recipient, id`;
  const broken = chain.filter((row, index) =>
    row.prev_id !== (index === 0 || chain[index - 1].recipient !== row.recipient ? 0 : chain[index - 1].id));
  assert.deepEqual(broken, [], "each message's prev_id is its inbox's previous message");
  t.diagnostic(`${acknowledged.flat().length} messages from ${BROKERS * PUBLISHERS_PER_BROKER} publishers on ${BROKERS} brokers, ` +
    `read in order by ${streams.length} streams`);
});
