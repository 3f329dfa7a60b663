/**
 * One agent asking for many big answers and reading none of them (red26b's F3: 100 unread 16 Mi-character peeks
 * held ~860 MiB and kept /status waiting 135 s): past what its answers may hold it is refused at once, with 429,
 * while another agent's requests and /status are answered; what it held is given back once its clients leave.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";

/** JSON escapes U+0001 to six characters: one such message is a whole answer (the 16 Mi-character budget). */
const BIG = "\u0001".repeat(2_800_000);
const HOGS = 8;

/** A client that sends `path` and, once the answer's first bytes are in, reads no more of it. */
interface Hog {
  socket: Socket;
  /** The first bytes of the answer, once they came. */
  head(): string;
}

function hog(broker: RunningBroker, path: string, hogs: Hog[]): Hog {
  const socket = connect({ port: broker.port, host: "127.0.0.1" });
  let head = "";
  socket.on("error", () => {}).once("data", (chunk: Buffer) => {
    head = chunk.toString("latin1");
    socket.pause();
  });
  // Connection: close, so that the connection is not cut as an idle kept-alive one but at --request-timeout.
  socket.once("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
  const client = { socket, head: () => head };
  hogs.push(client);
  return client;
}

test("an agent's unread big answers are bounded: its excess gets 429 at once, others and /status are answered", { timeout: 180_000 }, async (t) => {
  const hogs: Hog[] = [];
  let broker: RunningBroker | undefined;
  t.after(async () => {
    for (const client of hogs) client.socket.destroy();
    await broker?.cleanup();
  });
  // Deadlines past the test's length: the hogs keep what they were answered, unread, until they leave.
  const deadlines = ["--request-timeout", "10m", "--write-timeout", "10m"];
  broker = await startBroker({ args: ["--agents", "alice,bob", "--max-body-bytes", "4MiB", ...deadlines] });
  for (let sent = 0; sent < 2; sent++) {
    const response: Response = await fetch(`${broker.url}/broadcast?from=alice&to=alice`, { method: "POST", body: BIG, headers: { "content-type": "text/plain" } });
    assert.equal(response.status, 200, await response.text());
  }

  for (let index = 0; index < HOGS; index++) hog(broker, "/poll?agent=alice&peek=1", hogs);
  await waitFor(() => hogs.every((client) => client.head() !== ""), 120_000, "every hog's answer to start");
  const statuses = hogs.map((client) => client.head().slice(0, 12));
  const refused = hogs.filter((client) => client.head().startsWith("HTTP/1.1 429 "));
  // An agent's answers hold at most four full ones (DEFAULT_AGENT_ANSWER_MEMORY): no more are admitted, on Deno as
  // on Node, as long as their clients read none of them (an answer taken as written too early would let in more).
  const admitted = HOGS - refused.length;
  assert.ok(admitted >= 1, `all refused: ${statuses.join(", ")}`);
  assert.ok(admitted <= 4, `${admitted} admitted, past the agent's four full answers: ${statuses.join(", ")}`);
  for (const client of refused) {
    assert.match(client.head(), /\r\nretry-after: 1\r\n/);
    assert.match(client.head(), /"code":"too_many_requests"/);
  }
  assert.ok(hogs.every((client) => /^HTTP\/1\.1 (200|429) /.test(client.head())), statuses.join(", "));

  // While the hogs hold their answers unread: another agent, the operator, and the hog's next ask (refused at once).
  const bob = await fetch(`${broker.url}/poll?agent=bob`);
  assert.equal(bob.status, 200);
  assert.deepEqual(await bob.json(), []);
  assert.equal((await fetch(`${broker.url}/status`)).status, 200);
  const again = await fetch(`${broker.url}/history?agent=alice`);
  assert.equal(again.status, 429);
  assert.equal((await again.json()).code, "too_many_requests");
  assert.equal((await (await fetch(`${broker.url}/status`)).json()).agents.alice.pending, 2, "a peek takes nothing");

  // The hogs leave: what their answers held is given back, and alice reads her inbox whole.
  for (const client of hogs) client.socket.destroy();
  let answer: Response | undefined;
  await waitFor(async () => {
    answer = await fetch(`${broker!.url}/poll?agent=alice`);
    if (answer.status === 200) return true;
    await answer.body?.cancel();
    return false;
  }, 30_000, "alice's poll to be answered once the hogs left");
  const taken = await answer!.json();
  assert.equal(taken.length, 1, "one message fills an answer");
  assert.equal(taken[0].text, BIG);
});
