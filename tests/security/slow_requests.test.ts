/**
 * Issue 13, hole 3: slow and half-sent requests. A head or a body trickled a byte at a time is cut at
 * --request-timeout (a deadline, not an idle timer), connections still sending their requests are capped, and a
 * client that keeps its end open after its answer keeps no socket. Scaled down: --request-timeout 1s and a byte
 * every 200 ms stand for the 10 s per byte.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { type RawClient, rawClient } from "../helpers/raw_client.ts";

async function setUp(t: { after(fn: () => unknown): void }, args: string[]): Promise<{ broker: RunningBroker; attackers: RawClient[] }> {
  const attackers: RawClient[] = [];
  let broker: RunningBroker | undefined;
  t.after(async () => {
    for (const attacker of attackers) attacker.socket.destroy();
    await broker?.cleanup();
  });
  broker = await startBroker({ args });
  return { broker, attackers };
}

/** Trickles `start` and then a byte every 200 ms; resolves with how long the broker took to answer 408 and close. */
async function trickleUntilCut(broker: RunningBroker, attackers: RawClient[], start: string): Promise<number> {
  const attacker = await rawClient(broker.url, "", (client) => attackers.push(client));
  const began = Date.now();
  attacker.trickle(start, 200);
  await waitFor(() => attacker.closed(), 8000, "the broker to close the trickling connection");
  assert.match(attacker.received(), /^HTTP\/1\.1 408 /);
  assert.match(attacker.received(), /"code":"request_timeout"/);
  return Date.now() - began;
}

const HEADS = {
  "the bare socket": "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nx-pad: ",
  "node:http": "PUT /status HTTP/1.1\r\nHost: 127.0.0.1\r\nx-pad: ",
};

for (const [path, start] of Object.entries(HEADS)) {
  test(`a head trickled a byte every 200 ms is cut at --request-timeout 1s (${path})`, async (t) => {
    const { broker, attackers } = await setUp(t, ["--request-timeout", "1s"]);
    const took = await trickleUntilCut(broker, attackers, start);
    assert.ok(took >= 900, `cut after ${took} ms, before the deadline`);
    assert.equal((await fetch(`${broker.url}/status`)).status, 200);
  });
}

const BODIES = {
  "the bare socket": 1000,
  "node:http": 100_000,
};

for (const [path, length] of Object.entries(BODIES)) {
  test(`a body trickled a byte every 200 ms is cut at --request-timeout 1s (${path})`, async (t) => {
    const { broker, attackers } = await setUp(t, ["--request-timeout", "1s"]);
    const head = `POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: ${length}\r\n\r\n{"text":"`;
    const took = await trickleUntilCut(broker, attackers, head);
    assert.ok(took >= 900, `cut after ${took} ms, before the deadline`);
    assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=openclaw`)).json(), [], "nothing of the body was stored");
  });
}

test("connections still sending their heads are capped at --max-connections: the oldest are closed, a new request gets through", async (t) => {
  const { broker, attackers } = await setUp(t, ["--max-connections", "5", "--request-timeout", "60s"]);
  for (let i = 0; i < 30; i++) {
    const start = i % 2 === 0 ? "GET /status HTTP/1.1\r\nHo" : "PUT /status HTTP/1.1\r\nHo";
    await rawClient(broker.url, start, (client) => attackers.push(client));
  }
  const response = await fetch(`${broker.url}/poll?agent=openclaw`);
  assert.equal(response.status, 200);
  await response.body?.cancel();
  // The deadline is a minute away: only the cap can have closed them.
  await waitFor(() => attackers.filter((attacker) => !attacker.closed()).length <= 5, 5000, "the broker to keep at most five of them");
  assert.ok(attackers.slice(-3).every((attacker) => !attacker.closed()), "the newest ones are kept, the oldest closed");
});

/** The sockets the broker's process holds open (Linux: /proc), or undefined where that cannot be read. */
function brokerSockets(broker: RunningBroker): number | undefined {
  const dir = `/proc/${broker.pid}/fd`;
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir).filter((fd) => {
    try {
      return readlinkSync(`${dir}/${fd}`).startsWith("socket:");
    } catch {
      return false; // closed while listed
    }
  }).length;
}

const ANSWERED_THEN_CLOSED = {
  "Connection: close on the bare socket": "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
  "a malformed head answered 400": "GET /status HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
};

for (const [what, request] of Object.entries(ANSWERED_THEN_CLOSED)) {
  const skip = existsSync("/proc/self/fd") ? false : "counts the broker's sockets in /proc";
  test(`clients that keep their end open after their last answer keep no socket (${what})`, { skip }, async (t) => {
    const { broker, attackers } = await setUp(t, []);
    const before = brokerSockets(broker)!;
    for (let i = 0; i < 20; i++) await rawClient(broker.url, request, (client) => attackers.push(client));
    // Each got its answer and the broker's FIN, and never closes its own side.
    await waitFor(() => attackers.every((attacker) => attacker.closed()), 5000, "every answer and FIN");
    assert.ok(attackers.every((attacker) => /^HTTP\/1\.1 [24]00 /.test(attacker.received())));
    await waitFor(() => brokerSockets(broker)! <= before + 2, 5000, `the broker to let the sockets go (it held ${before} before)`);
  });
}

const REPLACED_SKIP = existsSync("/proc/self/fd") ? false : "counts the broker's sockets in /proc";

test("clients of streams the broker replaced, keeping their end open, keep no socket", { skip: REPLACED_SKIP }, async (t) => {
  const { broker, attackers } = await setUp(t, []);
  const before = brokerSockets(broker)!;
  // Each stream for hermes replaces the one before: the broker ends it, its client never closes its side.
  for (let i = 0; i < 20; i++) {
    const stream = await rawClient(broker.url, "GET /subscribe?agent=hermes HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", (client) => attackers.push(client));
    await waitFor(() => stream.received().includes("\r\n\r\n"), 5000, "the stream to open");
  }
  await waitFor(() => attackers.slice(0, -1).every((attacker) => attacker.closed()), 5000, "the replaced streams to end");
  assert.ok(attackers.slice(0, -1).every((attacker) => attacker.received().includes(": replaced: a newer stream")));
  await waitFor(() => brokerSockets(broker)! <= before + 3, 5000, `the broker to let the replaced streams' sockets go (it held ${before} before)`);
});

for (const [what, start] of Object.entries({
  "part of a head": "GET /status HTTP/1.1\r\n",
  "a head and part of its body": 'POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n{"te',
})) {
  test(`a new connection that sends ${what} and then nothing gets 408 at --request-timeout, as documented`, async (t) => {
    const { broker, attackers } = await setUp(t, ["--request-timeout", "1s"]);
    const stalled = await rawClient(broker.url, start, (client) => attackers.push(client));
    await waitFor(() => stalled.closed(), 5000, "the broker to close the connection");
    // The connection's idle timer closed it first, with nothing said.
    assert.match(stalled.received(), /^HTTP\/1\.1 408 /);
    assert.match(stalled.received(), /"code":"request_timeout"/);
  });
}
