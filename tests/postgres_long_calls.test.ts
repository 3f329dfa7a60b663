/**
 * A PostgreSQL store call past its bound is given up only when the server is not working on it: a long one (a
 * retention sweep after a long downtime, a wait for another session's lock) runs on. Cut, it was rolled back, to be
 * run and cut again at the next sweep, an outage each time.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import postgres from "postgres";
import type { AgentName } from "../src/message.ts";
import { PostgresStore } from "../src/store/postgres.ts";
import { waitFor } from "./helpers/broker.ts";
import { sharedPostgres } from "./helpers/postgres.ts";

const server = sharedPostgres();
const BOUND_MS = 300;

test("a read and a write transaction waiting past the bound on a lock the server holds them for run on, with no outage", async (t) => {
  const cluster = await server(t);
  if (cluster === undefined) return;
  const url = await cluster.createDatabase();
  const warnings: string[] = [];
  const store = await PostgresStore.open({
    url,
    durability: "strict",
    claimant: { pid: process.pid, host: "test", version: "test" },
    warn: (message) => warnings.push(message),
    callBoundMs: BOUND_MS,
  });
  t.after(() => store.close());
  const [admin, watcher] = [postgres(url, { max: 1, onnotice: () => {} }), postgres(url, { max: 1, onnotice: () => {} })];
  t.after(() => Promise.all([admin.end(), watcher.end()]));
  const hermes = "hermes" as AgentName;

  let read: Promise<unknown> | undefined;
  let pruned: Promise<unknown> | undefined;
  await admin.begin(async (tx) => {
    await tx`LOCK TABLE interop_messages IN ACCESS EXCLUSIVE MODE`;
    read = store.readAfter(hermes, 0, 10).then(() => "read", (error: Error) => error);
    pruned = store.prune(Date.now(), new Map([[hermes, 10]])).then(() => "pruned", (error: Error) => error);
    // Looked at from a connection of its own: pg_stat_activity is read once a transaction.
    await waitFor(async () =>
      (await watcher<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE 'interop broker %'`)[0]
        .n === 2, 10_000, "both calls waiting for the lock");
    // Several bounds pass while they wait: each time the server says it is working on them.
    await new Promise((resolve) => setTimeout(resolve, 4 * BOUND_MS));
    assert.equal(store.outage, undefined, "an outage started while the server worked on the calls");
  });
  assert.equal(await read, "read");
  assert.equal(await pruned, "pruned");
  assert.equal(store.outage, undefined);
  assert.deepEqual(warnings, []);
});
