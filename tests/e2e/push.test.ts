import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";
import { stopAll } from "../helpers/listener.ts";
import { OPENCLAW_HOOKS_MAX_BODY_BYTES, OpenclawGateway } from "../helpers/openclaw_gateway.ts";

interface Delivery {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A local receiver standing in for an agent's webhook; `respond` decides each answer (undefined: hang). */
class Receiver {
  accepted = new Map<string, Delivery>();
  attempts = 0;
  /** When each request arrived (ms). */
  arrivals: number[] = [];
  port = 0;
  #server: Server | undefined;
  #respond: (delivery: Delivery, attempt: number) => number | undefined;

  constructor(respond: (delivery: Delivery, attempt: number) => number | undefined) {
    this.#respond = respond;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.#server = createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk)).on("end", () => {
        const delivery = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body };
        this.arrivals.push(Date.now());
        const status = this.#respond(delivery, ++this.attempts);
        if (status === undefined) return; // hang: never answer
        const key = String(req.headers["idempotency-key"]);
        if (status < 300 && !this.accepted.has(key)) this.accepted.set(key, delivery);
        // A 429 says when to come back, as OpenClaw's hooks do after repeated failures; a redirect points at a page.
        const headers = status === 429 ? { "retry-after": "2" } : status >= 300 && status < 400 ? { location: "/landing" } : {};
        res.writeHead(status, headers).end(status < 300 ? "{}" : "nope");
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(this.port, "127.0.0.1", resolve));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test("listen --post survives failing, hanging and restarting receivers: every message once, in order", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const receiver = new Receiver((_delivery, attempt) => (attempt <= 2 ? 500 : attempt === 4 ? undefined : 200));
  let listen: ChildProcess | undefined;
  try {
    await receiver.start();
    listen = spawnCli([
      "listen", "--agent", "openclaw", "--url", broker.url, "--post", `${receiver.url}/inbox`,
      "--post-timeout", "1s", "--state", join(dir.path, "state.json"),
    ]);
    for (let n = 1; n <= 15; n++) await publish(broker.url, "hermes", "openclaw", { n });
    await waitFor(() => receiver.accepted.size >= 5, 20_000, "the first pushes");
    await receiver.stop();
    for (let n = 16; n <= 30; n++) await publish(broker.url, "hermes", "openclaw", { n });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await receiver.start();
    await waitFor(() => receiver.accepted.size >= 30, 30_000, "all 30 pushes");
    const deliveries = [...receiver.accepted.values()];
    assert.deepEqual(deliveries.map((delivery) => JSON.parse(delivery.body).n), Array.from({ length: 30 }, (_, i) => i + 1));
    for (const delivery of deliveries) {
      const { id, timestamp } = JSON.parse(delivery.body).interop;
      const key = `${id}-${Date.parse(timestamp).toString(36)}`;
      assert.equal(delivery.headers["idempotency-key"], key);
      assert.equal(delivery.headers["x-request-id"], key);
    }
    assert.ok(receiver.attempts > 30, "failures and the hang were retried");
  } finally {
    await stopAll(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("a receiver that remembers delivery keys takes the first messages of a new data dir behind the same URL", async (t) => {
  // As Hermes's webhook does (X-Request-ID, an hour): ids start again at 1 in a new data dir, keys must not.
  const receiver = new Receiver(() => 200);
  const stop = testStops(t);
  const { broker: first } = await pushTo({ after: stop }, receiver);
  for (const n of [1, 2]) await publish(first.url, "hermes", "openclaw", { text: `old store ${n}` });
  await waitFor(() => receiver.accepted.size === 2, 15_000, "the first store's pushes");
  await first.cleanup();
  const broker = await startBroker({ port: first.port });
  stop(() => broker.cleanup());
  for (const n of [1, 2]) await publish(broker.url, "hermes", "openclaw", { text: `new store ${n}` });
  await waitFor(() => receiver.accepted.size === 4, 30_000, "the new store's pushes taken as new");
  assert.deepEqual([...receiver.accepted.values()].map((delivery) => JSON.parse(delivery.body).text), ["old store 1", "old store 2", "new store 1", "new store 2"]);
});

test("the OpenClaw preset posts /hooks/agent for agent main, or /hooks/wake only when asked, with the hooks token", async () => {
  // Declared: the publishes may come before the listeners connect.
  const broker = await startBroker({ args: ["--agents", "hermes,leo,leo2"] });
  const dir = tempDir();
  const receiver = new Receiver(() => 200);
  let agentTurn: ChildProcess | undefined;
  let wake: ChildProcess | undefined;
  try {
    await receiver.start();
    const tokenFile = join(dir.path, "token");
    writeFileSync(tokenFile, "hooks-secret-token\n");
    agentTurn = spawnCli([
      "listen", "--agent", "leo", "--url", broker.url, "--openclaw", `${receiver.url}/`, "--push-token-file", tokenFile,
      "--state", join(dir.path, "1"),
    ]);
    wake = spawnCli(
      ["listen", "--agent", "leo2", "--url", broker.url, "--openclaw", receiver.url, "--openclaw-wake", "--state", join(dir.path, "2")],
      { OPENCLAW_HOOKS_TOKEN: "hooks-secret-token" },
    );
    await publish(broker.url, "hermes", "leo", { text: "take a turn" });
    await publish(broker.url, "hermes", "leo2", { text: "wake up" });
    await waitFor(() => receiver.accepted.size === 2, 15_000, "both hooks");
    const byPath = new Map([...receiver.accepted.values()].map((delivery) => [delivery.path, delivery]));
    const agentCall = byPath.get("/hooks/agent")!;
    assert.equal(agentCall.headers.authorization, "Bearer hooks-secret-token");
    assert.deepEqual(JSON.parse(agentCall.body), { message: "Message 1 from hermes via interop: take a turn", agentId: "main" });
    assert.match(String(agentCall.headers["idempotency-key"]), /^1-[0-9a-z]+$/);
    const wakeCall = byPath.get("/hooks/wake")!;
    assert.equal(wakeCall.headers.authorization, "Bearer hooks-secret-token");
    assert.deepEqual(JSON.parse(wakeCall.body), { text: "Message 2 from hermes via interop: wake up", mode: "now" });
  } finally {
    await stopAll(agentTurn, wake);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

/** The dead letters parked for `agent`, once there are `count` of them. */
async function deadLetters(url: string, agent: string, count: number): Promise<Array<{ id: number; reason: string }>> {
  return await waitFor(async () => {
    const letters = await (await fetch(`${url}/dead-letters?agent=${agent}`)).json();
    return letters.length >= count ? letters : undefined;
  }, 15_000, `${count} dead letter(s) for ${agent}`);
}

/**
 * A broker (with `brokerArgs`) and an OpenClaw gateway whose hooks token is "hooks-secret-token"; `listen(agent,
 * flags)` starts a listen pushing that agent's inbox to the gateway with the token and `flags`. All of it is
 * stopped when the test ends.
 */
async function behindGateway(t: TestContext, gateway: OpenclawGateway, brokerArgs: string[] = []) {
  const dir = tempDir();
  const listens: ChildProcess[] = [];
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await stopAll(...listens);
    await gateway.stop();
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker({ args: brokerArgs });
  await gateway.start();
  const listen = (agent: string, flags: string[]) => {
    const child = spawnCli(
      ["listen", "--agent", agent, "--url", broker.url, "--openclaw", gateway.url, ...flags, "--state", join(dir.path, agent)],
      { OPENCLAW_HOOKS_TOKEN: GATEWAY_TOKEN },
    );
    listens.push(child);
    return child;
  };
  return { broker, listen };
}

const GATEWAY_TOKEN = "hooks-secret-token";

test("listen --openclaw starts one turn per message on a multi-agent gateway through a 409 and a replay, and parks one over 262,144 bytes", async (t) => {
  const gateway = new OpenclawGateway({ token: GATEWAY_TOKEN, agents: ["main", "ops"] });
  gateway.conflicts = 1;
  gateway.hangs = 1;
  const { broker, listen } = await behindGateway(t, gateway);
  listen("openclaw", ["--post-timeout", "1s"]);
  const texts = Array.from({ length: 12 }, (_, i) => (i === 5 ? "x".repeat(OPENCLAW_HOOKS_MAX_BODY_BYTES) : `message ${i + 1}`));
  for (const text of texts) await publish(broker.url, "hermes", "openclaw", { text });

  const [letter] = await deadLetters(broker.url, "openclaw", 1);
  await waitFor(() => gateway.runs.length >= 11, 20_000, "11 agent turns");
  assert.equal(letter.id, 6);
  assert.match(letter.reason, /over OpenClaw's hooks body limit of 262,144 bytes/);
  const expected = texts.map((text, i) => ({ id: i + 1, text })).filter(({ id }) => id !== 6);
  assert.deepEqual(gateway.runs.map((run) => run.message), expected.map(({ id, text }) => `Message ${id} from hermes via interop: ${text}`));
  gateway.runs.forEach((run, i) => assert.match(run.idempotencyKey ?? "", new RegExp(`^${expected[i].id}-[0-9a-z]+$`)));
  assert.ok(gateway.runs.every((run) => run.agentId === "main"));
  assert.equal(gateway.answered.filter((status) => status === 409).length, 1, "the 409 was retried");
  assert.equal(gateway.replays, 1, "the unanswered turn was replayed, not started twice");
});

for (const wait of [true, false]) {
  const flags = wait ? ["--openclaw-wait"] : [];
  const title = wait
    ? "listen --openclaw-wait moves on once each turn ended: a gateway killed with turns queued runs every message once after its restart"
    : "listen --openclaw without --openclaw-wait moves on once each turn was taken: a gateway killed with turns queued drops them (the documented loss)";
  test(title, async (t) => {
    // The real gateway (OpenClaw 2026.9.6) answers 200 once it took a turn, keeps the turns it took in memory, and
    // a SIGKILL drops them (red team 57: 3 of 40). With waitForCompletion it answers once the turn ended.
    const gateway = new OpenclawGateway({ token: GATEWAY_TOKEN, turnMs: 150 });
    const { broker, listen } = await behindGateway(t, gateway);
    // All pending before listen starts: without the flag every push is taken at once, and turns queue behind.
    const texts = Array.from({ length: 8 }, (_, i) => `turn ${i + 1}`);
    for (const text of texts) await publish(broker.url, "hermes", "openclaw", { text });
    listen("openclaw", flags);
    await waitFor(() => gateway.ended.length >= 3, 15_000, "three turns ended");
    await gateway.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await gateway.start();
    const ended = () => gateway.ended.map((run) => /: (turn \d+)$/.exec(run.message)![1]);
    if (!wait) {
      await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.pending === 0, 10_000, "listen past all");
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(ended().length < texts.length, `turns ended: ${ended().join(", ")}`);
      return;
    }
    await waitFor(() => gateway.ended.length >= texts.length, 20_000, "every turn to end");
    assert.deepEqual(ended(), texts, "each message's turn ended once, in order");
  });
}

test("on a multi-agent gateway the lossy --openclaw-wake needs --openclaw-agent, and a dead letter says so", async (t) => {
  const gateway = new OpenclawGateway({ token: GATEWAY_TOKEN, agents: ["main", "ops"] });
  const { broker, listen } = await behindGateway(t, gateway, ["--agents", "hermes,leo,leo2"]);
  listen("leo", ["--openclaw-wake"]);
  listen("leo2", ["--openclaw-wake", "--openclaw-agent", "ops"]);
  await publish(broker.url, "hermes", "leo", { text: "wake anyone" });
  await publish(broker.url, "hermes", "leo2", { text: "wake ops" });
  const [letter] = await deadLetters(broker.url, "leo", 1);
  assert.match(letter.reason, /answered HTTP 400: .*agentId is required when multiple agents are configured/);
  await waitFor(() => gateway.wakes.length === 1, 15_000, "the wake for ops");
  assert.deepEqual(gateway.wakes, [{ text: "Message 2 from hermes via interop: wake ops", mode: "now", agentId: "ops" }]);
});

test("a 413 from the gateway parks the message with the size of the body it refused", async (t) => {
  const gateway = new OpenclawGateway({ token: GATEWAY_TOKEN });
  const { broker, listen } = await behindGateway(t, gateway);
  // The gateway's hooks.maxBodyBytes is lower than listen was told: the gateway's 413 is what stops the message.
  listen("openclaw", ["--openclaw-max-body", "512KiB"]);
  await publish(broker.url, "hermes", "openclaw", { text: "y".repeat(OPENCLAW_HOOKS_MAX_BODY_BYTES) });
  await publish(broker.url, "hermes", "openclaw", { text: "small one" });
  const [letter] = await deadLetters(broker.url, "openclaw", 1);
  assert.match(letter.reason, /answered HTTP 413: .*payload too large.*; the request body was 262,2\d\d bytes, more than the receiver takes/);
  await waitFor(() => gateway.runs.length === 1, 15_000, "the small message");
  assert.equal(gateway.runs[0].message, "Message 2 from hermes via interop: small one");
});

test("the Hermes webhook preset signs each push, and its rendered message wins over the sender's own message field", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const secret = "route-secret";
  // Verifies like Hermes's webhook adapter: HMAC-SHA256 of "<timestamp>.<body>", timestamp within 300 s.
  const receiver = new Receiver((delivery) => {
    const timestamp = String(delivery.headers["x-webhook-timestamp"]);
    const expected = createHmac("sha256", secret).update(`${timestamp}.${delivery.body}`).digest("hex");
    const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) <= 300;
    return delivery.headers["x-webhook-signature-v2"] === expected && fresh ? 202 : 401;
  });
  let listen: ChildProcess | undefined;
  try {
    await receiver.start();
    listen = spawnCli(
      ["listen", "--agent", "hermes", "--url", broker.url, "--hermes-webhook", `${receiver.url}/webhooks/interop`, "--state", join(dir.path, "s")],
      { HERMES_WEBHOOK_SECRET: secret },
    );
    await publish(broker.url, "openclaw", "hermes", { text: "signed hello", priority: "high", message: "the sender's own" });
    await waitFor(() => receiver.accepted.size === 1, 15_000, "the signed push");
    const [delivery] = receiver.accepted.values();
    assert.equal(delivery.path, "/webhooks/interop");
    assert.match(String(delivery.headers["x-request-id"]), /^1-[0-9a-z]+$/);
    const body = JSON.parse(delivery.body);
    assert.equal(body.message, "Message 1 from openclaw via interop: signed hello");
    assert.equal(body.text, "signed hello");
    assert.equal(body.priority, "high");
    assert.equal(body.interop.from, "openclaw");
    assert.deepEqual(body.payload, { text: "signed hello", priority: "high", message: "the sender's own" });
  } finally {
    await stopAll(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("a push refused with a 4xx is parked as a dead letter, shown in status, and the rest go on", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const receiver = new Receiver((delivery) => (JSON.parse(delivery.body).n === 2 ? 422 : 200));
  let listen: ChildProcess | undefined;
  let stderr = "";
  try {
    await receiver.start();
    listen = spawnCli(["listen", "--agent", "openclaw", "--url", broker.url, "--post", receiver.url, "--state", join(dir.path, "s")]);
    listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { n });
    await waitFor(() => receiver.accepted.size === 2, 15_000, "messages 1 and 3");
    assert.deepEqual([...receiver.accepted.values()].map((delivery) => JSON.parse(delivery.body).n), [1, 3]);
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.dead_letters === 1, 5000, "status");
    const [letter] = await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json();
    assert.equal(letter.id, 2);
    assert.match(letter.reason, /answered HTTP 422: nope/);
    assert.equal(letter.message.n, 2);
    assert.match(stderr, /message 2 refused for good .*parking it as a dead letter/);
  } finally {
    await stopAll(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("a push URL's ?token= is sent, but kept out of a dead letter's reason and of listen's log", async (t) => {
  const paths: string[] = [];
  const receiver = new Receiver((delivery) => (paths.push(delivery.path), 422));
  const { broker, stderr } = await pushTo(t, receiver, (started) => `${started.url}/in?token=s3cret&agent=openclaw`, ["--verbose"]);
  await publish(broker.url, "hermes", "openclaw", { n: 1 });
  const [letter] = await deadLetters(broker.url, "openclaw", 1);
  assert.equal(letter.reason, `${receiver.url}/in?token=***&agent=openclaw answered HTTP 422: nope`);
  assert.deepEqual(paths, ["/in?token=s3cret&agent=openclaw"]);
  await waitFor(() => /parking it as a dead letter/.test(stderr()), 5000, "the parking logged");
  assert.doesNotMatch(stderr(), /s3cret/);
});

test("a push URL's user and password go as HTTP Basic credentials (Node's fetch refuses them in the URL), its path as given", async (t) => {
  const receiver = new Receiver(() => 200);
  const { broker } = await pushTo(t, receiver, (started) => `http://hooks:p%40ss@127.0.0.1:${started.port}/in/`);
  await publish(broker.url, "hermes", "openclaw", { n: 1 });
  await waitFor(() => receiver.accepted.size === 1, 15_000, "the push");
  const [delivery] = receiver.accepted.values();
  assert.equal(delivery.path, "/in/");
  assert.equal(delivery.headers.authorization, `Basic ${btoa("hooks:p@ss")}`);
});

/**
 * A broker and a listen pushing openclaw's inbox to `receiver` (at the URL `at` makes of it once it listens, with
 * listen's `extra` flags), stopped with the receiver when the test ends; `stderr()` is what listen logged so far.
 */
async function pushTo(
  t: { after(fn: () => Promise<void>): void },
  receiver: Receiver,
  at: (receiver: Receiver) => string = (started) => started.url,
  extra: string[] = [],
): Promise<{ broker: RunningBroker; stderr(): string }> {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  t.after(async () => {
    await stopAll(listen);
    await receiver.stop();
    await broker?.cleanup();
    dir.cleanup();
  });
  await receiver.start();
  broker = await startBroker();
  listen = spawnCli(["listen", "--agent", "openclaw", "--url", broker.url, "--post", at(receiver), "--state", join(dir.path, "s"), ...extra]);
  let stderr = "";
  listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return { broker, stderr: () => stderr };
}

test("a push answered 401 or 404 (a wrong token or URL) is retried, not parked, and a 429 is not retried before its Retry-After", async (t) => {
  // The receiver's setup is wrong for the first attempts (as when OpenClaw's hooks token changed), then it is
  // rate limited once, then it takes everything.
  const receiver = new Receiver((_delivery, attempt) => (attempt <= 2 ? 401 : attempt === 3 ? 404 : attempt === 4 ? 429 : 200));
  const { broker, stderr } = await pushTo(t, receiver);
  for (let n = 1; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { n });
  await waitFor(() => receiver.accepted.size === 3, 20_000, "all three pushes");
  assert.deepEqual([...receiver.accepted.values()].map((delivery) => JSON.parse(delivery.body).n), [1, 2, 3]);
  assert.equal((await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json()).length, 0, "no dead letters");
  assert.match(stderr(), /answered HTTP 401: nope; check the push URL and token/);
  const afterLimit = receiver.arrivals[4] - receiver.arrivals[3];
  assert.ok(afterLimit >= 1900, `the retry after a 429 with Retry-After: 2 came after ${afterLimit} ms`);
});

// Red team 63 (OpenClaw's hooks token): the file fixed, listen went on with the token it read at its start, 401 until restarted.
test("a push token fixed in its file reaches the running listen at its next try: the message refused 401 goes through", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const tokenFile = join(dir.path, "hooks-token");
  writeFileSync(tokenFile, "old-token\n", { mode: 0o600 });
  const receiver = new Receiver((delivery) => (delivery.headers.authorization === "Bearer new-token" ? 200 : 401));
  const { broker, stderr } = await pushTo(t, receiver, undefined, ["--push-token-file", tokenFile]);
  await publish(broker.url, "hermes", "openclaw", { n: 1 });
  // Said once listen read the answer, which comes a moment after the receiver counted the attempt.
  await waitFor(() => /answered HTTP 401/.test(stderr()), 20_000, "a push refused, and said");
  writeFileSync(tokenFile, "new-token\n");
  await waitFor(() => receiver.accepted.size === 1, 30_000, "the push with the new token");
  await publish(broker.url, "hermes", "openclaw", { n: 2 });
  await waitFor(() => receiver.accepted.size === 2, 20_000, "the next push");
  assert.deepEqual([...receiver.accepted.values()].map((delivery) => JSON.parse(delivery.body).n), [1, 2]);
});

// Red team 63 (OpenClaw's hooks refusing): the stream went on carrying messages listen could not hand on, counted
// delivered: the broker showed none pending and the agent online, and --retention then removed them.
test("a listen whose receiver keeps failing lets its stream go: what comes meanwhile is pending, and all of it comes once the receiver takes it", async (t) => {
  let down = true;
  const receiver = new Receiver(() => (down ? 503 : 200));
  const { broker, stderr } = await pushTo(t, receiver);
  const agentStatus = async () => (await (await fetch(`${broker.url}/status`)).json()).agents.openclaw;
  await waitFor(async () => (await agentStatus())?.streams === 1, 20_000, "listen's stream");
  await publish(broker.url, "hermes", "openclaw", { n: 1 });
  await waitFor(() => receiver.attempts >= 5, 60_000, "five failed pushes");
  await waitFor(async () => (await agentStatus()).streams === 0, 20_000, "the stream let go");
  await waitFor(() => /letting the stream go while the receiver fails/.test(stderr()), 5000, "the let-go said");
  for (let n = 2; n <= 3; n++) await publish(broker.url, "hermes", "openclaw", { n });
  assert.equal((await agentStatus()).pending, 2, "what came meanwhile waits in the inbox, counted");
  down = false;
  await waitFor(() => receiver.accepted.size === 3, 60_000, "all three handed on");
  assert.deepEqual([...receiver.accepted.values()].map((delivery) => JSON.parse(delivery.body).n), [1, 2, 3]);
  await waitFor(async () => (await agentStatus()).streams === 1, 20_000, "the stream taken again");
  assert.equal((await agentStatus()).pending, 0);
});

test("a push answered with a redirect (301, 303) is retried with a warning naming its Location, never counted delivered", async (t) => {
  // An http→https or trailing-slash rule in front of the hook, fixed after two pushes; the page it points at
  // answers any request 200, as a landing page does.
  let posts = 0;
  const receiver = new Receiver((delivery) => {
    if (delivery.path === "/landing") return 200;
    posts++;
    return posts === 1 ? 301 : posts === 2 ? 303 : 200;
  });
  const { broker, stderr } = await pushTo(t, receiver, (started) => `${started.url}/hook`);
  await publish(broker.url, "hermes", "openclaw", { n: 1 });
  await waitFor(() => receiver.accepted.size === 1, 20_000, "a push taken");
  const [delivery] = receiver.accepted.values();
  assert.deepEqual([delivery.method, delivery.path], ["POST", "/hook"], "taken by the hook itself, not the landing page");
  assert.equal(JSON.parse(delivery.body).n, 1);
  assert.equal(posts, 3, "pushed again after each redirect");
  const landing = `${receiver.url}/landing`;
  assert.ok(stderr().includes(`answered HTTP 301, a redirect to ${landing}`), stderr());
  assert.ok(stderr().includes(`answered HTTP 303, a redirect to ${landing}`), stderr());
  assert.equal((await (await fetch(`${broker.url}/dead-letters?agent=openclaw`)).json()).length, 0, "no dead letters");
});

test("a push refused after retention removed its message is not parked, and listen goes on", async () => {
  // A pending TTL for another agent makes retention run every 250 ms; delivered messages stay 1 ms.
  const broker = await startBroker({ args: ["--retention", "1ms", "--pending-ttl", "0,nobody=500ms"] });
  const dir = tempDir();
  let removed = false;
  const receiver = new Receiver((delivery) => (JSON.parse(delivery.body).n === 1 ? (removed ? 422 : 503) : 200));
  let listen: ChildProcess | undefined;
  let stderr = "";
  try {
    await receiver.start();
    listen = spawnCli(["listen", "--agent", "openclaw", "--url", broker.url, "--post", receiver.url, "--state", join(dir.path, "s")]);
    listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    await waitFor(() => stderr.includes("connected to"), 15_000, "listen's stream");
    await publish(broker.url, "hermes", "openclaw", { n: 1 });
    await waitFor(() => receiver.attempts > 0, 15_000, "the first push");
    // Message 1 was written to listen's stream (so delivered); once retention removed it, a replay from 0 is refused.
    await waitFor(async () => (await fetch(`${broker.url}/ntfy/openclaw/json?poll=1&since=0`)).status === 410, 15_000, "retention");
    removed = true;
    await publish(broker.url, "hermes", "openclaw", { n: 2 });
    await waitFor(() => receiver.accepted.size === 1, 15_000, "message 2");
    assert.match(stderr, /message 1 was removed by the broker's retention meanwhile; it is not parked/);
    assert.equal((await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.dead_letters, 0);
  } finally {
    await stopAll(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

// Push red team, stop 56: listen read a receiver's whole answer, which an endless one made grow by 150 MB a second
// until --post-timeout (a 200 was counted delivered only then), and a receiver down was "fetch failed", nothing more.
test("a push answered with an endless body is judged by its status at once, reading a few KiB of it at most", async (t) => {
  let attempts = 0;
  const streaming = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    req.resume().on("end", () => {
      res.writeHead(++attempts === 1 ? 500 : 200, { "content-type": "text/plain" });
      streaming.add(res);
      const chunk = "x".repeat(1024);
      const more = setInterval(() => res.write(chunk), 5);
      res.on("close", () => clearInterval(more));
    });
  });
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  t.after(async () => {
    await stopAll(listen);
    for (const res of streaming) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await broker?.cleanup();
    dir.cleanup();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  broker = await startBroker();
  listen = spawnCli([
    "listen", "--agent", "openclaw", "--url", broker.url, "--state", join(dir.path, "s"), "--post-timeout", "120s",
    "--post", `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
  ]);
  let stderr = "";
  listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  await publish(broker.url, "hermes", "openclaw", { text: "once" });
  const pending = async () => (await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.pending;
  await waitFor(async () => attempts >= 2 && (await pending()) === 0, 20_000, "the retry after the 500, taken by the 200");
  assert.match(stderr, /answered HTTP 500: x{200}/);
  assert.equal(attempts, 2, "taken once");
});

test("a push to a receiver that is down says why (ECONNREFUSED), not only that the fetch failed", async (t) => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  let listen: ChildProcess | undefined;
  t.after(async () => {
    await stopAll(listen);
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker();
  listen = spawnCli(["listen", "--agent", "openclaw", "--url", broker.url, "--state", join(dir.path, "s"), "--post", `http://127.0.0.1:${port}/hook`]);
  let stderr = "";
  listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  await publish(broker.url, "hermes", "openclaw", { text: "to nobody" });
  await waitFor(() => stderr.includes("Cannot push"), 10_000, "the failed push's log line");
  assert.match(stderr, new RegExp(`Cannot push to http://127\\.0\\.0\\.1:${port}/hook: ECONNREFUSED`));
});
