/** Which agents exist: a send never creates an inbox (a typo must not), an agent that connects does. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, startBroker } from "../helpers/broker.ts";
import { runCli } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";

async function knownAgents(url: string): Promise<string[]> {
  return Object.keys((await (await fetch(`${url}/status`)).json()).queues).sort();
}

test("interop send to a misspelt agent fails naming the known agents, and creates no inbox for later broadcasts", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const typo = await runCli(["send", "--url", broker.url, "--from", "openclaw", "--to", "herems", "hello"]);
  assert.equal(typo.code, 4, typo.stderr);
  assert.match(typo.stderr, /^error: Broker refused \(HTTP 404\): Unknown agent: herems has no inbox \(the known agents are hermes, openclaw\); create it with 'interop agent add herems'/);
  assert.equal(typo.stderr.trim().split("\n").length, 1, "one line");
  assert.deepEqual(await knownAgents(broker.url), ["hermes", "openclaw"]);
  const broadcast = await (await publish(broker.url, "openclaw", undefined, { text: "to everyone" })).json();
  assert.deepEqual(broadcast.to, ["hermes"], "the broadcast reaches only the agents that exist");
});

test("every way of sending to an unknown agent answers 404 unknown_agent and stores nothing", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const refusals: Array<[string, Response]> = [
    ["POST /broadcast", await publish(broker.url, "hermes", "nobody", { text: "x" })],
    ["POST /broadcast batch", await fetch(`${broker.url}/broadcast?from=hermes&to=nobody`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: '{"n":1}\n{"n":2}\n',
    })],
    ["POST /ask", await fetch(`${broker.url}/ask?from=hermes&to=nobody&timeout=1`, { method: "POST", body: '{"text":"?"}' })],
    ["POST /ntfy/TOPIC", await fetch(`${broker.url}/ntfy/alerts`, { method: "POST", body: "disk full" })],
    ["POST /ntfy", await fetch(`${broker.url}/ntfy`, { method: "POST", body: JSON.stringify({ topic: "alerts", message: "disk full" }) })],
  ];
  // A reply goes back to the sender of the message it answers: "ntfy" (the default ntfy sender) has no inbox.
  const fromNtfy = await (await fetch(`${broker.url}/ntfy/hermes`, { method: "POST", body: "from a phone" })).json();
  const reply = await fetch(`${broker.url}/broadcast?from=hermes&reply_to=${fromNtfy.id.split("-")[0]}`, { method: "POST", body: '{"text":"re"}' });
  refusals.push(["POST /broadcast?reply_to", reply]);
  for (const [what, response] of refusals) {
    assert.equal(response.status, 404, what);
    const body = await response.json();
    assert.equal(body.code, "unknown_agent", what);
    assert.match(body.error, /the known agents are hermes, openclaw/, what);
  }
  assert.deepEqual(await knownAgents(broker.url), ["hermes", "openclaw"]);
});

test("an agent that connects to read is known from then on, as the old bridge's clients announced themselves", async (t) => {
  const broker = await startBroker({ args: ["--agents", ""] });
  t.after(() => broker.cleanup());
  assert.equal((await publish(broker.url, "leo", "hermes", { text: "too early" })).status, 404);
  const hermes = await openSse(`${broker.url}/subscribe?agent=hermes`);
  t.after(() => hermes.close());
  const broadcast = await (await publish(broker.url, "leo", undefined, { message: "hi hermes" })).json();
  assert.deepEqual(broadcast.to, ["hermes"]);
  const [event] = await hermes.take(1);
  assert.equal(JSON.parse(event.data).message, "hi hermes");
  for (const read of ["/poll?agent=leo", "/ntfy/cron/json?poll=1"]) assert.equal((await fetch(`${broker.url}${read}`)).status, 200, read);
  assert.deepEqual(await knownAgents(broker.url), ["cron", "hermes", "leo"]);
  assert.equal((await publish(broker.url, "hermes", "cron", { text: "now known" })).status, 200);
});
