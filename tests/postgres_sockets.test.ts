/**
 * The PostgreSQL store's sockets (src/store/postgres_sockets.ts), made by the store through the client's `socket`
 * option: they reach the server over TCP or its Unix socket, and destroying them fails what was in flight (a query
 * that would never end) while the next query connects again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import postgres from "postgres";
import { StoreSockets } from "../src/store/postgres_sockets.ts";
import { sharedPostgres } from "./helpers/postgres.ts";

const server = sharedPostgres();

test("destroying the store's sockets fails a query in flight at once, and the next query connects again", async (t) => {
  const cluster = await server(t);
  if (cluster === undefined) return;
  const sockets = new StoreSockets();
  const sql = postgres(cluster.url, { max: 1, onnotice: () => {}, ...({ socket: sockets.connect } as object) });
  t.after(() => sql.end({ timeout: 1 }));
  assert.deepEqual([...await sql`SELECT 1 AS one`], [{ one: 1 }]);
  const endless = sql`SELECT pg_sleep(3600)`.execute();
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  t.after(() => admin.end({ timeout: 1 }));
  // Wait for the sleep to be running on the server, so that it is a query in flight that is cut, not one queued.
  for (let tries = 0; (await admin`SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3600)'`).length === 0; tries++) {
    assert.ok(tries < 1000, "the sleep never started");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  sockets.destroyAll();
  await assert.rejects(endless, (error: { code?: string }) => error.code === "CONNECTION_CLOSED");
  assert.deepEqual([...await sql`SELECT 2 AS two`], [{ two: 2 }]);
});

test("the store's sockets reach a server by its Unix socket", async (t) => {
  const cluster = await server(t);
  if (cluster === undefined) return;
  const sockets = new StoreSockets();
  const sql = postgres({
    path: join(cluster.socketDir, `.s.PGSQL.${cluster.port}`),
    user: "postgres",
    database: "postgres",
    max: 1,
    onnotice: () => {},
    ...({ socket: sockets.connect } as object),
  });
  t.after(() => sql.end({ timeout: 1 }));
  const [row] = await sql<{ address: string | null }[]>`SELECT inet_client_addr()::text AS address`;
  assert.equal(row.address, null, "a Unix socket has no client address");
});
