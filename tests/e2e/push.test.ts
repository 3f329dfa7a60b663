import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { spawnCli, tempDir } from "../helpers/cli.ts";

interface Delivery {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/** A local receiver standing in for an agent's webhook; `respond` decides each answer (undefined: hang). */
class Receiver {
  accepted = new Map<string, Delivery>();
  attempts = 0;
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
        const delivery = { path: req.url ?? "", headers: req.headers, body };
        const status = this.#respond(delivery, ++this.attempts);
        if (status === undefined) return; // hang: never answer
        const key = String(req.headers["idempotency-key"]);
        if (status < 300 && !this.accepted.has(key)) this.accepted.set(key, delivery);
        res.writeHead(status).end(status < 300 ? "{}" : "nope");
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

function stop(child: ChildProcess | undefined) {
  if (child && child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGTERM");
}

test("listen --post survives failing, hanging and restarting receivers: every message once, in order", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const receiver = new Receiver((_delivery, attempt) => (attempt <= 2 ? 500 : attempt === 4 ? undefined : 200));
  await receiver.start();
  const listen = spawnCli([
    "listen", "--agent", "openclaw", "--url", broker.url, "--post", `${receiver.url}/inbox`,
    "--post-timeout", "1s", "--state", join(dir.path, "state.json"),
  ]);
  try {
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
      const id = String(JSON.parse(delivery.body).interop.id);
      assert.equal(delivery.headers["idempotency-key"], id);
      assert.equal(delivery.headers["x-request-id"], id);
    }
    assert.ok(receiver.attempts > 30, "failures and the hang were retried");
  } finally {
    stop(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("the OpenClaw preset posts /hooks/wake and /hooks/agent bodies with the hooks token", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const receiver = new Receiver(() => 200);
  await receiver.start();
  const tokenFile = join(dir.path, "token");
  writeFileSync(tokenFile, "hooks-secret-token\n");
  let wake: ChildProcess | undefined;
  let agentTurn: ChildProcess | undefined;
  try {
    wake = spawnCli(["listen", "--agent", "leo", "--url", broker.url, "--openclaw", receiver.url, "--push-token-file", tokenFile, "--state", join(dir.path, "1")]);
    agentTurn = spawnCli([
      "listen", "--agent", "leo2", "--url", broker.url, "--openclaw", `${receiver.url}/`, "--openclaw-agent", "main",
      "--state", join(dir.path, "2"),
    ], { OPENCLAW_HOOKS_TOKEN: "hooks-secret-token" });
    await publish(broker.url, "hermes", "leo", { text: "wake up" });
    await publish(broker.url, "hermes", "leo2", { text: "take a turn" });
    await waitFor(() => receiver.accepted.size === 2, 15_000, "both hooks");
    const byPath = new Map([...receiver.accepted.values()].map((delivery) => [delivery.path, delivery]));
    const wakeCall = byPath.get("/hooks/wake")!;
    assert.equal(wakeCall.headers.authorization, "Bearer hooks-secret-token");
    assert.deepEqual(JSON.parse(wakeCall.body), { text: "Message 1 from hermes via interop: wake up", mode: "now" });
    const agentCall = byPath.get("/hooks/agent")!;
    assert.equal(agentCall.headers.authorization, "Bearer hooks-secret-token");
    assert.deepEqual(JSON.parse(agentCall.body), { message: "Message 2 from hermes via interop: take a turn", agentId: "main" });
    assert.equal(agentCall.headers["idempotency-key"], "2");
  } finally {
    stop(wake);
    stop(agentTurn);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("the Hermes webhook preset signs each push with a valid X-Webhook-Signature-V2", async () => {
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
  await receiver.start();
  const listen = spawnCli(
    ["listen", "--agent", "hermes", "--url", broker.url, "--hermes-webhook", `${receiver.url}/webhooks/interop`, "--state", join(dir.path, "s")],
    { HERMES_WEBHOOK_SECRET: secret },
  );
  try {
    await publish(broker.url, "openclaw", "hermes", { text: "signed hello", priority: "high" });
    await waitFor(() => receiver.accepted.size === 1, 15_000, "the signed push");
    const [delivery] = receiver.accepted.values();
    assert.equal(delivery.path, "/webhooks/interop");
    assert.equal(delivery.headers["x-request-id"], "1");
    const body = JSON.parse(delivery.body);
    assert.equal(body.message, "Message 1 from openclaw via interop: signed hello");
    assert.equal(body.text, "signed hello");
    assert.equal(body.priority, "high");
    assert.equal(body.interop.from, "openclaw");
  } finally {
    stop(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("a push refused with a 4xx is parked as a dead letter, shown in status, and the rest go on", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  const receiver = new Receiver((delivery) => (JSON.parse(delivery.body).n === 2 ? 422 : 200));
  await receiver.start();
  const listen = spawnCli(["listen", "--agent", "openclaw", "--url", broker.url, "--post", receiver.url, "--state", join(dir.path, "s")]);
  let stderr = "";
  listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  try {
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
    stop(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});

test("a push refused after retention removed its message is not parked, and listen goes on", async () => {
  // A pending TTL for another agent makes retention run every 250 ms; delivered messages stay 1 ms.
  const broker = await startBroker({ args: ["--retention", "1ms", "--pending-ttl", "0,nobody=500ms"] });
  const dir = tempDir();
  let removed = false;
  const receiver = new Receiver((delivery) => (JSON.parse(delivery.body).n === 1 ? (removed ? 422 : 503) : 200));
  await receiver.start();
  const listen = spawnCli(["listen", "--agent", "openclaw", "--url", broker.url, "--post", receiver.url, "--state", join(dir.path, "s")]);
  let stderr = "";
  listen.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  try {
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
    stop(listen);
    await receiver.stop();
    await broker.cleanup();
    dir.cleanup();
  }
});
