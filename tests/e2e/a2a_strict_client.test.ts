import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunningBroker, startBroker } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { bearer, createToken } from "../helpers/tokens.ts";
import { cardUrl, sdkClient, taskJson, textMessage } from "../helpers/a2a.ts";
import { rawExchange } from "../helpers/raw_http.ts";
import { fetchStrictCard, strictAsk, StrictClientError, validateCard } from "../helpers/strict_a2a_client.ts";

interface Hub {
  broker: RunningBroker;
  tokens: { alice: string; bob: string };
}

/** A broker with tokens for alice (a Hermes agent whose A2A peer is bob) and bob, serving bob's card at the origin. */
async function startHub(
  t: { after(fn: () => Promise<void> | void): void },
  args = ["--a2a-origin-agent", "bob"],
): Promise<Hub> {
  const dir = tempDir("interop-a2a-strict-");
  t.after(() => dir.cleanup());
  const tokens = { alice: await createToken(dir.path, "alice"), bob: await createToken(dir.path, "bob") };
  const broker = await startBroker({ dataDir: dir.path, args });
  t.after(() => broker.cleanup());
  return { broker, tokens };
}

/** bob takes the next message from his inbox (long poll) and replies to it with `text`. */
async function answerAsBob(hub: Hub, text: string): Promise<Record<string, any>> {
  const waited = await fetch(`${hub.broker.url}/wait?agent=bob&timeout=30`, { headers: bearer(hub.tokens.bob) });
  assert.equal(waited.status, 200);
  const message = await waited.json();
  const replied = await fetch(`${hub.broker.url}/broadcast?from=bob&reply_to=${message.interop.id}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(hub.tokens.bob) },
    body: JSON.stringify({ text }),
  });
  assert.equal(replied.status, 200, await replied.text());
  return message;
}

async function peek(hub: Hub, agent: "alice" | "bob"): Promise<unknown[]> {
  const response = await fetch(`${hub.broker.url}/poll?agent=${agent}&peek=1`, { headers: bearer(hub.tokens[agent]) });
  assert.equal(response.status, 200);
  return await response.json();
}

test("a client as strict as Hermes's (card at the origin, one JSON-RPC 1.0 interface, no streaming, text/plain) asks bob through interop and gets his reply, the message stored once", async (t) => {
  const hub = await startHub(t);
  const peer = { url: `${hub.broker.url}/a2a/bob`, token: hub.tokens.alice };
  const [answer, arrived] = await Promise.all([
    strictAsk(peer, "what is the build status?"),
    answerAsBob(hub, "green"),
  ]);
  assert.deepEqual(answer.texts, ["green"]);
  assert.equal(answer.task.status.state, "TASK_STATE_COMPLETED");
  assert.equal(arrived.text, "what is the build status?");
  assert.equal(arrived.interop.from, "alice", "the sender is the agent of the token");
  assert.equal(arrived.a2a.contextId, answer.task.contextId);
  assert.deepEqual(await peek(hub, "bob"), [], "bob got the message once");
  assert.deepEqual(await peek(hub, "alice"), [], "the reply came in the answer, not again through alice's inbox");

  // The next call in the same conversation (Hermes keeps the contextId) is a new message in the same context.
  const [again] = await Promise.all([
    strictAsk(peer, "and the tests?", answer.task.contextId),
    answerAsBob(hub, "all pass"),
  ]);
  assert.deepEqual(again.texts, ["all pass"]);
  assert.equal(again.task.contextId, answer.task.contextId);
  assert.notEqual(again.task.id, answer.task.id);
});

test("a strict client that gives up on a silent read gets bob's reply that comes after its read timeout (the broker writes a space every 10 s)", async (t) => {
  const hub = await startHub(t);
  const peer = { url: `${hub.broker.url}/a2a/bob`, token: hub.tokens.alice };
  // Hermes's read timeout is 30 s; 12 s keeps the test short and still outlasts the broker's 10 s keepalive.
  const readTimeoutMs = 12_000;
  const [answer] = await Promise.all([
    strictAsk(peer, "a slow question?", undefined, { readTimeoutMs }),
    (async () => {
      const waited = await fetch(`${hub.broker.url}/wait?agent=bob&timeout=30`, { headers: bearer(hub.tokens.bob) });
      const question = await waited.json();
      await new Promise((resolve) => setTimeout(resolve, readTimeoutMs + 1_000));
      const replied = await fetch(`${hub.broker.url}/broadcast?from=bob&reply_to=${question.interop.id}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(hub.tokens.bob) },
        body: JSON.stringify({ text: "slow but sure" }),
      });
      assert.equal(replied.status, 200);
    })(),
  ]);
  assert.deepEqual(answer.texts, ["slow but sure"]);
  assert.deepEqual(await peek(hub, "alice"), [], "the reply came in the answer, not again through alice's inbox");
});

test("the origin card is bob's strict card, public as every card, under the host rule, and sending through it still needs a token", async (t) => {
  const hub = await startHub(t);
  const card = await fetchStrictCard({ url: `${hub.broker.url}/a2a/bob/`, token: undefined });
  assert.equal(card.name, "bob");
  assert.equal(card.supportedInterfaces[0].url, `${hub.broker.url}/a2a/bob`);
  const legacy = await rawExchange(hub.broker.url, "GET", "/.well-known/agent.json", {
    host: `localhost:${hub.broker.port}`,
  });
  assert.equal(legacy.status, 200);
  validateCard(JSON.parse(legacy.body), `http://localhost:${hub.broker.port}/a2a/bob`);
  const foreign = await rawExchange(hub.broker.url, "GET", "/.well-known/agent-card.json", {
    host: "attacker.example",
  });
  assert.equal(foreign.status, 403);
  assert.equal(JSON.parse(foreign.body).code, "unknown_host");

  // A peer configured for another agent refuses bob's card: the origin names one agent, and no other.
  await assert.rejects(
    fetchStrictCard({ url: `${hub.broker.url}/a2a/carol`, token: hub.tokens.alice }),
    /interface does not match configuration/,
  );
  await assert.rejects(strictAsk({ url: `${hub.broker.url}/a2a/bob`, token: undefined }, "hi"), /HTTP 401/);
  await assert.rejects(
    strictAsk({ url: `${hub.broker.url}/a2a/bob`, token: "itk_" + "x".repeat(43) }, "hi"),
    /HTTP 401/,
  );
  assert.deepEqual(await peek(hub, "bob"), [], "nothing was stored");
});

test("each agent's own card stays as it was (streaming, both versions, JSON too), which the strict client refuses and the SDK uses", async (t) => {
  const hub = await startHub(t);
  const card = await (await fetch(cardUrl(hub.broker.url, "bob"))).json();
  assert.equal(card.capabilities.streaming, true);
  assert.deepEqual(card.supportedInterfaces.map((i: { protocolVersion: string }) => i.protocolVersion), ["1.0", "0.3"]);
  assert.deepEqual(card.defaultInputModes, ["text/plain", "application/json"]);
  assert.equal(card.url, `${hub.broker.url}/a2a/bob`);
  assert.throws(() => validateCard(card, `${hub.broker.url}/a2a/bob`), StrictClientError);
  const client = await sdkClient(hub.broker.url, "bob", hub.tokens.alice);
  assert.equal(taskJson(await client.sendMessage(textMessage("hi"))).status.state, "TASK_STATE_SUBMITTED");
});

test("without --a2a-origin-agent the origin has no card, and the strict client says so", async (t) => {
  const hub = await startHub(t, []);
  const response = await fetch(`${hub.broker.url}/.well-known/agent-card.json`);
  assert.equal(response.status, 404);
  assert.match((await response.json()).error, /--a2a-origin-agent NAME/);
  await assert.rejects(
    strictAsk({ url: `${hub.broker.url}/a2a/bob`, token: hub.tokens.alice }, "hi"),
    /card request failed \(HTTP 404\)/,
  );
});

test("interop serve starts with an --a2a-origin-agent that has no inbox (a typo, or removed since) and says so; an invalid name: one line, exit 2", async (t) => {
  const dir = tempDir("interop-a2a-strict-");
  t.after(() => dir.cleanup());
  {
    await using first = await startBroker({ dataDir: dir.path, args: ["--a2a-origin-agent", "nobody"] });
    assert.match(first.log(), /--a2a-origin-agent nobody has no inbox: .*interop agent add nobody/);
    assert.equal((await fetch(`${first.url}/.well-known/agent-card.json`).then((r) => r.json())).name, "nobody");
  }
  // Removed while the broker runs: the next start (a restart, a reboot) still serves.
  {
    await using broker = await startBroker({ dataDir: dir.path, args: ["--agents", "bob", "--a2a-origin-agent", "bob"] });
    assert.doesNotMatch(broker.log(), /has no inbox/);
    const removed = await runCli(["agent", "remove", "bob", "--url", broker.url]);
    assert.equal(removed.code, 0, removed.stderr);
  }
  {
    await using again = await startBroker({ dataDir: dir.path, args: ["--a2a-origin-agent", "bob"] });
    assert.match(again.log(), /--a2a-origin-agent bob has no inbox/);
  }
  const invalid = await runCli(["serve", "--port", "0", "--data-dir", dir.path, "--a2a-origin-agent", "a/b"]);
  assert.equal(invalid.code, 2, invalid.stderr);
  assert.match(invalid.stderr, /^error: Invalid agent name in --a2a-origin-agent: "a\/b"/);
  assert.equal(invalid.stderr.trim().split("\n").length, 1, invalid.stderr);
});

// Red team, session 52: behind a TLS proxy the cards said http:// and the proxy's way in (nginx's default passes
// Host 127.0.0.1:18900), so a remote client that followed one sent its Bearer token in the clear, or to itself.
test("serve --public-url is the base of every card's endpoint; an invalid one: one line, exit 2", async (t) => {
  const hub = await startHub(t, ["--a2a-origin-agent", "bob", "--public-url", "https://interop.example.com/"]);
  const agentCard = await (await fetch(`${hub.broker.url}/a2a/alice/.well-known/agent-card.json`)).json();
  assert.equal(agentCard.url, "https://interop.example.com/a2a/alice");
  assert.deepEqual([...new Set(agentCard.supportedInterfaces.map((face: { url: string }) => face.url))], ["https://interop.example.com/a2a/alice"]);
  const origin = await (await fetch(`${hub.broker.url}/.well-known/agent-card.json`)).json();
  assert.deepEqual(origin.supportedInterfaces.map((face: { url: string }) => face.url), ["https://interop.example.com/a2a/bob"]);
  // Without it, the request's Host over http, as before.
  const plain = await startHub(t, []);
  const card = await (await fetch(`${plain.broker.url}/a2a/alice/.well-known/agent-card.json`)).json();
  assert.equal(card.url, `${plain.broker.url}/a2a/alice`);

  const dir = tempDir("interop-a2a-strict-");
  t.after(() => dir.cleanup());
  for (const value of ["interop.example.com", "ftp://x", "https://u:p@x", "https://x/?a=1", "https://x/?", "https://x/#"]) {
    const invalid = await runCli(["serve", "--port", "0", "--data-dir", dir.path, "--public-url", value]);
    assert.equal(invalid.code, 2, invalid.stderr);
    assert.match(invalid.stderr, /^error: Invalid --public-url .*: give the http:\/\/ or https:\/\/ URL clients reach the broker by/);
    assert.equal(invalid.stderr.trim().split("\n").length, 1, invalid.stderr);
  }
});
