import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { cliCommand, runCli, spawnCli, tempDir } from "../helpers/cli.ts";
import { stopAll } from "../helpers/listener.ts";

/** The interop command line as a shell string, for `listen --exec` scripts that call interop themselves. */
function shellCli(): string {
  const [command, prefix] = cliCommand();
  return [command, ...prefix].map((part) => `'${part}'`).join(" ");
}

test("interop ask prints the reply sent with --reply-to, which carries the conversation and hop count", async () => {
  // Declared: the question may come before the listener connects.
  const broker = await startBroker({ args: ["--agents", "hermes,leo"] });
  const dir = tempDir();
  const replier = spawnCli([
    "listen", "--agent", "leo", "--url", broker.url, "--state", join(dir.path, "s"),
    "--exec", `${shellCli()} send --url '${broker.url}' --from leo --reply-to "$INTEROP_MESSAGE_ID" "pong"`,
  ]);
  try {
    const asked = await runCli(["ask", "--url", broker.url, "--from", "hermes", "--to", "leo", "--timeout", "30", "ping"]);
    assert.equal(asked.code, 0, asked.stderr);
    assert.equal(asked.stdout, "pong\n");

    const again = await runCli(["ask", "--url", broker.url, "--from", "hermes", "--to", "leo", "--print-json", "--json", '{"q":2}']);
    const reply = JSON.parse(again.stdout);
    assert.equal(reply.text, "pong");
    assert.equal(reply.interop.from, "leo");
    assert.equal(reply.interop.to, "hermes");
    assert.equal(reply.interop.hops, 1);
    assert.equal(reply.interop.conversation, reply.interop.reply_to);

    const polled = await (await fetch(`${broker.url}/poll?agent=hermes`)).json();
    assert.deepEqual(polled, [], "the replies were taken by ask, not left in hermes's inbox");
  } finally {
    await stopAll(replier);
    await broker.cleanup();
    dir.cleanup();
  }
});

test("interop ask exits 7 when no reply comes in time", async () => {
  const broker = await startBroker({ args: ["--agents", "hermes,leo"] });
  try {
    const result = await runCli(["ask", "--url", broker.url, "--from", "hermes", "--to", "leo", "--timeout", "1", "anyone?"]);
    assert.equal(result.code, 7);
    assert.match(result.stderr, /^error: No reply from leo to message 1 within 1 s; a later reply will be in hermes's inbox\n$/);
  } finally {
    await broker.cleanup();
  }
});

// Red team 51: an ask whose recipient the operator removed (its question with the inbox) said at its timeout that "a
// later reply will be in" the asker's inbox, where none could come (a reply to that id is refused 404). Red team 52:
// it said so only at its timeout (`interop ask --timeout 300` hung for five minutes); it ends once the removal commits.
// Red team 63: the key was ignored, and the ask asked again sent the question again.
test("POST /ask with an Idempotency-Key is refused 400 naming the keyed way to ask, and sends nothing", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,bee"] });
  t.after(() => broker.cleanup());
  const asked = await fetch(`${broker.url}/ask?from=hermes&to=bee&timeout=1`, {
    method: "POST",
    headers: { "idempotency-key": "q1" },
    body: '{"text":"still there?"}',
  });
  assert.equal(asked.status, 400);
  const { error, code } = await asked.json();
  assert.equal(code, "invalid_query");
  assert.match(error, /POST \/broadcast\?from=hermes&to=bee&hold_reply=S\), then wait for its reply \(GET \/wait\?agent=hermes&reply_to=ID\)$/);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=bee`)).json(), []);
});

test("POST /ask whose recipient is removed while it waits ends at once with 410 question_gone; a refused removal ends nothing", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,bee"] });
  t.after(() => broker.cleanup());
  const started = performance.now();
  const asked = fetch(`${broker.url}/ask?from=hermes&to=bee&timeout=120`, { method: "POST", body: '{"text":"still there?"}' });
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.bee?.pending === 1, 5000, "the question at bee");
  // Without --force a removal of an inbox holding messages is refused: the question stays, and so does the ask.
  assert.equal((await fetch(`${broker.url}/agents?agent=bee`, { method: "DELETE" })).status, 409);
  assert.equal((await fetch(`${broker.url}/agents?agent=bee&force=1`, { method: "DELETE" })).status, 200);
  const answer = await asked;
  assert.equal(answer.status, 410);
  const { error, code } = await answer.json();
  assert.equal(code, "question_gone");
  assert.equal(error, "bee was removed by the operator while the ask waited: message 1 went with its inbox, and no reply will come");
  assert.ok(performance.now() - started < 60_000, "ended by the removal, not at the ask's timeout");
});

test("POST /ask whose recipient's removal is refused goes on waiting, and gets the reply", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,bee"] });
  t.after(() => broker.cleanup());
  const asked = fetch(`${broker.url}/ask?from=hermes&to=bee&timeout=30`, { method: "POST", body: '{"text":"still there?"}' });
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.bee?.pending === 1, 5000, "the question at bee");
  assert.equal((await fetch(`${broker.url}/agents?agent=bee`, { method: "DELETE" })).status, 409);
  assert.equal((await fetch(`${broker.url}/broadcast?from=bee&reply_to=1`, { method: "POST", body: '{"text":"yes"}' })).status, 200);
  const answer = await asked;
  assert.equal(answer.status, 200);
  assert.equal((await answer.json()).reply.text, "yes");
});

test("two listen --exec agents auto-replying to each other stop at the hop cap", async () => {
  const broker = await startBroker({ args: ["--max-hops", "5", "--agents", "ping,pong"] });
  const dir = tempDir();
  const autoReply = (agent: string) =>
    spawnCli([
      "listen", "--agent", agent, "--url", broker.url, "--state", join(dir.path, agent),
      "--exec", `${shellCli()} send --url '${broker.url}' --from ${agent} --reply-to "$INTEROP_MESSAGE_ID" "ping from ${agent}" || true`,
    ]);
  const agents = [autoReply("ping"), autoReply("pong")];
  let stderr = "";
  for (const agent of agents) agent.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  try {
    await publish(broker.url, "ping", "pong", { text: "start" });
    // Each hop starts a CLI process (a few seconds on a loaded 2-core machine): the bound is generous, not a sleep.
    await waitFor(() => stderr.includes("the cap is 5"), 60_000, "the hop cap refusal");
    const status = await (await fetch(`${broker.url}/status`)).json();
    assert.equal(status.last_id, 6, "the first message and five replies");
    assert.match(stderr, /Reply refused: message 6 is already 5 replies deep \(the cap is 5, serve --max-hops\)/);
  } finally {
    await stopAll(...agents);
    await broker.cleanup();
    dir.cleanup();
  }
});

test("GET /wait returns the next message, takes it, and answers 204 when none comes", async () => {
  const broker = await startBroker();
  try {
    const waiting = fetch(`${broker.url}/wait?agent=hermes&timeout=20`);
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.hermes.online, 5000, "the wait");
    await publish(broker.url, "openclaw", "hermes", { text: "wake up" });
    const response = await waiting;
    assert.equal(response.status, 200);
    assert.equal((await response.json()).text, "wake up");
    assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=hermes`)).json(), []);

    await publish(broker.url, "openclaw", "hermes", { text: "already here" });
    assert.equal((await (await fetch(`${broker.url}/wait?agent=hermes&timeout=5`)).json()).text, "already here");
    assert.equal((await fetch(`${broker.url}/wait?agent=hermes&timeout=0.2`)).status, 204);
    assert.equal((await fetch(`${broker.url}/wait?agent=hermes&timeout=-1`)).status, 400);
  } finally {
    await broker.cleanup();
  }
});

test("GET /wait?reply_to=ID answers at once, not after its timeout, when no reply can come: 410 for a dead-lettered question, 404 for an id not the asker's", async () => {
  const broker = await startBroker();
  try {
    const question = await (await publish(broker.url, "hermes", "openclaw", { text: "ready?" })).json();
    await fetch(`${broker.url}/poll?agent=leo`); // a reader announces itself: leo now has an inbox
    const other = await (await publish(broker.url, "openclaw", "leo", { text: "not hermes's" })).json();
    const wait = async (id: number) => {
      const answer = await fetch(`${broker.url}/wait?agent=hermes&reply_to=${id}&timeout=2`);
      return { status: answer.status, code: answer.status === 204 ? undefined : (await answer.json()).code };
    };
    // openclaw's push receiver refuses the question for good: no reply is coming.
    const parked = await fetch(`${broker.url}/dead-letters?agent=openclaw`, {
      method: "POST",
      body: JSON.stringify({ id: question.id, reason: "HTTP 422" }),
    });
    assert.equal(parked.status, 200, await parked.text());
    assert.deepEqual(await wait(question.id), { status: 410, code: "question_gone" });
    assert.deepEqual(await wait(other.id), { status: 404, code: "unknown_message" });
  } finally {
    await broker.cleanup();
  }
});

test("GET /wait?reply_to=ID gets the reply to a question parked after it was answered (listen --a2a parks a failed task's message)", async () => {
  const broker = await startBroker();
  try {
    const question = await (await publish(broker.url, "hermes", "openclaw", { text: "ready?" })).json();
    const replied = await fetch(`${broker.url}/broadcast?from=openclaw&reply_to=${question.id}`, {
      method: "POST",
      body: JSON.stringify({ text: "the task failed" }),
    });
    assert.equal(replied.status, 200);
    const parked = await fetch(`${broker.url}/dead-letters?agent=openclaw`, {
      method: "POST",
      body: JSON.stringify({ id: question.id, reason: "the receiver's task ended TASK_STATE_FAILED" }),
    });
    assert.equal(parked.status, 200, await parked.text());
    const wait = await fetch(`${broker.url}/wait?agent=hermes&reply_to=${question.id}&timeout=2`);
    assert.equal(wait.status, 200);
    assert.equal((await wait.json()).text, "the task failed");
  } finally {
    await broker.cleanup();
  }
});

test("GET /wait?reply_to=ID takes the reply to that message out of order, whether it is already there or comes during the wait", async () => {
  const broker = await startBroker();
  try {
    const question = await (await publish(broker.url, "hermes", "openclaw", { text: "ready?" })).json();
    const answer = (text: string) =>
      fetch(`${broker.url}/broadcast?from=openclaw&reply_to=${question.id}`, { method: "POST", body: JSON.stringify({ text }) });
    // Already there, behind another message: taken out of order, the other stays pending.
    await publish(broker.url, "openclaw", "hermes", { text: "unrelated" });
    assert.equal((await answer("first reply")).status, 200);
    const first = await fetch(`${broker.url}/wait?agent=hermes&reply_to=${question.id}&timeout=5`);
    assert.equal(first.status, 200);
    assert.equal((await first.json()).text, "first reply");
    // Coming during the wait; a message that is no reply does not end it.
    const waiting = fetch(`${broker.url}/wait?agent=hermes&reply_to=${question.id}&timeout=20`);
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.hermes.waiting === 1, 5000, "the wait");
    await publish(broker.url, "openclaw", "hermes", { text: "also unrelated" });
    assert.equal((await answer("second reply")).status, 200);
    assert.equal((await (await waiting).json()).text, "second reply");
    assert.deepEqual((await (await fetch(`${broker.url}/poll?agent=hermes`)).json()).map((message: { text: string }) => message.text), [
      "unrelated",
      "also unrelated",
    ]);
    assert.equal((await fetch(`${broker.url}/wait?agent=hermes&reply_to=${question.id}&timeout=0.2`)).status, 204);
    assert.equal((await fetch(`${broker.url}/wait?agent=hermes&reply_to=x&timeout=1`)).status, 400);
  } finally {
    await broker.cleanup();
  }
});
