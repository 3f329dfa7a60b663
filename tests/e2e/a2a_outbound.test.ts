import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { freePort, publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { collect, runCli, spawnCli, tempDir } from "../helpers/cli.ts";
import {
  HermesA2aServer,
  OPENCLAW_SLASH_REFUSAL,
  OPENCLAW_TURN_FAILURE,
  OpenclawA2aServer,
  reservePort,
  SdkAgentServer,
} from "../helpers/a2a_servers.ts";
import { rpc } from "../helpers/a2a.ts";
import { stopAll, stopListen } from "../helpers/listener.ts";

const TOKEN = "peer-token-for-interop";

/** Starts `listen --a2a` for `agent`, with its token in a file and its state in `dir`. */
function startA2aListen(
  broker: RunningBroker,
  agent: string,
  a2aUrl: string,
  dir: string,
  extra: string[] = [],
): ChildProcess {
  const tokenFile = join(dir, "a2a-token");
  writeFileSync(tokenFile, TOKEN + "\n");
  return spawnCli([
    "listen",
    "--agent",
    agent,
    "--url",
    broker.url,
    "--a2a",
    a2aUrl,
    "--a2a-token-file",
    tokenFile,
    "--state",
    join(dir, "state.json"),
    "--verbose",
    ...extra,
  ]);
}

function stderrOf(child: ChildProcess): () => string {
  let text = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  return () => text;
}

async function inbox(broker: RunningBroker, agent: string): Promise<Array<Record<string, unknown>>> {
  const response = await fetch(`${broker.url}/poll?agent=${agent}&peek=1`);
  return await response.json();
}

async function deadLetters(broker: RunningBroker, agent: string): Promise<Array<{ id: number; reason: string }>> {
  return await (await fetch(`${broker.url}/dead-letters?agent=${agent}`)).json();
}

/** The agent's dead letters, once there is one. */
async function untilParked(
  broker: RunningBroker,
  agent: string,
  what: string,
): Promise<Array<{ id: number; reason: string }>> {
  let letters: Array<{ id: number; reason: string }> = [];
  await waitFor(async () => (letters = await deadLetters(broker, agent)).length > 0, 20_000, what);
  return letters;
}

/** An A2A server a test starts: it answers at `url` and stops when the test ends. */
interface AgentServer {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * A broker started with `args`, and A2A servers each behind `listen --a2a` for one agent, all stopped when the test
 * ends: `behind(agent, server)` returns `listen`, which starts a listener for the agent in front of the server (again
 * after a kill: the same state dir), with its log.
 */
async function a2aSetup(t: { after(fn: () => Promise<void>): void }, args: string[] = []) {
  const broker = await startBroker({ args });
  const servers: AgentServer[] = [];
  const listeners: ChildProcess[] = [];
  const dirs: Array<ReturnType<typeof tempDir>> = [];
  t.after(async () => {
    await Promise.all(listeners.map((child) => stopListen(child, "SIGKILL")));
    for (const server of servers) await server.stop();
    await broker.cleanup();
    for (const dir of dirs) dir.cleanup();
  });
  const behind = (agent: string, server: AgentServer, path = "/") => {
    servers.push(server);
    const dir = tempDir();
    dirs.push(dir);
    const listen = (extra: string[] = []) => {
      const child = startA2aListen(broker, agent, `${server.url}${path}`, dir.path, extra);
      listeners.push(child);
      return { child, log: stderrOf(child) };
    };
    return { dir, listen };
  };
  return { broker, behind };
}

/** A broker with an OpenClaw-shaped channel (started) for the agent "openclaw". */
async function openclawSetup(t: { after(fn: () => Promise<void>): void }) {
  const { broker, behind } = await a2aSetup(t);
  const gateway = new OpenclawA2aServer({ token: TOKEN });
  const { dir, listen } = behind("openclaw", gateway, "/a2a/v1");
  await gateway.start();
  return { broker, dir, gateway, listen };
}

/** A broker declaring `agents`, and an SDK agent server (started) behind `listen --a2a` for `agent`. */
async function sdkSetup(
  t: { after(fn: () => Promise<void>): void },
  agents: string,
  agent: string,
  options: Omit<ConstructorParameters<typeof SdkAgentServer>[0], "token"> = {},
) {
  const { broker, behind } = await a2aSetup(t, ["--agents", agents]);
  const server = new SdkAgentServer({ token: TOKEN, ...options });
  const { dir, listen } = behind(agent, server);
  await server.start();
  return { broker, server, dir, listen, behind };
}

test("listen --a2a hands each message once to an SDK A2A server that was down, and the asker gets its answer", async (t) => {
  // Declared: the notes are sent before the listener has connected, and a send creates no inbox.
  const { broker, behind } = await a2aSetup(t, ["--agents", "hermes,sdkagent"]);
  const agent = new SdkAgentServer({ token: TOKEN });
  agent.port = await reservePort();
  const { log } = behind("sdkagent", agent).listen();
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "sdkagent", { text: `note ${n}` });
  const ask = spawnCli([
    "ask",
    "--url",
    broker.url,
    "-f",
    "hermes",
    "-t",
    "sdkagent",
    "--timeout",
    "60s",
    "what is 6 x 7?",
  ]);
  t.after(() => stopAll(ask));
  await waitFor(() => /retrying/.test(log()), 20_000, "a failed send while the server is down");
  await agent.start();
  const asked = await collect(ask, 60_000);
  assert.equal(asked.code, 0, asked.stderr);
  assert.equal(asked.stdout.trim(), "echo: what is 6 x 7?");
  await waitFor(() => agent.seen.size === 4, 20_000, "four messages at the agent");
  assert.equal(agent.repeats(), 0);
  // Sent in inbox order, as v1.0 with the header and returnImmediately, each with its interop context.
  assert.deepEqual(agent.order.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [1, 2, 3, 4]);
  const send = agent.requests.find((request) => request.method === "SendMessage")!;
  assert.equal(send.version, "1.0");
  const params = send.body.params as {
    message: { contextId: string; parts: unknown[] };
    configuration: { returnImmediately: boolean };
  };
  assert.equal(params.configuration.returnImmediately, true);
  // In the sender's namespace at the receiver; the answers carry the context hermes knows.
  assert.equal(params.message.contextId, "hermes:interop-1");
  assert.deepEqual(params.message.parts, [{ text: "note 1" }]);
  // The answers to the three notes went back to hermes as replies carrying the A2A answer.
  await waitFor(async () => (await inbox(broker, "hermes")).length === 3, 20_000, "three answers in hermes's inbox");
  const answers = await inbox(broker, "hermes");
  assert.deepEqual(answers.map((answer) => answer.text).sort(), ["echo: note 1", "echo: note 2", "echo: note 3"]);
  for (const answer of answers) {
    const meta = answer.interop as { from: string; reply_to: number };
    assert.equal(meta.from, "sdkagent");
    assert.equal((answer.a2a as { contextId: string }).contextId, `interop-${meta.reply_to}`);
  }
});

test("listen --a2a follows tasks by stream where the server streams: the answers come without a GetTask", async (t) => {
  // Work long enough that the task still runs when the listener subscribes (a finished task cannot be subscribed).
  const { broker, server: agent, listen } = await sdkSetup(t, "hermes,sdkagent", "sdkagent", { streaming: true, workMs: 3_000 });
  listen();
  await publish(broker.url, "hermes", "sdkagent", { text: "one" });
  await publish(broker.url, "hermes", "sdkagent", { text: "two" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 30_000, "two answers in hermes's inbox");
  assert.deepEqual((await inbox(broker, "hermes")).map((answer) => answer.text).sort(), ["echo: one", "echo: two"]);
  const methods = agent.requests.map((request) => request.method);
  assert.equal(methods.filter((method) => method === "SubscribeToTask").length, 2);
  assert.ok(!methods.includes("GetTask"), `no GetTask: ${methods}`);
});

test("listen --a2a killed while it streams a task subscribes again when it restarts, and the answer comes once", async (t) => {
  // Long enough to outlast the kill and the restart: a task that has ended cannot be subscribed.
  const { broker, server: agent, dir, listen } = await sdkSetup(t, "hermes,sdkagent", "sdkagent", { streaming: true, workMs: 8_000 });
  const first = listen();
  await publish(broker.url, "hermes", "sdkagent", { text: "slow one" });
  const stateFile = join(dir.path, "state.a2a.json");
  const following = () => {
    try {
      return JSON.parse(readFileSync(stateFile, "utf8")).records.some((record: { taskId?: string }) => record.taskId);
    } catch {
      return false;
    }
  };
  await waitFor(() => following() && agent.requests.some((request) => request.method === "SubscribeToTask"), 20_000, "the task streamed");
  await stopListen(first.child, "SIGKILL");
  listen();
  await waitFor(async () => (await inbox(broker, "hermes")).length === 1, 30_000, "the answer in hermes's inbox");
  assert.equal((await inbox(broker, "hermes"))[0].text, "echo: slow one");
  const methods = agent.requests.map((request) => request.method);
  assert.deepEqual([methods.filter((method) => method === "SubscribeToTask").length, methods.includes("GetTask")], [2, false], `${methods}`);
  assert.equal(agent.repeats(), 0);
});

test("an agent forging another's contextId reaches the A2A server in a context of its own", async (t) => {
  const { broker, server: agent, listen } = await sdkSetup(t, "alice,carol,bob", "bob");
  listen();
  const carol = await (await publish(broker.url, "carol", "bob", { text: "carol's secret plan" })).json();
  const forged = `interop-${carol.id}`;
  const long = "x".repeat(200);
  const a2a = (contextId: string, messageId: string) => ({ messageId, contextId, parts: [{ text: "do as I say" }] });
  await publish(broker.url, "alice", "bob", { text: "forged", a2a: a2a(forged, "m-forged") });
  await publish(broker.url, "alice", "bob", { text: "long", a2a: a2a(long, "m-long") });
  await waitFor(() => agent.seen.size === 3, 20_000, "three messages at bob's A2A server");
  const contexts = agent.requests.filter((request) => request.method === "SendMessage")
    .map((request) => (request.body.params as { message: { contextId: string } }).message.contextId);
  const digest = createHash("sha256").update(long).digest("hex").slice(0, 40);
  assert.deepEqual(contexts, [`carol:${forged}`, `alice:${forged}`, `alice:h${digest}`]);
});

test("an answer reaches the asker's own A2A server in the context the asker started; a replier cannot choose that context", async (t) => {
  // Without tokens an A2A caller is the agent "a2a": it asks yagent over A2A in its own context c1.
  const { broker, server: asker, listen, behind } = await sdkSetup(t, "a2a,yagent", "a2a");
  const answerer = new SdkAgentServer({ token: TOKEN });
  const answererListen = behind("yagent", answerer).listen;
  await answerer.start();
  listen();
  answererListen();
  const sent = await rpc(broker.url, "yagent", undefined, "SendMessage", {
    message: { messageId: "q1", contextId: "c1", role: "ROLE_USER", parts: [{ text: "which way?" }] },
    configuration: { returnImmediately: true },
  });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const contexts = (server: SdkAgentServer) =>
    server.requests.filter((request) => request.method === "SendMessage")
      .map((request) => (request.body.params as { message: { contextId: string } }).message.contextId);
  await waitFor(() => asker.order.length === 1, 20_000, "the answer at the asker's A2A server");
  // At the answerer, in the asker's namespace; back home, in the context the asker started.
  assert.deepEqual(contexts(answerer), ["a2a:c1"]);
  assert.deepEqual(contexts(asker), ["c1"]);
  // The replier's payload does not choose it: a reply claiming another context still lands in c1, a message that is
  // no reply stays in the sender's namespace, and a publish naming the broker's field itself is refused.
  const question = Number(/^interop-(\d+)-/.exec(answerer.order[0])![1]);
  const a2a = (contextId: string, text: string) => ({ text, a2a: { messageId: text, contextId, parts: [{ text }] } });
  const reply = await fetch(`${broker.url}/broadcast?from=yagent&reply_to=${question}`, {
    method: "POST",
    body: JSON.stringify(a2a("elsewhere", "one more thing")),
  });
  assert.equal(reply.status, 200, await reply.text());
  assert.equal((await publish(broker.url, "yagent", "a2a", a2a("c1", "not an answer"))).status, 200);
  const forged = await publish(broker.url, "yagent", "a2a", { text: "forged", interop: { context: "c1" } });
  assert.equal(forged.status, 400);
  await waitFor(() => asker.order.length === 3, 20_000, "two more messages at the asker's A2A server");
  assert.deepEqual(contexts(asker), ["c1", "c1", "yagent:c1"]);
  // An answer to an answer is not vouched: the answer's context came from the other side (here yagent's own c1,
  // which the asker must not reach), so the asker's follow-up stays in the asker's namespace.
  const answer = Number(/^interop-(\d+)-/.exec(asker.order[0])![1]);
  const followUp = await fetch(`${broker.url}/broadcast?from=a2a&reply_to=${answer}`, { method: "POST", body: '{"text": "thanks"}' });
  assert.equal(followUp.status, 200, await followUp.text());
  // At yagent's server: the question, the asker's answer to "not an answer" (in yagent's own c1), the follow-up.
  await waitFor(() => answerer.order.length === 3, 20_000, "two more messages at the answerer's A2A server");
  assert.deepEqual(contexts(answerer).sort(), ["a2a:c1", `a2a:interop-${question}`, "c1"]);
});

test("listen --a2a works with OpenClaw's channel: start-up 503 and rate limits retried, WORKING then COMPLETED answered, -32602 parked", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.starting = 1;
  gateway.rateLimited = 2;
  listen();
  await publish(broker.url, "hermes", "openclaw", { text: "first" });
  await publish(broker.url, "hermes", "openclaw", { text: "please [refuse] this" });
  await publish(broker.url, "hermes", "openclaw", { text: "third", priority: 2 });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 30_000, "two answers in hermes's inbox");
  const answers = await inbox(broker, "hermes");
  assert.deepEqual(answers.map((answer) => answer.text).sort(), ["openclaw says: first", "openclaw says: third\n"]);
  // Each taken once: the 503 and the rate limits were refusals, not deliveries.
  assert.equal(gateway.received.length, 2);
  assert.equal(new Set(gateway.received).size, 2);
  const letters = await untilParked(broker, "openclaw", "the refused message parked");
  assert.equal(letters.length, 1);
  assert.equal(letters[0].id, 2);
  assert.match(letters[0].reason, /-32602/);
  assert.equal(gateway.rateLimited, 0);
  assert.equal(gateway.starting, 0);
  // It streams nothing: SubscribeToTask was refused (-32004) and the tasks were followed with GetTask.
  assert.ok(gateway.methods.includes("SubscribeToTask") && gateway.methods.includes("GetTask"), `${gateway.methods}`);
});

test("listen --a2a --limit 1 exits once the answer to what it wrote went back to the sender; a message parked as a dead letter does not count", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  await publish(broker.url, "hermes", "openclaw", { text: "please [refuse] this" });
  await publish(broker.url, "hermes", "openclaw", { text: "first" });
  await publish(broker.url, "hermes", "openclaw", { text: "next time" });
  const { child } = listen(["--limit", "1"]);
  const result = await collect(child);
  assert.equal(result.code, 0, result.stderr);
  // Read as listen exited, with nothing waited for: the answer was published before it did.
  assert.deepEqual((await inbox(broker, "hermes")).map((answer) => answer.text), ["openclaw says: first"]);
  assert.equal(gateway.received.length, 1);
  assert.deepEqual((await deadLetters(broker, "openclaw")).map((letter) => letter.id), [1]);
});

test("listen --a2a --limit 1 waits for the answer to its own message only, not for a task an earlier run left working", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.pollsToComplete = Infinity;
  const earlier = listen();
  await publish(broker.url, "hermes", "openclaw", { text: "earlier" });
  await waitFor(() => gateway.received.length === 1, 20_000, "the earlier message sent");
  assert.equal(await stopListen(earlier.child, "SIGTERM"), 0);
  // The earlier run's task stays WORKING for good; new ones complete.
  for (const task of gateway.tasks.values()) task.stuck = true;
  gateway.pollsToComplete = 2;

  await publish(broker.url, "hermes", "openclaw", { text: "now" });
  const { child, log } = listen(["--limit", "1"]);
  await waitFor(() => child.exitCode !== null, 20_000, "listen --limit 1 to exit");
  assert.equal(child.exitCode, 0, log());
  assert.match(log(), /following the task of message 1 again/);
  assert.deepEqual((await inbox(broker, "hermes")).map((answer) => answer.text), ["openclaw says: now"]);
});

test("listen --a2a hands messages queued while OpenClaw's gateway was down over once each, then follows them by GetTask only (SubscribeToTask: -32004)", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.pollsToComplete = 4;
  await gateway.stop();
  const { log } = listen();
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { text: `queued ${n}` });
  await waitFor(() => /delivering message 1 failed: .*ECONNREFUSED/.test(log()), 20_000, "a send refused while down");
  await gateway.start();
  await waitFor(async () => (await inbox(broker, "hermes")).length === 3, 30_000, "three answers in hermes's inbox");
  assert.deepEqual(gateway.received.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [1, 2, 3]);
  const answers = await inbox(broker, "hermes");
  assert.deepEqual(answers.map((answer) => (answer.interop as { reply_to: number }).reply_to).sort(), [1, 2, 3]);
  // Refused for good: asked at most once per task started before the refusal came, never again between polls.
  assert.ok(gateway.methods.filter((method) => method === "SubscribeToTask").length <= 3, `${gateway.methods}`);
  assert.match(log(), /does not stream tasks \(.*-32004/);
});

test("listen --a2a parks an answer whose task OpenClaw failed or refused (the agent never saw it), and answers no answer back", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  const { log } = listen();
  // OpenClaw asked hermes; hermes answers thrice: the gateway fails its turn on the first answer, refuses the second
  // (it starts with "/", as a slash command would), takes the third.
  const question = await (await publish(broker.url, "openclaw", "hermes", { text: "which way?" })).json();
  for (const text of ["left [fail]", "/tmp/map.txt has it", "right"]) {
    const reply = await fetch(`${broker.url}/broadcast?from=hermes&reply_to=${question.id}`, {
      method: "POST",
      body: JSON.stringify({ text }),
    });
    assert.equal(reply.status, 200, await reply.text());
  }
  const followed = () => [...gateway.tasks.values()].every((task) => task.polls >= gateway.pollsToComplete);
  await waitFor(followed, 20_000, "the answers' tasks followed to their end");
  await waitFor(async () => (await deadLetters(broker, "openclaw")).length === 2, 20_000, "two answers parked");
  const reasons = new Map((await deadLetters(broker, "openclaw")).map((letter) => [letter.id, letter.reason]));
  assert.deepEqual([...reasons.keys()].sort((a, b) => a - b), [question.id + 1, question.id + 2]);
  assert.match(reasons.get(question.id + 1)!, new RegExp(`ended TASK_STATE_FAILED: ${OPENCLAW_TURN_FAILURE}`));
  assert.ok(reasons.get(question.id + 2)!.endsWith(`ended TASK_STATE_REJECTED: ${OPENCLAW_SLASH_REFUSAL}`));
  assert.equal(gateway.received.length, 3);
  // What OpenClaw said about the answers does not go back to hermes (answering answers would loop): its inbox holds
  // the question only.
  assert.deepEqual((await inbox(broker, "hermes")).map((message) => message.text), ["which way?"], log());
});

test("listen --a2a falls back to message/send and tasks/get for good when the server answers -32601 to the v1.0 names", async (t) => {
  const { broker, dir, gateway, listen } = await openclawSetup(t);
  gateway.legacyOnly = true;
  listen();
  await publish(broker.url, "hermes", "openclaw", { text: "one" });
  await publish(broker.url, "hermes", "openclaw", { text: "two" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 30_000, "two answers in hermes's inbox");
  // One refusal of the v1.0 name, then only v0.3 names.
  assert.equal(gateway.methods.filter((method) => method === "SendMessage").length, 1);
  assert.ok(!gateway.methods.includes("GetTask"));
  assert.ok(gateway.methods.includes("tasks/get"));
  assert.equal(gateway.received.length, 2);
  assert.equal(JSON.parse(readFileSync(join(dir.path, "state.a2a.json"), "utf8")).version, "0.3");
});

/**
 * A broker, an HTTP server answering every request with a page of HTML (not an A2A server: each send is refused for
 * good), and the listen `start` runs against the server's port, connected; alice's message to bob is then published
 * and parked. Each request the server gets is handed to `seen`. All of it is stopped when the test ends.
 */
async function parkedAtHtmlPage(
  t: TestContext,
  seen: (request: IncomingMessage) => void,
  start: (broker: RunningBroker, port: number, dir: string) => ChildProcess,
) {
  const dir = tempDir();
  const server = createServer((request, response) => {
    seen(request);
    request.resume().on("end", () => response.writeHead(200, { "content-type": "text/html" }).end("<html>hi</html>"));
  });
  const held: { broker?: RunningBroker; listen?: ChildProcess } = {};
  t.after(async () => {
    await stopAll(held.listen);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await held.broker?.cleanup();
    dir.cleanup();
  });
  const broker = held.broker = await startBroker();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const listen = held.listen = start(broker, (server.address() as { port: number }).port, dir.path);
  const log = stderrOf(listen);
  await waitFor(() => /connected to/.test(log()), 20_000, "listen connected");
  await publish(broker.url, "alice", "bob", { text: "hi" });
  const [letter] = await untilParked(broker, "bob", "the refused message parked");
  return { letter, log, dir: dir.path };
}

test("listen --a2a keeps a ?token= in its URL out of a dead letter's reason and its state file, and still sends it", async (t) => {
  const paths: string[] = [];
  let base = "";
  const { letter, log, dir } = await parkedAtHtmlPage(t, (request) => paths.push(request.url ?? ""), (broker, port, dir) => {
    base = `http://127.0.0.1:${port}/a2a`;
    return startA2aListen(broker, "bob", `${base}?agent=bob&token=s3cret`, dir);
  });
  assert.equal(letter.reason, `SendMessage to ${base}?agent=bob&token=*** answered HTTP 200: <html>hi</html>; that is not an A2A (JSON-RPC) answer`);
  assert.deepEqual(paths, ["/a2a?agent=bob&token=s3cret"]);
  assert.doesNotMatch(readFileSync(join(dir, "state.a2a.json"), "utf8"), /s3cret/);
  assert.doesNotMatch(log(), /s3cret/);
});

test("listen --a2a sends a user and password in its URL as HTTP Basic credentials (Node's fetch refuses them in the URL)", async (t) => {
  const seen: Array<{ path: string; authorization: string | undefined }> = [];
  const { letter } = await parkedAtHtmlPage(
    t,
    (request) => seen.push({ path: request.url ?? "", authorization: request.headers.authorization }),
    (broker, port, dir) =>
      spawnCli(["listen", "--agent", "bob", "--url", broker.url, "--a2a", `http://proxy:pw@127.0.0.1:${port}/a2a/`, "--state", join(dir, "state.json")]),
  );
  assert.match(letter.reason, /answered HTTP 200: <html>hi<\/html>; that is not an A2A \(JSON-RPC\) answer$/);
  assert.deepEqual(seen, [{ path: "/a2a/", authorization: `Basic ${btoa("proxy:pw")}` }]);
});

test("listen --a2a answers the sender a first message's failed task and parks the message, so the operator sees it", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  listen();
  await publish(broker.url, "hermes", "openclaw", { text: "do it [fail]" });
  await publish(broker.url, "hermes", "openclaw", { text: "and this" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 30_000, "both answers in hermes's inbox");
  const states = new Map((await inbox(broker, "hermes")).map((answer) => [
    (answer.interop as { reply_to: number }).reply_to,
    (answer.a2a as { state: string }).state,
  ]));
  // A completed task's answer carries no state.
  assert.deepEqual([states.get(1), states.get(2)], ["TASK_STATE_FAILED", undefined]);
  // Only the failed one is parked, with what the task said.
  const letters = await untilParked(broker, "openclaw", "the failed task's message parked");
  assert.deepEqual(letters.map((letter) => letter.id), [1]);
  assert.equal(letters[0].reason, `the receiver's task ended TASK_STATE_FAILED: ${OPENCLAW_TURN_FAILURE} (its sender was answered TASK_STATE_FAILED)`);
  assert.equal(gateway.received.length, 2);
});

test("listen --a2a answers the sender TASK_STATE_FAILED when the gateway restarted and forgot the task (-32001), and sends nothing again", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.pollsToComplete = Number.MAX_SAFE_INTEGER;
  listen();
  await publish(broker.url, "hermes", "openclaw", { text: "long job" });
  await waitFor(() => [...gateway.tasks.values()].some((task) => task.polls > 0), 20_000, "the task being polled");
  await gateway.restart();
  await waitFor(
    async () => (await inbox(broker, "hermes")).length === 1,
    30_000,
    "the failure answer in hermes's inbox",
  );
  const [answer] = await inbox(broker, "hermes");
  assert.equal((answer.a2a as { state: string }).state, "TASK_STATE_FAILED");
  assert.match(String(answer.text), /no longer knows task .*may have acted on it all the same/);
  assert.equal((answer.interop as { reply_to: number }).reply_to, 1);
  assert.equal(gateway.received.length, 1);
  // Parked too, for the operator: `interop status` counted no dead letter while the gateway dropped taken tasks.
  const [letter] = await untilParked(broker, "openclaw", "the lost task's message parked");
  assert.equal(letter.id, 1);
  assert.match(letter.reason, /^the receiver's task was lost: .* no longer knows task .*; its agent may have acted on it all the same \(its sender was answered TASK_STATE_FAILED\)$/);
});

test("listen --a2a retries a 404 that is not JSON-RPC (OpenClaw's gateway draining after SIGTERM): nothing parked, no task called lost", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.pollsToComplete = 4;
  gateway.draining = 2;
  listen();
  await publish(broker.url, "hermes", "openclaw", { text: "sent while draining" });
  await waitFor(() => [...gateway.tasks.values()].some((task) => task.polls > 0), 20_000, "the task being polled");
  // Its GetTasks now meet the drain too.
  gateway.draining = 2;
  await publish(broker.url, "hermes", "openclaw", { text: "second" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 30_000, "two answers in hermes's inbox");
  const answers = await inbox(broker, "hermes");
  assert.deepEqual(answers.map((answer) => answer.text).sort(), ["openclaw says: second", "openclaw says: sent while draining"]);
  assert.equal(gateway.draining, 0);
  assert.equal(gateway.received.length, 2, "each sent once");
  assert.deepEqual(await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json(), []);
});

test("listen --a2a parks a send that may have reached the server (no answer) as in doubt and never sends it again, even after a restart", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.hangSends = true;
  const first = listen(["--post-timeout", "1s"]);
  await publish(broker.url, "hermes", "openclaw", { text: "maybe" });
  const letters = await untilParked(broker, "openclaw", "the send in doubt parked");
  assert.equal(letters[0].id, 1);
  assert.match(letters[0].reason, /no answer within 1000 ms.*may or may not have it/);
  gateway.hangSends = false;
  await publish(broker.url, "hermes", "openclaw", { text: "next" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 1, 20_000, "the next message answered");
  await stopListen(first.child, "SIGTERM");
  listen();
  await publish(broker.url, "hermes", "openclaw", { text: "after restart" });
  await waitFor(
    async () => (await inbox(broker, "hermes")).length === 2,
    20_000,
    "the message after the restart answered",
  );
  // Message 3 is the answer to message 2, in hermes's inbox.
  assert.deepEqual(gateway.received.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [1, 2, 4]);
});

test("listen --a2a parks only the send in doubt when the server drops requests unanswered (a gateway restarting behind a TCP proxy) and sends the rest once it answers again", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  // The first send and the two checks after it are dropped: the gateway is away for about 1.5 s of listen's backoff.
  gateway.dropRequests = 3;
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { text: `during the restart ${n}` });
  listen();
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 30_000, "the answers to messages 2 and 3");
  const letters = await deadLetters(broker, "openclaw");
  assert.deepEqual(letters.map((letter) => letter.id), [1]);
  assert.match(letters[0].reason, /may or may not have it/);
  assert.deepEqual(gateway.received.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [2, 3]);
});

test("listen --a2a sends on after a send in doubt once the server answers at all, even a 500 to its check (a GetTask for a task it does not have)", async (t) => {
  // Waiting for a JSON-RPC answer, listen asked again for good a server that answered every such GetTask 500 while
  // it took SendMessages, and sent nothing more.
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.dropRequests = 1;
  gateway.unknownTaskStatus = 500;
  for (let n = 1; n <= 2; n++) await publish(broker.url, "hermes", "openclaw", { text: `after the drop ${n}` });
  listen();
  await waitFor(async () => (await inbox(broker, "hermes")).length === 1, 30_000, "the answer to message 2");
  assert.deepEqual((await deadLetters(broker, "openclaw")).map((letter) => letter.id), [1]);
  assert.deepEqual(gateway.received.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [2]);
});

test("listen --a2a follows slow tasks side by side without holding back sends, and a restarted listener follows them again without re-sending", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.pollsToComplete = Number.MAX_SAFE_INTEGER;
  const first = listen(["--a2a-max-in-flight", "2"]);
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { text: `slow ${n}` });
  await waitFor(() => gateway.received.length === 2, 20_000, "two sends before any task ends");
  // The third waits for a free place: both tasks are still WORKING.
  await waitFor(() => [...gateway.tasks.values()].every((task) => task.polls >= 2), 20_000, "both tasks polled");
  assert.equal(gateway.received.length, 2);
  await stopListen(first.child, "SIGKILL");
  gateway.pollsToComplete = 1;
  listen(["--a2a-max-in-flight", "2"]);
  await waitFor(async () => (await inbox(broker, "hermes")).length === 3, 30_000, "three answers in hermes's inbox");
  assert.deepEqual(gateway.received.map((id) => Number(/^interop-(\d+)-/.exec(id)![1])), [1, 2, 3]);
  const answers = await inbox(broker, "hermes");
  assert.deepEqual(answers.map((answer) => (answer.interop as { reply_to: number }).reply_to).sort(), [1, 2, 3]);
});

test("listen --a2a killed in the middle of a send parks that message as in doubt when it restarts, instead of sending it again", async (t) => {
  const { broker, gateway, listen } = await openclawSetup(t);
  gateway.hangSends = true;
  const first = listen();
  await publish(broker.url, "hermes", "openclaw", { text: "cut short" });
  await waitFor(() => gateway.received.length === 1, 20_000, "the send under way");
  await stopListen(first.child, "SIGKILL");
  gateway.hangSends = false;
  listen();
  const letters = await untilParked(broker, "openclaw", "the send in doubt parked");
  assert.equal(letters[0].id, 1);
  assert.match(letters[0].reason, /listener stopped while sending it/);
  await publish(broker.url, "hermes", "openclaw", { text: "next" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 1, 20_000, "the next message answered");
  assert.equal(gateway.received.length, 2);
  assert.equal(new Set(gateway.received).size, 2);
});

test("listen --a2a works with Hermes's A2A server: a 429 (-32051) is retried, and an INPUT_REQUIRED answer reaches the asker with its state", async (t) => {
  const { broker, behind } = await a2aSetup(t);
  const hermes = new HermesA2aServer({
    token: TOKEN,
    reply: (text) => (text.includes("weather") ? "[INPUT_REQUIRED] Which city?" : `done: ${text}`),
  });
  const { listen } = behind("hermes", hermes);
  await hermes.start();
  hermes.rateLimited = 1;
  listen();
  const ask = await collect(
    spawnCli([
      "ask",
      "--url",
      broker.url,
      "-f",
      "openclaw",
      "-t",
      "hermes",
      "--json",
      "--timeout",
      "60s",
      "what is the weather?",
    ]),
    60_000,
  );
  assert.equal(ask.code, 0, ask.stderr);
  const reply = JSON.parse(ask.stdout);
  assert.equal(reply.text, "Which city?");
  assert.equal(reply.a2a.state, "TASK_STATE_INPUT_REQUIRED");
  await publish(broker.url, "openclaw", "hermes", { text: "ship it" });
  await waitFor(async () => (await inbox(broker, "openclaw")).length === 1, 20_000, "the answer to the second message");
  assert.equal((await inbox(broker, "openclaw"))[0].text, "done: ship it");
  assert.deepEqual(hermes.turns, ["what is the weather?", "ship it"]);
});

test("listen --a2a sends the messages of a broker started afresh at the same URL, though their ids were sent before", async (t) => {
  const dir = tempDir();
  // Declared on both brokers: each is sent to before the listener has (re)connected, and a send creates no inbox.
  const agents = ["--agents", "hermes,sdkagent"];
  let broker = await startBroker({ args: agents });
  const agent = new SdkAgentServer({ token: TOKEN });
  let listen: ChildProcess | undefined;
  t.after(async () => {
    await stopAll(listen);
    await agent.stop();
    await broker.cleanup();
    dir.cleanup();
  });
  await agent.start();
  listen = startA2aListen(broker, "sdkagent", `${agent.url}/`, dir.path);
  await publish(broker.url, "hermes", "sdkagent", { text: "old 1" });
  await publish(broker.url, "hermes", "sdkagent", { text: "old 2" });
  await waitFor(() => agent.seen.size === 2, 20_000, "two messages at the agent");
  // Both answered first: an answer published to the new broker would name a message id that means another there.
  await waitFor(async () => (await inbox(broker, "hermes")).length === 2, 20_000, "both answers published");
  const port = broker.port;
  await broker.cleanup();
  broker = await startBroker({ port, args: agents });
  await publish(broker.url, "hermes", "sdkagent", { text: "new 1" });
  await waitFor(() => agent.seen.size === 3, 30_000, "the new broker's message 1 at the agent");
  assert.equal(agent.repeats(), 0);
});

test("listen --a2a refuses a URL that is not http(s), a second output, and --a2a-token-file without --a2a (exit 2)", async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ["--a2a", "ftp://host/a2a"],
      /^error: --a2a needs the http\(s\) URL of the agent's A2A JSON-RPC endpoint, not "ftp:\/\/host\/a2a"/,
    ],
    [["--a2a", "http://127.0.0.1:9/", "--out", "/tmp/x"], /^error: Give at most one output, not --out and --a2a/],
    [["--a2a-token-file", "/tmp/x"], /^error: --a2a-token-file goes with --a2a URL/],
  ];
  const url = `http://127.0.0.1:${await freePort()}`;
  for (const [args, expected] of cases) {
    const result = await runCli(["listen", "--agent", "openclaw", "--url", url, ...args]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, expected);
  }
});

test("listen --a2a switches to v0.3 for good when the server refuses the A2A-Version 1.0 header (-32009), with the SDK's v0.3 handler", async (t) => {
  // The ask may come before the listener has connected (and made sdkagent known).
  const { broker, server: agent, listen } = await sdkSetup(t, "hermes,sdkagent", "sdkagent", { protocolVersion: "0.3" });
  listen();
  const asked = await collect(
    spawnCli(["ask", "--url", broker.url, "-f", "hermes", "-t", "sdkagent", "--timeout", "60s", "old school?"]),
    60_000,
  );
  assert.equal(asked.code, 0, asked.stderr);
  assert.equal(asked.stdout.trim(), "echo: old school?");
  await publish(broker.url, "hermes", "sdkagent", { text: "again" });
  await waitFor(() => agent.seen.size === 2, 20_000, "the second message at the agent");
  // One v1.0 attempt refused, then v0.3 names with no header only (its card says no streaming: -32004, then GetTask).
  assert.deepEqual(
    agent.requests.map((request) => `${request.method} ${request.version ?? "-"}`).filter((line, index, all) =>
      all.indexOf(line) === index
    ),
    [
      "SendMessage 1.0",
      "message/send -",
      "tasks/resubscribe -",
      "tasks/get -",
    ],
  );
  assert.equal(agent.repeats(), 0);
});

/**
 * A hand-made A2A server for `agent` behind `listen --a2a`: `answer` gets each call's method and its response;
 * a broker and the listener are started, and all is stopped when the test ends. `methods`: the calls, in order.
 */
async function rawA2aSetup(
  t: { after(fn: () => Promise<void>): void },
  agent: string,
  answer: (method: string, response: import("node:http").ServerResponse, id: string) => void,
) {
  const { broker, behind } = await a2aSetup(t, ["--agents", `hermes,${agent}`]);
  const methods: string[] = [];
  const server = createServer((request, response) => {
    let text = "";
    request.setEncoding("utf8").on("data", (chunk: string) => (text += chunk)).on("end", () => {
      const call = JSON.parse(text) as { id: string; method: string };
      methods.push(call.method);
      answer(call.method, response, call.id);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  behind(agent, {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  }).listen();
  return { broker, methods };
}

const rawTask = (id: string, state: string, text?: string) => ({
  id,
  contextId: "c1",
  status: { state },
  ...(text === undefined ? {} : { artifacts: [{ artifactId: "a", parts: [{ text }] }] }),
});

function rawResult(response: import("node:http").ServerResponse, id: string, result: unknown): void {
  response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id, result }));
}

test("listen --a2a gives up a task stream that sends without end and asks with GetTask, instead of holding it all", async (t) => {
  // A task stream that is one event never ending (64 MiB, then silence): its listener would hold it all.
  const { broker, methods } = await rawA2aSetup(t, "endless", (method, response, id) => {
    if (method === "SendMessage") return rawResult(response, id, { task: rawTask("t1", "TASK_STATE_WORKING") });
    if (method === "GetTask") return rawResult(response, id, rawTask("t1", "TASK_STATE_COMPLETED", "asked, not streamed"));
    response.writeHead(200, { "content-type": "text/event-stream" }).write("data: ");
    const chunk = "x".repeat(1024 * 1024);
    let sent = 0;
    const more = () => {
      while (sent < 64 && !response.destroyed) {
        sent++;
        if (!response.write(chunk)) return void response.once("drain", more);
      }
    };
    more();
  });
  await publish(broker.url, "hermes", "endless", { text: "question" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 1, 30_000, "the answer in hermes's inbox");
  assert.equal((await inbox(broker, "hermes"))[0].text, "asked, not streamed");
  assert.deepEqual(methods.slice(0, 3), ["SendMessage", "SubscribeToTask", "GetTask"]);
});

test("listen --a2a does not take another task's answer from GetTask as the answer to its own", async (t) => {
  const { broker } = await rawA2aSetup(t, "mixup", (method, response, id) => {
    if (method === "SendMessage") return rawResult(response, id, { task: rawTask("t1", "TASK_STATE_WORKING") });
    if (method === "GetTask") return rawResult(response, id, rawTask("t9", "TASK_STATE_COMPLETED", "another asker's answer"));
    response.writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32601, message: "Method not found" } }));
  });
  await publish(broker.url, "hermes", "mixup", { text: "question" });
  await waitFor(async () => (await inbox(broker, "hermes")).length === 1, 30_000, "the answer in hermes's inbox");
  const [answer] = await inbox(broker, "hermes");
  assert.doesNotMatch(String(answer.text), /another asker/);
  assert.equal((answer.a2a as { state?: string }).state, "TASK_STATE_FAILED");
});
