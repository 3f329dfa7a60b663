/**
 * The `postgres` client as patched (scripts/patch_postgres.ts): an error the server sent during a query whose
 * connection then closed fails that query only, not the first query after the reconnect. Against a fake server
 * speaking just enough of the protocol: it answers the first connection's query as PostgreSQL stopping does.
 */
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import postgres from "postgres";

/** One backend message: its type, then its length (itself included) and body. */
function message(type: string, body: Uint8Array = new Uint8Array()): Uint8Array {
  const framed = new Uint8Array(5 + body.length);
  framed[0] = type.charCodeAt(0);
  new DataView(framed.buffer).setInt32(1, 4 + body.length);
  framed.set(body, 5);
  return framed;
}

const text = (value: string) => new TextEncoder().encode(`${value}\0`);
const READY = message("Z", new TextEncoder().encode("I"));
const AUTHENTICATED = message("R", new Uint8Array(4));
/** What PostgreSQL sends each backend on a fast shutdown, before it closes the connection. */
const SHUTTING_DOWN = message("E", new Uint8Array([
  ...new TextEncoder().encode("S"), ...text("FATAL"),
  ...new TextEncoder().encode("C"), ...text("57P01"),
  ...new TextEncoder().encode("M"), ...text("terminating connection due to administrator command"),
  0,
]));
const DONE = message("C", text("SELECT 0"));

test("a query after the reconnect is not failed by the error the server sent as the connection before it closed", async (t) => {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const connection = ++connections;
    let started = false;
    socket.on("data", () => {
      // The startup message first (any bytes will do here), then one simple query per chunk.
      if (!started) {
        started = true;
        return void socket.write(Buffer.concat([AUTHENTICATED, READY]));
      }
      if (connection === 1) socket.end(SHUTTING_DOWN);
      else socket.write(Buffer.concat([DONE, READY]));
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const sql = postgres({
    host: "127.0.0.1",
    port: (server.address() as { port: number }).port,
    max: 1,
    fetch_types: false,
    backoff: () => 0,
    onnotice: () => {},
  });
  t.after(async () => {
    await sql.end({ timeout: 0 });
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  // As the broker saw it: the query fails as its connection closes (CONNECTION_CLOSED), the server's error kept.
  await assert.rejects(sql`SELECT 1`.simple(), { code: "CONNECTION_CLOSED" });
  assert.deepEqual([...await sql`SELECT 1`.simple()], [], "the query on the new connection is answered");
  assert.equal(connections, 2);
});
