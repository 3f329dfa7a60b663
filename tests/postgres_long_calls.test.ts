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
import { BoundedCalls } from "../src/store/postgres_calls.ts";
import { Registration } from "../src/store/postgres_registry.ts";
import { StoreSockets } from "../src/store/postgres_sockets.ts";
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

test("a transaction whose client pauses between its statements, each time for less than the bound, is not cut", async (t) => {
  // The bound's look fell between two statements (`idle in transaction` for a moment, the next one not yet sent)
  // and cut the call: an outage (every connection cut) with nothing stuck (seen once, in the test above).
  const cluster = await server(t);
  if (cluster === undefined) return;
  const url = await cluster.createDatabase();
  const registry = await Registration.connect({ url, location: "test", durability: "strict", warn: () => {} });
  t.after(() => registry.close());
  const calls = new BoundedCalls(BOUND_MS, { registry, sockets: new StoreSockets(), check: () => Promise.resolve() });
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => sql.end());

  let backend: number | undefined;
  const statements = await calls.run("paused transaction", () =>
    sql.begin(async (tx) => {
      [{ pid: backend }] = await tx<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
      let count = 1;
      // Half the bound away each time, for four bounds: every look meets the transaction between statements.
      for (const started = performance.now(); performance.now() - started < 4 * BOUND_MS; count++) {
        await new Promise((resolve) => setTimeout(resolve, BOUND_MS / 2));
        await tx`SELECT 1`;
      }
      return count;
    }), () => backend);
  assert.ok(statements > 4, `${statements} statements`);
  assert.equal(registry.outage, undefined);
});
