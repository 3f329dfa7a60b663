/**
 * Deno's listener watch, on a plain `node:net` server with a period of a quarter second (ample for an accept on a
 * loaded machine): its probe reaches none of the server's own "connection" listeners (there it would take a place
 * under the connection cap), and clients still do.
 */
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { watchListener } from "../src/runtime/listener_watch.ts";
import { waitFor } from "./helpers/broker.ts";

test("watchListener() keeps its probes from the server's connection listeners and hands them every client", async (t) => {
  const handed: Socket[] = [];
  const server = createServer((socket) => void handed.push(socket));
  const clients: Socket[] = [];
  const relistened: (Error | undefined)[] = [];
  t.after(() => {
    watch?.stop();
    for (const socket of [...handed, ...clients]) socket.destroy();
    server.close();
  });
  let watch: ReturnType<typeof watchListener> | undefined = undefined;
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  watch = watchListener(server, (error) => relistened.push(error), 250);
  // Added after the watch, so not sorted by it: this one sees every connection the listener accepts, probes too.
  let accepts = 0;
  server.on("connection", () => void accepts++);

  await waitFor(() => accepts >= 3, 10_000, "three probes to be accepted");
  assert.equal(handed.length, 0, "no probe was handed to the server's listener");

  const client = connect({ port: (server.address() as AddressInfo).port, host: "127.0.0.1" });
  clients.push(client.on("error", () => {}));
  client.write("hello");
  const socket = await waitFor(() => handed[0], 10_000, "the client to be handed over");
  let received = "";
  socket.on("data", (chunk: Buffer) => (received += chunk.toString()));
  await waitFor(() => received === "hello", 10_000, "what the client sent to reach the listener");
  assert.equal(handed.length, 1);
  assert.deepEqual(relistened, [], "the listener was never taken for dead");
});
