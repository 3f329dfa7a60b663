/**
 * Issue 13, hole 3: locking everyone out through --max-connections. Each test is the attack, scaled down in time,
 * and asserts that the broker stays reachable: a place held by a client that left is freed at once, a request that
 * never finishes arriving holds its place only until --request-timeout, and the operator's /status and /metrics
 * answer even when every place is taken. One agent may take them all here (--max-requests-per-agent 20): the share
 * that stops it is tested in agent_share.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { type RawClient, rawClient } from "../helpers/raw_client.ts";

/** How a request is sent to reach each of the Node seam's two readers (a repeated header goes to `node:http`). */
const PATHS = { "the bare socket": "", "node:http": "x-twice: 1\r\nx-twice: 2\r\n" };

/** Starts a broker and an attacker's connection pool, both cleaned up by `t` whatever happens. */
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

/**
 * The broker's /status, on the connection fetch keeps alive. The attacks wait for it after each connection: the cap
 * on connections that have sent no request (--max-connections too) would otherwise close the oldest attacker when
 * the broker takes new connections faster than it reads them (Deno's node:net can accept all twenty first).
 */
async function status(broker: RunningBroker): Promise<{ agents: Record<string, { waiting: number }> }> {
  return await (await fetch(`${broker.url}/status`)).json();
}

/** Whether an ordinary request (not one of the operator's) gets through. */
async function ordinaryStatus(broker: RunningBroker): Promise<number> {
  const response = await fetch(`${broker.url}/poll?agent=openclaw`);
  await response.body?.cancel();
  return response.status;
}

/** Twenty hour-long waits for hermes, each seen by the broker before the next connects. */
async function openWaits(broker: RunningBroker, attackers: RawClient[], extraHeaders = ""): Promise<void> {
  for (let i = 0; i < 20; i++) {
    // The /status that looks for the waits holds an ordinary place while one is free: the last wait, meeting it, may
    // get 503 (too_many_connections), and is sent again.
    for (let refused = true; refused;) {
      let client: RawClient | undefined;
      await rawClient(
        broker.url,
        `GET /wait?agent=hermes&timeout=3600 HTTP/1.1\r\nHost: 127.0.0.1\r\n${extraHeaders}\r\n`,
        (opened) => attackers.push(client = opened),
      );
      const isRefused = () => client!.received().startsWith("HTTP/1.1 503 ");
      await waitFor(async () => isRefused() || (await status(broker)).agents.hermes?.waiting === i + 1, 5000, `wait ${i + 1} to arrive`);
      refused = isRefused();
      if (refused) client!.socket.destroy();
    }
  }
}

for (const [path, extraHeaders] of Object.entries(PATHS)) {
  test(`twenty /wait?timeout=3600 whose clients hang up free their places at once (${path})`, async (t) => {
    const { broker, attackers } = await setUp(t, ["--max-connections", "20", "--max-requests-per-agent", "20"]);
    await openWaits(broker, attackers, extraHeaders);
    await waitFor(async () => await ordinaryStatus(broker) === 503, 10_000, "the twenty waits to take every place");

    for (const attacker of attackers) attacker.socket.destroy();
    await waitFor(async () => await ordinaryStatus(broker) === 200, 10_000, "a request right after the hang-ups to get through");
  });
}

test("/status and /metrics answer while waits hold every place, and ordinary requests get 503", async (t) => {
  const { broker, attackers } = await setUp(t, ["--max-connections", "20", "--max-requests-per-agent", "20"]);
  await openWaits(broker, attackers);
  await waitFor(async () => await ordinaryStatus(broker) === 503, 10_000, "the twenty waits to take every place");

  // Several at once: the operator's places are a handful, not one.
  const answers = await Promise.all([...Array(4)].flatMap(() => [fetch(`${broker.url}/status`), fetch(`${broker.url}/metrics`)]));
  for (const answer of answers) assert.equal(answer.status, 200, answer.url);
  const status = await answers[0].json();
  assert.equal(status.agents.hermes.waiting, 20, "the waits are still there");
  assert.match(await answers[1].text(), /^interop_/m);
  await Promise.all(answers.slice(2).map((answer) => answer.body?.cancel()));
  assert.equal(await ordinaryStatus(broker), 503, "the cap still holds for everyone else");
});

test("POSTs with Content-Length: 100000 and no body hold their places only until --request-timeout", async (t) => {
  // Long enough for all twenty to be in before the first one's deadline, on a loaded machine too.
  const { broker, attackers } = await setUp(t, ["--max-connections", "20", "--max-requests-per-agent", "20", "--request-timeout", "4s"]);
  for (let i = 0; i < 20; i++) {
    await rawClient(
      broker.url,
      "POST /broadcast?from=hermes&to=openclaw HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n",
      (client) => attackers.push(client),
    );
    // A round trip to the broker on the connection fetch keeps, so that it reads this head before the next connects.
    await status(broker);
  }
  await waitFor(async () => await ordinaryStatus(broker) === 503, 10_000, "the twenty bodies to take every place");

  await waitFor(async () => await ordinaryStatus(broker) === 200, 8000, "the places to be freed by the deadline");
  for (const attacker of attackers) {
    await waitFor(() => attacker.received().startsWith("HTTP/1.1 408 "), 5000, "a 408 for each body that never came");
    assert.match(attacker.received(), /"code":"request_timeout"/);
    await waitFor(() => attacker.closed(), 5000, "the broker to close the connection");
  }
  const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(inbox, [], "nothing of the half-sent bodies was stored");
});
