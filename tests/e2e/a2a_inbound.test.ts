import assert from "node:assert/strict";
import { test } from "node:test";
import { LegacyJsonRpcTransport } from "@a2a-js/sdk/compat/v0_3/client";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { tempDir } from "../helpers/cli.ts";
import { bearer, createToken, revokeTokens } from "../helpers/tokens.ts";
import {
  cardUrl,
  fetchWithToken,
  inboxOf,
  replyAs,
  rpc,
  sdkClient,
  taskJson,
  taskStateToJSON,
  textMessage,
} from "../helpers/a2a.ts";
import { rawExchange } from "../helpers/raw_http.ts";
import { ListTasksRequest } from "@a2a-js/sdk";

interface Hub {
  broker: RunningBroker;
  tokens: { alice: string; bob: string; carol: string };
}

/** A broker with tokens for alice (who calls over A2A), bob (whose endpoint she calls) and carol (an outsider). */
async function startHub(t: { after(fn: () => Promise<void> | void): void }, dataDir?: string): Promise<Hub> {
  const dir = dataDir === undefined ? tempDir("interop-a2a-") : undefined;
  t.after(() => dir?.cleanup());
  const path = dataDir ?? dir!.path;
  const tokens = {
    alice: await createToken(path, "alice"),
    bob: await createToken(path, "bob"),
    carol: await createToken(path, "carol"),
  };
  const broker = await startBroker({ dataDir: path });
  t.after(() => broker.cleanup());
  return { broker, tokens };
}

const pollInbox = (hub: Hub, agent: "alice" | "bob", peek = false) => inboxOf(hub.broker.url, agent, hub.tokens[agent], peek);

const replyAsBob = (hub: Hub, messageId: number, text: string) => replyAs(hub.broker.url, "bob", hub.tokens.bob, messageId, text);

test("the official A2A client sends into bob's inbox, and the task follows the message from SUBMITTED through WORKING to COMPLETED with bob's reply", async (t) => {
  const hub = await startHub(t);
  const client = await sdkClient(hub.broker.url, "bob", hub.tokens.alice);
  const messageId = crypto.randomUUID();
  const sent = taskJson(await client.sendMessage(textMessage("what is the build status?", messageId)));
  assert.equal(sent.status.state, "TASK_STATE_SUBMITTED");
  assert.match(sent.contextId, /^ctx-/);

  const [arrived] = await pollInbox(hub, "bob");
  assert.equal(arrived.text, "what is the build status?");
  assert.equal(arrived.interop.from, "alice", "the sender is the agent of the token");
  assert.deepEqual(arrived.a2a, { messageId, contextId: sent.contextId, parts: [{ text: "what is the build status?" }] });
  assert.equal(taskJson(await client.getTask({ id: sent.id } as never)).status.state, "TASK_STATE_WORKING");

  await replyAsBob(hub, arrived.interop.id, "green");
  const done = taskJson(await client.getTask({ id: sent.id } as never));
  assert.equal(done.status.state, "TASK_STATE_COMPLETED");
  assert.equal(done.status.message?.parts[0].text, "green");
  assert.equal(done.artifacts?.[0].parts[0].text, "green");

  // A retry with the same messageId (a client that lost the answer) gets the same task and stores nothing new.
  const retried = taskJson(await client.sendMessage(textMessage("what is the build status?", messageId)));
  assert.equal(retried.id, sent.id);
  assert.equal(retried.status.state, "TASK_STATE_COMPLETED");
  assert.deepEqual(await pollInbox(hub, "bob", true), []);
  const listed = await client.listTasks(ListTasksRequest.fromJSON({ contextId: sent.contextId }));
  assert.deepEqual(listed.tasks.map((task) => task.id), [sent.id]);
});

test("the card is public, names the URL of the Host it was asked under, and a foreign Host gets 403", async (t) => {
  const hub = await startHub(t);
  const card = await (await fetch(cardUrl(hub.broker.url, "bob"))).json();
  assert.equal(card.url, `${hub.broker.url}/a2a/bob`);
  assert.deepEqual(card.supportedInterfaces.map((i: { protocolVersion: string }) => i.protocolVersion), ["1.0", "0.3"]);
  assert.equal(card.capabilities.streaming, true);
  assert.equal(card.capabilities.pushNotifications, false);
  assert.equal(card.securitySchemes.bearer.httpAuthSecurityScheme.scheme, "Bearer");
  const legacy = await rawExchange(hub.broker.url, "GET", "/a2a/bob/.well-known/agent.json", { host: `localhost:${hub.broker.port}` });
  assert.equal(JSON.parse(legacy.body).url, `http://localhost:${hub.broker.port}/a2a/bob`);
  const foreign = await rawExchange(hub.broker.url, "GET", "/a2a/bob/.well-known/agent-card.json", { host: "attacker.example" });
  assert.equal(foreign.status, 403);
  assert.equal(JSON.parse(foreign.body).code, "unknown_host");
});

test("a card asked for at the origin, where a one-agent A2A client looks, is a 404 without a token that names each agent's card path", async (t) => {
  const hub = await startHub(t);
  // What Hermes's SDK-based A2A client does with a peer URL: its card resolver drops the path and asks the origin, without a token.
  for (const path of ["/.well-known/agent-card.json", "/.well-known/agent.json"]) {
    const response = await fetch(`${hub.broker.url}${path}`);
    const body = await response.json();
    assert.equal(response.status, 404, JSON.stringify(body));
    assert.equal(body.code, "not_found");
    assert.match(body.error, new RegExp(`GET /a2a/AGENT${path.replaceAll(".", "\\.")}`));
  }
});

test("A2A calls without a token or with a bad one get 401, and nothing is stored", async (t) => {
  const hub = await startHub(t);
  const params = { message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] } };
  assert.equal((await rpc(hub.broker.url, "bob", undefined, "SendMessage", params)).status, 401);
  assert.equal((await rpc(hub.broker.url, "bob", "itk_" + "x".repeat(43), "SendMessage", params)).status, 401);
  const client = await sdkClient(hub.broker.url, "bob", undefined);
  await assert.rejects(client.sendMessage(textMessage("hi")), /401/);
  assert.deepEqual(await pollInbox(hub, "bob", true), []);
});

test("another agent's token finds no task of alice's (-32001), cannot cancel it, and sends only as itself", async (t) => {
  const hub = await startHub(t);
  const sent = await rpc(hub.broker.url, "bob", hub.tokens.alice, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "for bob" }], metadata: { from: "bob" } },
    configuration: { returnImmediately: true },
  });
  const taskId = (sent.body.result!.task as { id: string }).id;
  for (const method of ["GetTask", "CancelTask", "SubscribeToTask"]) {
    const answer = await rpc(hub.broker.url, "bob", hub.tokens.carol, method, { id: taskId });
    assert.equal(answer.body.error?.code, -32001, method);
  }
  // Under another agent's endpoint alice's own task is not found either, and a made-up id is the same answer.
  assert.equal((await rpc(hub.broker.url, "carol", hub.tokens.alice, "GetTask", { id: taskId })).body.error?.code, -32001);
  assert.equal((await rpc(hub.broker.url, "bob", hub.tokens.alice, "GetTask", { id: "task-1-0" })).body.error?.code, -32001);
  const carols = await rpc(hub.broker.url, "bob", hub.tokens.carol, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "from carol" }] },
    configuration: { returnImmediately: true },
  });
  assert.notEqual((carols.body.result!.task as { id: string }).id, taskId, "the same messageId from another sender is its own task");
  const inbox = await pollInbox(hub, "bob");
  assert.deepEqual(inbox.map((message) => [message.interop.from, message.text]), [["alice", "for bob"], ["carol", "from carol"]]);
});

// Red team 53: a plain publish keyed "a2a:bob:collide" took the key of alice's later A2A message "collide", which was
// then answered with the publish's task and never stored.
test("a publish may not take an A2A message's Idempotency-Key: 400, and the A2A message with that id is stored", async (t) => {
  const hub = await startHub(t);
  const decoy = await fetch(`${hub.broker.url}/broadcast?from=alice&to=bob`, {
    method: "POST",
    headers: { authorization: `Bearer ${hub.tokens.alice}`, "idempotency-key": "a2a:bob:collide" },
    body: '{"text":"decoy"}',
  });
  assert.equal(decoy.status, 400);
  assert.match((await decoy.json()).error, /keys starting "a2a:" are the A2A hub's own/);
  const sent = await rpc(hub.broker.url, "bob", hub.tokens.alice, "SendMessage", {
    message: { messageId: "collide", role: "ROLE_USER", parts: [{ text: "the real one" }] },
    configuration: { returnImmediately: true },
  });
  assert.ok(sent.body.result?.task, JSON.stringify(sent.body));
  assert.deepEqual((await pollInbox(hub, "bob")).map((message) => message.text), ["the real one"]);
});

test("a v0.3 client's message/send with kind parts is stored, and the answer is a v0.3 task", async (t) => {
  const hub = await startHub(t);
  const card = await (await fetch(cardUrl(hub.broker.url, "bob"))).json();
  const legacy = new LegacyJsonRpcTransport({ endpoint: card.url, fetchImpl: fetchWithToken(hub.tokens.alice) });
  const task = taskJson(await legacy.sendMessage({ ...textMessage("old client"), configuration: { returnImmediately: true } } as never));
  assert.equal(task.status.state, "TASK_STATE_SUBMITTED");
  const raw = await rpc(hub.broker.url, "bob", hub.tokens.alice, "message/send", {
    message: { kind: "message", messageId: "m2", role: "user", parts: [{ kind: "text", text: "raw 0.3" }] },
  });
  assert.equal(raw.body.result?.kind, "task");
  assert.deepEqual(raw.body.result?.status, { state: "submitted", timestamp: (raw.body.result?.status as { timestamp: string }).timestamp });
  const got = await rpc(hub.broker.url, "bob", hub.tokens.alice, "tasks/get", { id: raw.body.result?.id });
  assert.equal((got.body.result?.status as { state: string }).state, "submitted");
  assert.deepEqual((await pollInbox(hub, "bob")).map((message) => message.text), ["old client", "raw 0.3"]);
});

test("CancelTask before delivery withdraws the message for good, also across a restart; after delivery it is -32002", async (t) => {
  const dir = tempDir("interop-a2a-");
  t.after(() => dir.cleanup());
  let hub = await startHub(t, dir.path);
  const client = await sdkClient(hub.broker.url, "bob", hub.tokens.alice);
  const withdrawn = taskJson(await client.sendMessage(textMessage("never mind")));
  const kept = taskJson(await client.sendMessage(textMessage("this one stays")));
  const canceled = taskJson(await client.cancelTask({ id: withdrawn.id } as never));
  assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
  assert.deepEqual((await pollInbox(hub, "bob")).map((message) => message.text), ["this one stays"]);
  await assert.rejects(client.cancelTask({ id: kept.id } as never), (error: Error) => /cannot be canceled/i.test(error.message));

  await hub.broker.stop();
  const broker = await startBroker({ dataDir: dir.path });
  t.after(() => broker.cleanup());
  hub = { broker, tokens: hub.tokens };
  const after = await rpc(broker.url, "bob", hub.tokens.alice, "GetTask", { id: withdrawn.id });
  assert.equal((after.body.result?.status as { state: string }).state, "TASK_STATE_CANCELED");
  const replay = await fetch(`${broker.url}/ntfy/bob/json?poll=1&since=all`, { headers: bearer(hub.tokens.bob) });
  assert.doesNotMatch(await replay.text(), /never mind/, "a withdrawn message is not replayed either");
  // Nor answered: bob never had it, and a reply would tell him an id he was never sent exists.
  const withdrawnId = Number(/^task-(\d+)-/.exec(withdrawn.id)![1]);
  const reply = await fetch(`${broker.url}/broadcast?from=bob&reply_to=${withdrawnId}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(hub.tokens.bob) },
    body: JSON.stringify({ text: "an answer to nothing" }),
  });
  assert.equal(reply.status, 404);
  assert.match((await reply.json()).error, new RegExp(`^Cannot reply to message ${withdrawnId} as bob: no message with this id was sent to or by bob`));
});

test("SubscribeToTask, or a blocking SendMessage retried, on a task already answered takes the reply from the caller's inbox as it carries it", async (t) => {
  const hub = await startHub(t);
  const send = (messageId: string, returnImmediately: boolean) =>
    rpc(hub.broker.url, "bob", hub.tokens.alice, "SendMessage", {
      message: { messageId, role: "ROLE_USER", parts: [{ text: "answered before anyone looks" }] },
      configuration: { returnImmediately },
    });
  const sent = await send("m-early", true);
  const taskId = (sent.body.result!.task as { id: string }).id;
  const [question] = await pollInbox(hub, "bob");
  await replyAsBob(hub, question.interop.id, "early answer");
  const streamed = await fetchWithToken(hub.tokens.alice)(`${hub.broker.url}/a2a/bob`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SubscribeToTask", params: { id: taskId } }),
  });
  const events = await streamed.text();
  assert.match(events, /TASK_STATE_COMPLETED/);
  assert.match(events, /early answer/);
  assert.deepEqual(await pollInbox(hub, "alice", true), [], "the stream carried the reply: not in alice's inbox as well");

  // The same for a blocking SendMessage sent again with the same messageId (one task, already answered).
  await send("m-twice", true);
  const [second] = await pollInbox(hub, "bob");
  await replyAsBob(hub, second.interop.id, "second answer");
  const retried = await send("m-twice", false);
  assert.equal((retried.body.result!.task as { status: { state: string } }).status.state, "TASK_STATE_COMPLETED");
  assert.deepEqual(await pollInbox(hub, "alice", true), [], "the call carried the reply: not in alice's inbox as well");
});

test("a dead-lettered message's task is FAILED with the reason", async (t) => {
  const hub = await startHub(t);
  const sent = await rpc(hub.broker.url, "bob", hub.tokens.alice, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "x" }] },
    configuration: { returnImmediately: true },
  });
  const [message] = await pollInbox(hub, "bob");
  const parked = await fetch(`${hub.broker.url}/dead-letters?agent=bob`, {
    method: "POST",
    headers: bearer(hub.tokens.bob),
    body: JSON.stringify({ id: message.interop.id, reason: "receiver refused: 400" }),
  });
  assert.equal(parked.status, 200);
  const got = await rpc(hub.broker.url, "bob", hub.tokens.alice, "GetTask", { id: (sent.body.result!.task as { id: string }).id });
  const status = got.body.result?.status as { state: string; message: { parts: Array<{ text: string }> } };
  assert.equal(status.state, "TASK_STATE_FAILED");
  assert.match(status.message.parts[0].text, /receiver refused: 400/);
});

test("SendStreamingMessage streams the task through delivery and the reply and ends at COMPLETED", async (t) => {
  const hub = await startHub(t);
  const client = await sdkClient(hub.broker.url, "bob", hub.tokens.alice);
  const events: string[] = [];
  const streamed = (async () => {
    for await (const { payload } of client.sendMessageStream(textMessage("stream me"))) {
      const value = payload!.value as { status?: { state: number } };
      events.push(`${payload!.$case}${value.status === undefined ? "" : ` ${taskStateToJSON(value.status.state as never)}`}`);
    }
  })();
  await waitFor(async () => (await pollInbox(hub, "bob", true)).length === 1, 10_000, "the message in bob's inbox");
  const [message] = await pollInbox(hub, "bob");
  await waitFor(() => events.length === 2, 10_000, "the WORKING update");
  await replyAsBob(hub, message.interop.id, "streamed answer");
  await streamed;
  assert.deepEqual(events, [
    "task TASK_STATE_SUBMITTED",
    "statusUpdate TASK_STATE_WORKING",
    "artifactUpdate",
    "statusUpdate TASK_STATE_COMPLETED",
  ]);
  // The stream carried the reply: it is not in alice's inbox too (Hermes streams its calls, and would get the
  // answer again as a new turn through its inbox).
  assert.deepEqual(await pollInbox(hub, "alice", true), []);
});

test("a blocking SendMessage answers with the reply, taken from the caller's inbox; a caller that hangs up frees the wait", async (t) => {
  const hub = await startHub(t);
  const client = await sdkClient(hub.broker.url, "bob", hub.tokens.alice, false);
  const answered = client.sendMessage(textMessage("wait for me"));
  await waitFor(async () => (await pollInbox(hub, "bob", true)).length === 1, 10_000, "the message in bob's inbox");
  const [message] = await pollInbox(hub, "bob");
  await replyAsBob(hub, message.interop.id, "here you are");
  const task = taskJson(await answered);
  assert.equal(task.status.state, "TASK_STATE_COMPLETED");
  assert.equal(task.status.message?.parts[0].text, "here you are");
  assert.deepEqual(await pollInbox(hub, "alice", true), [], "the reply went to the A2A caller, not to alice's inbox as well");

  const waiting = async () => {
    const status = await (await fetch(`${hub.broker.url}/status`, { headers: bearer(hub.tokens.alice) })).json();
    return status.agents.alice.waiting as number;
  };
  const hangUp = new AbortController();
  const left = fetchWithToken(hub.tokens.alice)(`${hub.broker.url}/a2a/bob`, {
    method: "POST",
    signal: hangUp.signal,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: "m9", role: "ROLE_USER", parts: [{ text: "nobody waits" }] } } }),
  }).catch(() => undefined);
  await waitFor(async () => (await waiting()) === 1, 10_000, "alice's SendMessage waiting");
  hangUp.abort();
  await left;
  await waitFor(async () => (await waiting()) === 0, 10_000, "the wait freed");
});

test("serve --a2a-wait bounds a blocking SendMessage: past it, the answer is the task as it stands", async (t) => {
  const broker = await startBroker({ args: ["--agents", "bob", "--a2a-wait", "1s"] });
  t.after(() => broker.cleanup());
  const started = performance.now();
  // Blocking (no returnImmediately), and nobody reads bob's inbox.
  const answer = await rpc(broker.url, "bob", undefined, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "anyone?" }] },
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal((answer.body.result?.task as { status: { state: string } }).status.state, "TASK_STATE_SUBMITTED");
  assert.ok(performance.now() - started >= 900, "it waited for the bound");
});

test("bad JSON-RPC gets the spec's codes: parse error, batch, unknown method, bad params, deep body, push config; a huge body 413", async (t) => {
  const hub = await startHub(t);
  const post = async (body: string) => {
    const response = await fetch(`${hub.broker.url}/a2a/bob`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(hub.tokens.alice) },
      body,
    });
    return { status: response.status, body: await response.json() };
  };
  assert.equal((await post("{not json")).body.error.code, -32700);
  const batch = await post(JSON.stringify([{ jsonrpc: "2.0", id: 1, method: "GetTask", params: { id: "x" } }]));
  assert.equal(batch.body.error.code, -32600);
  assert.equal((await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "Nope", params: {} }))).body.error.code, -32601);
  const noParts = await post(JSON.stringify({ jsonrpc: "2.0", id: 7, method: "SendMessage", params: { message: { messageId: "a", parts: [] } } }));
  assert.deepEqual([noParts.status, noParts.body.id, noParts.body.error.code], [200, 7, -32602]);
  const deep = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: {} }).replace("{}", "[".repeat(5000) + "]".repeat(5000)));
  assert.equal(deep.body.error.code, -32600);
  const push = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "CreateTaskPushNotificationConfig", params: {} }));
  assert.equal(push.body.error.code, -32003);
  const huge = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: "h", parts: [{ text: "x".repeat(2 * 1024 * 1024) }] } } }));
  assert.equal(huge.status, 413);
  assert.deepEqual(await pollInbox(hub, "bob", true), []);
});

test("GET /a2a lists recent tasks with their states: every task for an admin, only its own for an agent's token", async (t) => {
  const hub = await startHub(t);
  const admin = await createToken(hub.broker.dataDir, "ops", { admin: true });
  for (const [sender, text] of [["alice", "from alice"], ["carol", "from carol"]] as const) {
    const sent = await rpc(hub.broker.url, "bob", hub.tokens[sender], "SendMessage", {
      message: { messageId: "m1", role: "ROLE_USER", parts: [{ text }] },
      configuration: { returnImmediately: true },
    });
    assert.equal(sent.status, 200);
  }
  const [first] = await pollInbox(hub, "bob");
  await replyAsBob(hub, first.interop.id, "done");
  const list = async (token: string) => {
    const response = await fetch(`${hub.broker.url}/a2a`, { headers: bearer(token) });
    assert.equal(response.status, 200);
    return ((await response.json()).tasks as Array<{ from: string; to: string; state: string }>).map((task) => `${task.from}→${task.to} ${task.state}`);
  };
  // Until the broker has read the admin token (within a second) it answers 401: waited for, not asserted.
  await waitFor(async () => (await fetch(`${hub.broker.url}/a2a`, { headers: bearer(admin) })).status === 200, 5000, "the admin token to take effect");
  await waitFor(async () => (await list(admin)).length === 2, 5000, "both tasks listed");
  assert.deepEqual(await list(admin), ["carol→bob TASK_STATE_WORKING", "alice→bob TASK_STATE_COMPLETED"]);
  assert.deepEqual(await list(hub.tokens.bob), ["carol→bob TASK_STATE_WORKING", "alice→bob TASK_STATE_COMPLETED"]);
  assert.deepEqual(await list(hub.tokens.alice), ["alice→bob TASK_STATE_COMPLETED"]);
  assert.deepEqual(await list(hub.tokens.carol), ["carol→bob TASK_STATE_WORKING"]);
  assert.equal((await fetch(`${hub.broker.url}/a2a`)).status, 401);
});

test("a blocking SendMessage whose token is revoked meanwhile gets 401 at once, and the message stays stored", async (t) => {
  const hub = await startHub(t);
  const waiting = rpc(hub.broker.url, "bob", hub.tokens.alice, "SendMessage", {
    message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "still there" }] },
  });
  await waitFor(async () => (await pollInbox(hub, "bob", true)).length === 1, 10_000, "the message in bob's inbox");
  const started = Date.now();
  await revokeTokens(hub.broker.dataDir, "alice");
  const answer = await waiting;
  assert.equal(answer.status, 401);
  assert.ok(Date.now() - started < 10_000, "well before the 30 s bound");
  assert.deepEqual((await pollInbox(hub, "bob")).map((message) => message.text), ["still there"]);
});

test("a task stream whose token is revoked meanwhile is cut, and the reply that comes later is in the caller's inbox once", async (t) => {
  // Not shown on a stream its wait did not take it for (a revoked token's streams are cut), nor lost.
  const hub = await startHub(t);
  const response = await fetch(`${hub.broker.url}/a2a/bob`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(hub.tokens.alice) },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendStreamingMessage", params: { message: { messageId: "s1", role: "ROLE_USER", parts: [{ text: "stream it" }] } } }),
  });
  const text = response.text().then(() => "ended", () => "cut");
  const [question] = await pollInbox(hub, "bob");
  await revokeTokens(hub.broker.dataDir, "alice");
  assert.equal(await text, "cut");
  await replyAsBob(hub, question.interop.id, "too late for the stream");
  const alice = await createToken(hub.broker.dataDir, "alice");
  // Until the broker has read the new token (within a second) it answers 401.
  await waitFor(async () => (await inboxOf(hub.broker.url, "alice", alice, true).catch(() => [])).length === 1, 5000, "the reply in alice's inbox");
  assert.deepEqual((await inboxOf(hub.broker.url, "alice", alice)).map((message) => message.text), ["too late for the stream"]);
});

// Found in note 45: removing the caller's agent left its blocking call waiting out --a2a-wait for a reply that had no
// inbox to come to (as /ask did before it answered 410).
test("the operator's removal of a blocking SendMessage's or a task stream's caller ends them at once with agent_removed", async (t) => {
  const broker = await startBroker({ args: ["--agents", "bob"] });
  t.after(() => broker.cleanup());
  const send = (method: string, messageId: string) =>
    fetch(`${broker.url}/a2a/bob`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: { message: { messageId, role: "ROLE_USER", parts: [{ text: messageId }] } } }),
    });
  const blocking = send("SendMessage", "blocking");
  const streamed = send("SendStreamingMessage", "streamed");
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.a2a?.waiting === 2, 10_000, "both calls to wait for their reply");
  const started = Date.now();
  assert.equal((await fetch(`${broker.url}/agents?agent=a2a&force=1`, { method: "DELETE" })).status, 200);
  const answer = await blocking;
  assert.equal(answer.status, 410);
  assert.equal((await answer.json()).error.data.code, "agent_removed");
  const stream = await (await streamed).text();
  assert.match(stream.split("\n\n").filter((event) => event.startsWith("data:")).at(-1)!, /"code":"agent_removed"/);
  assert.ok(Date.now() - started < 10_000, "at once, not at the 300 s bound");
});

// Red team 51: the removal of a task stream's receiver (its message, so its task, withdrawn) ended the stream after
// its first event with no final one, where the blocking call gets -32001 at once.
test("the operator's removal of a task stream's receiver ends the stream at once with a last event: -32001 task not found", async (t) => {
  const broker = await startBroker({ args: ["--agents", "bob"] });
  t.after(() => broker.cleanup());
  const streamed = fetch(`${broker.url}/a2a/bob`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendStreamingMessage", params: { message: { messageId: "streamed", role: "ROLE_USER", parts: [{ text: "to bob" }] } } }),
  });
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.a2a?.waiting === 1, 10_000, "the stream to wait for its reply");
  assert.equal((await fetch(`${broker.url}/agents?agent=bob&force=1`, { method: "DELETE" })).status, 200);
  const events = (await (await streamed).text()).split("\n\n").filter((event) => event.startsWith("data:"));
  assert.equal(events.length, 2, events.join("\n"));
  assert.deepEqual(JSON.parse(events[1].slice("data:".length)).error.code, -32001, events[1]);
});

test("without tokens an A2A caller is the agent a2a, and a header naming an unknown A2A version is -32009", async (t) => {
  // bob is declared (a send creates no inbox); a2a is not: its SendMessage gives it the inbox the reply goes to.
  const broker = await startBroker({ args: ["--agents", "bob"] });
  t.after(() => broker.cleanup());
  const client = await sdkClient(broker.url, "bob", undefined);
  const sent = taskJson(await client.sendMessage(textMessage("no tokens here")));
  const [message] = await (await fetch(`${broker.url}/poll?agent=bob`)).json();
  assert.deepEqual([message.interop.from, message.text], ["a2a", "no tokens here"]);
  const answer = await fetch(`${broker.url}/broadcast?from=bob&reply_to=${message.interop.id}`, { method: "POST", body: '{"text":"hi a2a"}' });
  assert.equal(answer.status, 200);
  assert.equal(taskJson(await client.getTask({ id: sent.id } as never)).status.state, "TASK_STATE_COMPLETED");
  const future = await rpc(broker.url, "bob", undefined, "GetTask", { id: sent.id }, { "a2a-version": "2.0" });
  assert.equal(future.body.error?.code, -32009);
});

test("ListTasks pages the caller's tasks newest first and filters by contextId and state", async (t) => {
  const hub = await startHub(t);
  const send = async (text: string, contextId: string) =>
    (await rpc(hub.broker.url, "bob", hub.tokens.alice, "SendMessage", {
      message: { messageId: text, contextId, role: "ROLE_USER", parts: [{ text }] },
      configuration: { returnImmediately: true },
    })).body.result!.task as { id: string };
  const [one, two, three] = [await send("one", "ctx-a"), await send("two", "ctx-b"), await send("three", "ctx-a")];
  await rpc(hub.broker.url, "bob", hub.tokens.alice, "CancelTask", { id: two.id });
  const page = async (params: Record<string, unknown>) => {
    const answer = await rpc(hub.broker.url, "bob", hub.tokens.alice, "ListTasks", params);
    const result = answer.body.result as { tasks: Array<{ id: string }>; nextPageToken: string };
    return { ids: result.tasks.map((task) => task.id), next: result.nextPageToken };
  };
  const first = await page({ pageSize: 2 });
  assert.deepEqual(first.ids, [three.id, two.id]);
  const second = await page({ pageSize: 2, pageToken: first.next });
  assert.deepEqual(second, { ids: [one.id], next: "" });
  assert.deepEqual((await page({ contextId: "ctx-a" })).ids, [three.id, one.id]);
  assert.deepEqual((await page({ status: "TASK_STATE_CANCELED" })).ids, [two.id]);
  assert.deepEqual((await rpc(hub.broker.url, "bob", hub.tokens.carol, "ListTasks", {})).body.result?.tasks, []);
  assert.equal((await rpc(hub.broker.url, "bob", hub.tokens.alice, "ListTasks", { pageSize: 1000 })).body.error?.code, -32602);
});

test("SendMessage goes through the broker's publish rules: an unknown agent is 404, a sender over --rate-limit 429 with Retry-After and -32000, streaming sends too", async (t) => {
  const dir = tempDir("interop-a2a-");
  t.after(() => dir.cleanup());
  const token = await createToken(dir.path, "alice");
  await createToken(dir.path, "bob");
  const broker = await startBroker({ dataDir: dir.path, args: ["--rate-limit", "1"] });
  t.after(() => broker.cleanup());
  const send = (agent: string, messageId: string) =>
    rpc(broker.url, agent, token, "SendMessage", {
      message: { messageId, role: "ROLE_USER", parts: [{ text: "hi" }] },
      configuration: { returnImmediately: true },
    });
  const unknown = await send("nobody", "m0");
  assert.equal(unknown.status, 404);
  assert.deepEqual([unknown.body.error?.code, (unknown.body.error as { data?: { code: string } }).data?.code], [-32000, "unknown_agent"]);
  // At once: a burst of 6 is past the 2 a limit of 1/s lets through, however slow this machine is.
  const answers = await Promise.all([1, 2, 3, 4, 5, 6].map((n) => send("bob", `m${n}`)));
  const refused = answers.find((answer) => answer.status === 429);
  assert.ok(refused, `a burst over the limit is refused: ${answers.map((answer) => answer.status)}`);
  // As the REST API answers it (429, Retry-After), with the JSON-RPC error OpenClaw's channel uses for it.
  assert.match(refused.headers.get("retry-after") ?? "", /^\d+$/);
  assert.deepEqual([refused.body.error?.code, (refused.body.error?.data as { code: string }).code], [-32000, "rate_limited"]);
  assert.match(refused.body.error?.message ?? "", /Too many messages from alice/);
  // A streaming send is a publish too: refused while the limit holds, before any stream opens.
  const streamed = await Promise.all([7, 8, 9, 10, 11, 12].map(async (n) => {
    const response = await fetchWithToken(token)(`${broker.url}/a2a/bob`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: n,
        method: "SendStreamingMessage",
        params: { message: { messageId: `s${n}`, role: "ROLE_USER", parts: [{ text: "hi" }] } },
      }),
    });
    // A stream that was let through stays open until a reply: only its status is read.
    if (response.status !== 429) {
      await response.body?.cancel();
      return { status: response.status, code: undefined };
    }
    return { status: response.status, code: (await response.json()).error?.code };
  }));
  assert.ok(streamed.some((answer) => answer.status === 429 && answer.code === -32000), `${streamed.map((answer) => answer.status)}`);
});

test("a blocking SendMessage held open when the broker gets SIGTERM is told to ask again for its stored task; after a restart GetTask finds it and bob's reply completes it", async (t) => {
  const dir = tempDir("interop-a2a-");
  t.after(() => dir.cleanup());
  const hub = await startHub(t, dir.path);
  const send = { jsonrpc: "2.0", id: 7, method: "SendMessage", params: { message: { messageId: "m-held", role: "ROLE_USER", parts: [{ text: "held across a stop" }] } } };
  const response = await fetch(`${hub.broker.url}/a2a/bob`, {
    method: "POST",
    headers: { "content-type": "application/json", ...bearer(hub.tokens.alice) },
    body: JSON.stringify(send),
  });
  // The head comes once the answer is held (10 s): from then on its status cannot tell the caller anything.
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  assert.match(text, /^ +$/, "held open with spaces");
  const exited = hub.broker.stop("SIGTERM");
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
  assert.equal((await exited).code, 0);
  const { error } = JSON.parse(text);
  assert.equal(error.data.code, "storage_unavailable", text);
  assert.match(error.data.taskId, /^task-\d+-/);
  assert.doesNotMatch(hub.broker.log(), /request failed|storage_failed/);

  const broker = await startBroker({ dataDir: dir.path });
  t.after(() => broker.cleanup());
  const again = { broker, tokens: hub.tokens };
  const found = await rpc(broker.url, "bob", hub.tokens.alice, "GetTask", { id: error.data.taskId });
  assert.equal((found.body.result?.status as { state: string }).state, "TASK_STATE_SUBMITTED");
  const [question] = await pollInbox(again, "bob");
  assert.equal(question.text, "held across a stop");
  await replyAsBob(again, question.interop.id, "got it");
  // The same SendMessage again is the same task (stored once), now answered.
  const retried = await rpc(broker.url, "bob", hub.tokens.alice, "SendMessage", send.params);
  const task = retried.body.result?.task as { id: string; status: { state: string }; artifacts: Array<{ parts: Array<{ text: string }> }> };
  assert.equal(task.id, error.data.taskId);
  assert.equal(task.status.state, "TASK_STATE_COMPLETED");
  assert.equal(task.artifacts[0].parts[0].text, "got it");
  assert.deepEqual(await pollInbox(again, "bob"), [], "bob got the message once");
});
