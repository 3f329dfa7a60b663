/**
 * Requests the bare socket hands to `node:http` (a chunked body, a body past 64 KiB), their bodies arriving in
 * packets after the head as Node's fetch sends them: every one is read whole and stored, on both runtimes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startBroker, waitFor } from "../helpers/broker.ts";
import { type RawClient, rawClient } from "../helpers/raw_client.ts";

/** Apart by a few milliseconds, so that the broker reads each piece on its own, as it does a real client's. */
const nextPacket = () => new Promise((resolve) => setTimeout(resolve, 3));

test("publishes whose chunked or large bodies come in packets after their heads are all answered 200 and stored in order", async (t) => {
  const broker = await startBroker({ args: ["--rate-limit", "0"] });
  const clients: RawClient[] = [];
  t.after(async () => {
    for (const client of clients) client.socket.destroy();
    await broker.cleanup();
  });
  const head = "POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n";
  const sent: number[] = [];
  // Deno's node:http read what came after the head it was handed before the head itself: a 400 "Parse Error" for
  // a third of these.
  for (let n = 0; n < 24; n++) {
    const client = await rawClient(broker.url, "", (opened) => clients.push(opened));
    const body = JSON.stringify({ n, pad: n % 2 ? "x".repeat(100 * 1024) : "" });
    if (n % 2) {
      client.socket.write(`${head}content-length: ${body.length}\r\n\r\n`);
      await nextPacket();
      client.socket.write(body);
    } else {
      client.socket.write(`${head}transfer-encoding: chunked\r\n\r\n`);
      await nextPacket();
      client.socket.write(`${body.length.toString(16)}\r\n${body}\r\n`);
      await nextPacket();
      client.socket.write("0\r\n\r\n");
    }
    await waitFor(() => /\r\n\r\n\{.*\}$/s.test(client.received()), 5000, `the answer to publish ${n}`);
    assert.match(client.received(), /^HTTP\/1\.1 200 /, `publish ${n}: ${client.received()}`);
    sent.push(n);
  }
  const stored = await (await fetch(`${broker.url}/poll?agent=openclaw&limit=100`)).json() as Array<{ n: number }>;
  assert.deepEqual(stored.map((message) => message.n), sent);
});
