/**
 * A broker frozen (SIGSTOP: a paused VM, a partition with no reset) inside a transaction held its row locks for as
 * long as it stayed frozen, and the other brokers' writes to those inboxes waited behind them, then every request
 * they served answered 503 (red team 53: 37 s, the whole freeze). The server now ends such a session after a few
 * seconds, and the other brokers go on.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import postgres from "postgres";
import { waitFor } from "../helpers/broker.ts";
import { brokersOnOneDatabase, startPostgres } from "../helpers/postgres.ts";

const MESSAGES = 200;

test("a broker frozen inside a transaction holds another broker's take from its inbox for seconds, and nothing is taken twice or lost", async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const { url, brokers: [frozen, other] } = await brokersOnOneDatabase(t, server, 2);
  for (const agent of ["hz", "elsewhere"]) assert.equal((await fetch(`${other.url}/agents?agent=${agent}`, { method: "POST" })).status, 201);
  for (let n = 0; n < MESSAGES; n++) {
    const published = await fetch(`${other.url}/broadcast?from=p&to=hz`, { method: "POST", body: JSON.stringify({ n }) });
    assert.equal(published.status, 200);
  }
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const taken: number[] = [];
  const take = async (broker: string) => {
    const answer = await fetch(`${broker}/poll?agent=hz&limit=1`);
    if (answer.status === 200) taken.push(...(await answer.json()).map((message: { n: number }) => message.n));
    return answer.status;
  };
  let loading = true;
  // Takes one at a time on the broker to freeze: each is a transaction on hz's row.
  const load = Array.from({ length: 4 }, async () => {
    while (loading) await take(frozen.url);
  });
  let caught = false;
  try {
    for (let attempt = 0; attempt < 200 && !caught; attempt++) {
      process.kill(frozen.pid, "SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, 150));
      const [{ stuck }] = await sql<{ stuck: number }[]>`
        SELECT count(*)::int AS stuck FROM pg_stat_activity
        WHERE application_name LIKE 'interop broker%' AND state = 'idle in transaction'
          AND state_change < clock_timestamp() - interval '100 milliseconds'`;
      caught = stuck > 0;
      if (!caught) {
        process.kill(frozen.pid, "SIGCONT");
        await new Promise((resolve) => setTimeout(resolve, 20 + attempt % 7 * 15));
      }
    }
    loading = false;
    assert.ok(caught, "the broker was never frozen inside a transaction in 200 tries");
    const started = performance.now();
    const status = await take(other.url).catch((error) => `no answer: ${error}`);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(status, 200, `the take through the other broker after ${seconds.toFixed(1)} s`);
    assert.ok(seconds < 12, `the take through the other broker waited ${seconds.toFixed(1)} s`);
    const unrelated = await fetch(`${other.url}/broadcast?from=p&to=elsewhere`, { method: "POST", body: "{}" });
    assert.equal(unrelated.status, 200);
  } finally {
    loading = false;
    process.kill(frozen.pid, "SIGCONT");
    await sql.end();
  }
  await Promise.all(load);
  // What is left: every message taken once, by one broker or the other.
  for (;;) {
    const left = await (await fetch(`${other.url}/poll?agent=hz&limit=100`)).json();
    if (left.length === 0) break;
    taken.push(...left.map((message: { n: number }) => message.n));
  }
  assert.deepEqual([...taken].sort((a, b) => a - b), Array.from({ length: MESSAGES }, (_, n) => n));
  // The broker whose session the server ended serves again.
  await waitFor(async () => (await fetch(`${frozen.url}/broadcast?from=p&to=hz`, { method: "POST", body: "{}" })).status === 200, 20_000, "the thawed broker to publish again");
});
