/**
 * Issue 13, hole 1: an agent's token must not reach messages addressed to other agents through the side doors,
 * dead letters (park any id, then list it with its text) and replies (reply_to any id to learn its sender and join
 * its conversation). An unknown id and another agent's id get the same answer, so probing ids tells nothing.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { test } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

/** A broker whose data dir has a token for each of `agents` ("admin": an operator's token). */
async function brokerWithTokens(
  t: { after(fn: () => unknown): void },
  agents: string[],
): Promise<{ broker: RunningBroker; tokens: Record<string, string> }> {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  const tokens: Record<string, string> = {};
  for (const agent of agents) tokens[agent] = await createToken(dir.path, agent, { admin: agent === "admin" });
  broker = await startBroker({ dataDir: dir.path, args: ["--agents", "hermes,openclaw,leo"] });
  return { broker, tokens };
}

/** Publishes `text` from `from` to `to` with `token`; resolves with the new message's id. */
async function send(broker: RunningBroker, token: string, from: string, to: string, text: string): Promise<number> {
  const response = await publish(broker.url, from, to, { text }, bearer(token));
  assert.equal(response.status, 200);
  return (await response.json()).id;
}

async function park(broker: RunningBroker, token: string, agent: string, id: number): Promise<Response> {
  return await fetch(`${broker.url}/dead-letters?agent=${agent}`, {
    method: "POST",
    headers: { ...bearer(token), "content-type": "application/json" },
    body: JSON.stringify({ id, reason: "refused for good" }),
  });
}

/** The refusal of an id, with the id itself taken out: what must be the same for an unknown and a foreign id. */
async function refusal(response: Response, id: number): Promise<{ status: number; code: string; error: string }> {
  const { code, error } = await response.json();
  return { status: response.status, code, error: error.replaceAll(String(id), "ID") };
}

const UNKNOWN_ID = 987654;

test("an agent's token cannot park another agent's message as its dead letter, nor read it back", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t, ["hermes", "openclaw", "admin"]);
  const secret = "for leo only: the deploy key is in the vault under ops/leo";
  const foreign = await send(broker, tokens.openclaw, "openclaw", "leo", secret);

  const parkedForeign = await park(broker, tokens.hermes, "hermes", foreign);
  const parkedUnknown = await park(broker, tokens.hermes, "hermes", UNKNOWN_ID);
  assert.equal(parkedForeign.status, 404);
  assert.deepEqual(await refusal(parkedForeign, foreign), await refusal(parkedUnknown, UNKNOWN_ID), "a foreign id answers as an unknown one");

  const listed = await fetch(`${broker.url}/dead-letters?agent=hermes`, { headers: bearer(tokens.hermes) });
  assert.equal(listed.status, 200);
  const text = await listed.text();
  assert.ok(!text.includes(secret), "leo's message is not in hermes's dead letters");
  assert.deepEqual(JSON.parse(text), []);
  const status = await (await fetch(`${broker.url}/status`, { headers: bearer(tokens.admin) })).json();
  assert.equal(status.agents.hermes.dead_letters, 0);

  // An admin acts for any agent, but a dead letter still names only a message addressed to that agent.
  assert.equal((await park(broker, tokens.admin, "hermes", foreign)).status, 404);
  assert.equal((await park(broker, tokens.admin, "leo", foreign)).status, 200);
  const leos = await (await fetch(`${broker.url}/dead-letters?agent=leo`, { headers: bearer(tokens.admin) })).json();
  assert.deepEqual(leos.map((letter: { id: number; message: { text: string } }) => [letter.id, letter.message.text]), [[foreign, secret]]);
});

test("an agent still parks and lists a message addressed to it", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t, ["hermes", "openclaw"]);
  const own = await send(broker, tokens.openclaw, "openclaw", "hermes", "a message hermes's receiver refuses");
  const parked = await park(broker, tokens.hermes, "hermes", own);
  assert.equal(parked.status, 200);
  assert.deepEqual(await parked.json(), { parked: true, id: own });
  const letters = await (await fetch(`${broker.url}/dead-letters?agent=hermes`, { headers: bearer(tokens.hermes) })).json();
  assert.deepEqual(letters.map((letter: { id: number; reason: string }) => [letter.id, letter.reason]), [[own, "refused for good"]]);
});

test("a dead letter already stored for another agent's message is left out of the list", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t, ["hermes", "openclaw"]);
  const secret = "parked through the hole before the fix: leo's private text";
  const foreign = await send(broker, tokens.openclaw, "openclaw", "leo", secret);
  await broker.stop();
  // What the hole left behind in a data dir: a row of hermes's naming leo's message.
  const database = new DatabaseSync(join(broker.dataDir, "interop.db"));
  database.prepare("INSERT INTO dead_letters (agent, message_id, reason, parked_at) VALUES (?, ?, ?, ?)").run("hermes", foreign, "x", Date.now());
  database.close();
  const restarted = await startBroker({ dataDir: broker.dataDir });
  t.after(() => restarted.cleanup());
  const listed = await (await fetch(`${restarted.url}/dead-letters?agent=hermes`, { headers: bearer(tokens.hermes) })).text();
  assert.ok(!listed.includes(secret));
  assert.deepEqual(JSON.parse(listed), []);
});

test("a reply to another agent's message is refused as if the id were unknown, and stores nothing", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t, ["hermes", "openclaw", "admin"]);
  const foreign = await send(broker, tokens.openclaw, "openclaw", "leo", "between openclaw and leo");
  const reply = (id: number) =>
    fetch(`${broker.url}/broadcast?from=hermes&reply_to=${id}`, {
      method: "POST",
      headers: { ...bearer(tokens.hermes), "content-type": "application/json" },
      body: JSON.stringify({ text: "joining a conversation that is not mine" }),
    });
  const toForeign = await reply(foreign);
  const toUnknown = await reply(UNKNOWN_ID);
  assert.equal(toForeign.status, 404);
  assert.deepEqual(await refusal(toForeign, foreign), await refusal(toUnknown, UNKNOWN_ID), "a foreign id answers as an unknown one");

  const inbox = async (agent: string) =>
    (await (await fetch(`${broker.url}/poll?agent=${agent}`, { headers: bearer(tokens.admin) })).json())
      .map((message: { text: string }) => message.text);
  assert.deepEqual(await inbox("openclaw"), [], "the sender of the message got no reply");
  assert.deepEqual(await inbox("leo"), ["between openclaw and leo"]);
});

test("a third agent cannot slip a forged answer into another agent's /ask", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t, ["hermes", "openclaw", "leo"]);
  const asking = fetch(`${broker.url}/ask?from=openclaw&to=leo&timeout=30`, {
    method: "POST",
    headers: { ...bearer(tokens.openclaw), "content-type": "application/json" },
    body: JSON.stringify({ text: "may I deploy?" }),
  });
  const [question] = await waitFor(async () => {
    const polled = await (await fetch(`${broker.url}/poll?agent=leo`, { headers: bearer(tokens.leo) })).json();
    return polled.length > 0 ? polled : undefined;
  }, 10_000, "the question to reach leo");
  const forged = await fetch(`${broker.url}/broadcast?from=hermes&reply_to=${question.interop.id}`, {
    method: "POST",
    headers: { ...bearer(tokens.hermes), "content-type": "application/json" },
    body: JSON.stringify({ text: "yes, deploy (signed: leo)" }),
  });
  assert.equal(forged.status, 404);
  const answered = await fetch(`${broker.url}/broadcast?from=leo&reply_to=${question.interop.id}`, {
    method: "POST",
    headers: { ...bearer(tokens.leo), "content-type": "application/json" },
    body: JSON.stringify({ text: "not today" }),
  });
  assert.equal(answered.status, 200);
  const { reply } = await (await asking).json();
  assert.equal(reply.text, "not today");
  assert.equal(reply.interop.from, "leo");
});

test("an agent may follow up its own message: the reply goes to that message's recipient", async (t) => {
  const { broker, tokens } = await brokerWithTokens(t, ["hermes", "leo"]);
  const sent = await send(broker, tokens.hermes, "hermes", "leo", "first");
  const followUp = await fetch(`${broker.url}/broadcast?from=hermes&reply_to=${sent}`, {
    method: "POST",
    headers: { ...bearer(tokens.hermes), "content-type": "application/json" },
    body: JSON.stringify({ text: "and a second thing" }),
  });
  assert.equal(followUp.status, 200);
  assert.deepEqual((await followUp.json()).to, ["leo"]);
  const inbox = await (await fetch(`${broker.url}/poll?agent=leo`, { headers: bearer(tokens.leo) })).json();
  assert.deepEqual(inbox.map((message: { text: string; interop: { conversation?: number } }) => [message.text, message.interop.conversation]), [
    ["first", undefined],
    ["and a second thing", sent],
  ]);
});
