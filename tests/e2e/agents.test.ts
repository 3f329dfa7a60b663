/** Which agents exist: a send never creates an inbox (a typo must not), an agent that connects does, the operator manages them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

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
  const stop = testStops(t);
  const broker = await startBroker({ args: ["--agents", ""] });
  stop(() => broker.cleanup());
  assert.equal((await publish(broker.url, "leo", "hermes", { text: "too early" })).status, 404);
  const hermes = await openSse(`${broker.url}/subscribe?agent=hermes`);
  stop(() => hermes.close());
  const broadcast = await (await publish(broker.url, "leo", undefined, { message: "hi hermes" })).json();
  assert.deepEqual(broadcast.to, ["hermes"]);
  const [event] = await hermes.take(1);
  assert.equal(JSON.parse(event.data).message, "hi hermes");
  for (const read of ["/poll?agent=leo", "/ntfy/cron/json?poll=1"]) assert.equal((await fetch(`${broker.url}${read}`)).status, 200, read);
  // An asker waits on its own inbox for the reply, so it is known too.
  const ask = await fetch(`${broker.url}/ask?from=asker&to=hermes&timeout=0.1`, { method: "POST", body: '{"text":"?"}' });
  assert.equal(ask.status, 504);
  assert.deepEqual(await knownAgents(broker.url), ["asker", "cron", "hermes", "leo"]);
  assert.equal((await publish(broker.url, "hermes", "cron", { text: "now known" })).status, 200);
});

test("interop agent add, list and remove: remove refuses pending messages unless forced, and the name is unknown again for good", async (t) => {
  const stop = testStops(t);
  const dataDir = tempDir();
  stop(dataDir.cleanup);
  let broker = await startBroker({ dataDir: dataDir.path });
  stop(() => broker.cleanup());
  const agent = (...args: string[]) => runCli(["agent", ...args, "--url", broker.url]);

  const added = await agent("add", "leo");
  assert.deepEqual([added.code, added.stdout], [0, "added leo\n"], added.stderr);
  assert.equal((await agent("add", "leo")).stdout, "already known: leo\n");
  for (const n of [1, 2]) assert.equal((await publish(broker.url, "hermes", "leo", { n })).status, 200);
  const listed = await agent("list", "--json");
  assert.equal(listed.code, 0, listed.stderr);
  const leo = JSON.parse(listed.stdout).find((entry: { agent: string }) => entry.agent === "leo");
  assert.deepEqual(leo, { agent: "leo", pending: 2, last_seen: null, stream: false, online: false, dead_letters: 0 });
  assert.match((await agent("list")).stdout, /^AGENT +PENDING +LAST SEEN +STREAM\n(.*\n)*leo +2 +never +-\n/);
  // Seen (a peek takes nothing): the table says how long ago, as `interop status` does; --json keeps the time.
  assert.equal((await fetch(`${broker.url}/poll?agent=leo&peek=1`)).status, 200);
  assert.match((await agent("list")).stdout, /\nleo +2 +\d+ s ago +-\n/);
  assert.match(JSON.parse((await agent("list", "--json")).stdout).find((entry: { agent: string }) => entry.agent === "leo").last_seen, /^\d{4}-\d\d-\d\dT/);

  const refused = await agent("remove", "leo");
  assert.equal(refused.code, 4);
  assert.match(refused.stderr, /^error: Broker refused \(HTTP 409\): Not removed: leo has 2 pending messages; pass --force/);
  assert.equal((await publish(broker.url, "hermes", "leo", { n: 3 })).status, 200, "a refused remove changes nothing");
  const forced = await agent("remove", "leo", "--force");
  assert.deepEqual([forced.code, forced.stdout], [0, "removed leo (3 messages deleted)\n"], forced.stderr);
  assert.equal((await publish(broker.url, "hermes", "leo", { n: 4 })).status, 404);
  const again = await agent("remove", "leo");
  assert.equal(again.code, 4);
  assert.match(again.stderr, /Unknown agent: leo has no inbox/);

  // Gone for good: not back after a restart, and a new inbox of that name starts empty.
  await broker.stop();
  broker = await startBroker({ dataDir: dataDir.path });
  assert.deepEqual(await knownAgents(broker.url), ["hermes", "openclaw"]);
  assert.equal((await agent("add", "leo")).code, 0);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=leo`)).json(), []);
});

test("interop agent remove refuses while a stream is open, and --force ends that stream", async (t) => {
  const stop = testStops(t);
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const stream = await openSse(`${broker.url}/subscribe?agent=hermes`);
  stop(() => stream.close());
  const refused = await runCli(["agent", "remove", "hermes", "--url", broker.url]);
  assert.equal(refused.code, 4);
  assert.match(refused.stderr, /Not removed: hermes has a stream open/);
  const forced = await runCli(["agent", "remove", "hermes", "--force", "--json", "--url", broker.url]);
  assert.deepEqual(JSON.parse(forced.stdout), { agent: "hermes", removed: true, deleted: 0 });
  await stream.ended;
  assert.match(stream.raw(), /event: error\ndata: .*hermes was removed by the operator/);
});

// Red team, session 44: a removed agent's /wait and /ask went on waiting out their timeout (204, 504).
test("interop agent remove --force ends the agent's waits, leased wait and ask at once with 410 agent_removed", async (t) => {
  const stop = testStops(t);
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const open = (path: string, init: RequestInit = {}) => {
    const controller = new AbortController();
    stop(() => controller.abort());
    return fetch(`${broker.url}${path}`, { ...init, signal: controller.signal });
  };
  const waits = [
    open("/wait?agent=hermes&timeout=30"),
    open("/wait?agent=hermes&peek=1&lease=30&timeout=30"),
    open("/ask?from=hermes&to=openclaw&timeout=30", { method: "POST", headers: { "content-type": "application/json" }, body: '{"text":"ready?"}' }),
  ];
  const waiting = async () => (await (await fetch(`${broker.url}/status`)).json()).agents.hermes?.waiting ?? 0;
  await waitFor(async () => await waiting() === 3, 10_000, "the three waits");
  const forced = await runCli(["agent", "remove", "hermes", "--force", "--url", broker.url]);
  assert.equal(forced.code, 0, forced.stderr);
  const started = Date.now();
  for (const [i, ended] of (await Promise.all(waits)).entries()) {
    const body = await ended.json();
    assert.deepEqual([ended.status, body.code], [410, "agent_removed"]);
    // Red team, session 47: the ask's said only that the inbox "is not created again", not that its question went.
    if (i === 2) assert.match(body.error, /^hermes was removed by the operator while its ask waited: message \d+ went to openclaw, and a reply/);
    // These waits were the clients' first reads: the store lets their next read say it had the inbox there.
    assert.match(ended.headers.get("interop-store") ?? "", /^[0-9a-f-]{36}$/);
  }
  assert.ok(Date.now() - started < 5000, "at once, not at their timeout");
});

test("with tokens, managing agents needs the admin token", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const admin = await createToken(broker.dataDir, "ops", { admin: true });
  const hermes = await createToken(broker.dataDir, "hermes");
  // Tokens made while the broker runs take effect within a second (it re-reads them at most that often).
  await waitFor(async () => (await fetch(`${broker.url}/agents`)).status === 401, 5000, "tokens to take effect");
  const asAgent = await runCli(["agent", "list", "--url", broker.url], { env: { INTEROP_TOKEN: hermes } });
  assert.equal(asAgent.code, 4);
  assert.match(asAgent.stderr, /HTTP 403\): Forbidden: GET \/agents needs an admin token/);
  const added = await runCli(["agent", "add", "cron", "--url", broker.url], { env: { INTEROP_TOKEN: admin } });
  assert.equal(added.code, 0, added.stderr);
  assert.equal((await publish(broker.url, "hermes", "cron", { text: "tick" }, bearer(hermes))).status, 200);
  const unknown = await publish(broker.url, "hermes", "nobody", { text: "x" }, bearer(hermes));
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).error, /with tokens, inboxes exist for serve --agents, agents with a token/);
});

test("POST /agents is held to --max-agents as a reader is: 507 too_many_agents past the cap", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes", "--max-agents", "2"] });
  t.after(() => broker.cleanup());
  const add = (agent: string) => fetch(`${broker.url}/agents?agent=${agent}`, { method: "POST" });
  assert.equal((await add("cron")).status, 201);
  const refused = await add("typo");
  assert.equal(refused.status, 507);
  assert.equal((await refused.json()).code, "too_many_agents");
  assert.equal((await add("cron")).status, 200, "an agent that exists is not refused");
  const reader = await fetch(`${broker.url}/poll?agent=leo`);
  assert.equal(reader.status, 507);
  assert.equal((await reader.json()).code, "too_many_agents");
  assert.deepEqual(await knownAgents(broker.url), ["cron", "hermes"]);
});
