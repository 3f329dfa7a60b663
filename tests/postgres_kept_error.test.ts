/**
 * The `postgres` client as patched (scripts/patch_postgres.ts): what a connection leaves behind when it closes fails
 * there, not on the connection after the reconnect: an error the server sent during a query, and a query sent
 * between the socket's error and its close. Against a fake server speaking just enough of the protocol: it answers
 * the first connection's query as PostgreSQL stopping does, or resets it.
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
const IN_TRANSACTION = message("Z", new TextEncoder().encode("T"));

/** Rejects when `promise` is not settled within `ms`: a query the client never answers fails the test, not hangs it. */
function answered<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * A one-connection client (test `t` ends both) of a fake server that answers each connection's startup, then hands
 * each later chunk (one query) to `answer` with the connection's number (from 1) and the chunk's (from 1).
 */
async function fakeServer(
  t: { after(fn: () => Promise<void>): void },
  answer: (socket: Socket, connection: number, chunk: number) => void,
): Promise<{ sql: postgres.Sql; connections(): number }> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    const connection = ++connections;
    let chunks = 0;
    socket.on("data", () => {
      // The startup message first (any bytes will do here).
      if (chunks++ === 0) socket.write(Buffer.concat([AUTHENTICATED, READY]));
      else answer(socket, connection, chunks - 1);
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
  return { sql, connections: () => connections };
}

test("a query after the reconnect is not failed by the error the server sent as the connection before it closed", async (t) => {
  const { sql, connections } = await fakeServer(t, (socket, connection) => {
    if (connection === 1) socket.end(SHUTTING_DOWN);
    else socket.write(Buffer.concat([DONE, READY]));
  });

  // As the broker saw it: the query fails as its connection closes (CONNECTION_CLOSED), the server's error kept.
  await assert.rejects(sql`SELECT 1`.simple(), { code: "CONNECTION_CLOSED" });
  assert.deepEqual([...await sql`SELECT 1`.simple()], [], "the query on the new connection is answered");
  assert.equal(connections(), 2);
});

test("a transaction's rollback sent between its socket's error and close fails there, and the next connection answers every query", async (t) => {
  // PostgreSQL stopping reset the socket of a transaction; the client's rollback, sent in reaction to the error
  // before the close, was kept unanswered (3.4.9 fails what is queued only when a close comes without an error). On
  // the connection made again it then took the answer meant for the next query, and every query after hung: the
  // broker's writes stopped for good right after an outage ended (tests/e2e/postgres_outages).
  const { sql, connections } = await fakeServer(t, (socket, connection, chunk) => {
    if (connection > 1) socket.write(Buffer.concat([DONE, READY]));
    // The first connection: BEGIN is answered, the transaction's statement meets a reset.
    else if (chunk === 1) socket.write(Buffer.concat([message("C", text("BEGIN")), IN_TRANSACTION]));
    else socket.resetAndDestroy();
  });

  await assert.rejects(answered(sql.begin((tx) => tx`SELECT 1`.simple()), 10_000, "the transaction"));
  for (let query = 1; query <= 3; query++) {
    assert.deepEqual([...await answered(sql`SELECT 1`.simple(), 10_000, `query ${query} after the reconnect`)], []);
  }
  assert.equal(connections(), 2);
});
