/** Hermes Agent's `a2a_call` tool (its A2A plugin's outbound client) through interop's hub to bob, with its faults. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunningBroker, startBroker } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";
import { inboxOf, replyAs } from "../helpers/a2a.ts";
import { hermesCall } from "../helpers/hermes_a2a_call.ts";

interface Hub {
  broker: RunningBroker;
  tokens: { hermes: string; bob: string };
}

/**
 * A broker with tokens for hermes (who calls bob with a2a_call) and bob. A call waits 30 s at most, so that one
 * waiting for a reply that is not coming fails the test rather than hanging it for the default 5 minutes.
 */
async function startHub(t: { after(fn: () => Promise<void> | void): void }): Promise<Hub> {
  const dir = tempDir("interop-a2a-hermes-");
  t.after(() => dir.cleanup());
  const tokens = { hermes: await createToken(dir.path, "hermes"), bob: await createToken(dir.path, "bob") };
  const broker = await startBroker({ dataDir: dir.path, args: ["--a2a-wait", "30s"] });
  t.after(() => broker.cleanup());
  return { broker, tokens };
}

const inbox = (hub: Hub, agent: "hermes" | "bob", peek: boolean) => inboxOf(hub.broker.url, agent, hub.tokens[agent], peek);

/** bob takes the next message from his inbox (long poll). */
async function takeAsBob(hub: Hub): Promise<Record<string, any>> {
  const waited = await fetch(`${hub.broker.url}/wait?agent=bob&timeout=30`, { headers: bearer(hub.tokens.bob) });
  assert.equal(waited.status, 200);
  return await waited.json();
}

test("Hermes's a2a_call streams its question to bob through interop and returns bob's reply; the question is stored once, as Hermes wrote it", async (t) => {
  const hub = await startHub(t);
  const call = hermesCall({ url: `${hub.broker.url}/a2a/bob`, token: hub.tokens.hermes }, "is the build green?");
  const question = await takeAsBob(hub);
  assert.equal(question.text, "is the build green?");
  assert.equal(question.interop.from, "hermes", "the sender is the agent of the token");
  assert.deepEqual(question.a2a.parts, [{ text: "is the build green?", mediaType: "text/plain" }]);
  await replyAs(hub.broker.url, "bob", hub.tokens.bob, question.interop.id, "green");
  const answer = await call;
  assert.deepEqual(answer, { text: "green", contextId: question.a2a.contextId, state: "TASK_STATE_COMPLETED", resent: false });
  assert.deepEqual(await inbox(hub, "hermes", true), [], "the stream carried the reply: not in hermes's inbox as well");
});

test("a2a_call whose stream breaks sends the same message again as a blocking SendMessage: bob gets it once, and his later reply answers that call, not hermes's inbox", async (t) => {
  const hub = await startHub(t);
  let resent!: () => void;
  const resending = new Promise<void>((resolve) => (resent = resolve));
  const call = hermesCall({ url: `${hub.broker.url}/a2a/bob`, token: hub.tokens.hermes }, "deploy?", {
    breakStreamAfter: 1,
    onResend: resent,
  });
  await resending;
  const question = await takeAsBob(hub);
  assert.equal(question.text, "deploy?");
  await replyAs(hub.broker.url, "bob", hub.tokens.bob, question.interop.id, "deployed");
  const answer = await call;
  assert.deepEqual(answer, { text: "deployed", contextId: question.a2a.contextId, state: "TASK_STATE_COMPLETED", resent: true });
  assert.deepEqual(await inbox(hub, "bob", true), [], "the message sent again was not stored again");
  assert.deepEqual(await inbox(hub, "hermes", true), [], "the call carried the reply: not in hermes's inbox as well");
});
