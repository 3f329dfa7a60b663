/**
 * A blocking A2A `SendMessage` whose reply takes a while, read by a client that gives up on a silent connection, as
 * Hermes Agent's strict A2A client does: a2a-sdk 1.0's JSON-RPC transport posts with the httpx client's timeout, and
 * Hermes builds that client with `httpx.Timeout(30.0, connect=10.0)`, so a read that sees no byte for 30 s fails
 * (ReadTimeout) long before the call's own 120 s (plugins/platforms/a2a/client.py, `_http` and `ask`).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { heldJsonAnswer } from "../src/a2a/held_answer.ts";
import { createRouter } from "../src/http/router.ts";
import type { Handler, OutgoingResponse, StreamSink } from "../src/runtime/types.ts";
import { isStream } from "../src/runtime/types.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { BrokerOptions } from "../src/broker/broker_options.ts";
import { uniform } from "../src/broker/per_agent.ts";
import type { AgentName } from "../src/message.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";
import { TextSink } from "./helpers/text_sink.ts";

/** Hermes's read timeout (30 s), scaled down with the broker's keepalive so the test takes a second, not a minute. */
const READ_TIMEOUT_MS = 300;
const KEEPALIVE_MS = 100;

async function withA2aRouter(work: (handler: Handler, broker: Broker) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { rateLimit: 0 }));
  try {
    const auth = await Authenticator.open(new TokenFile(dir.path));
    const metrics = new BrokerMetrics(() => broker.status(), []);
    const handler = createRouter(broker, {
      auth,
      metrics,
      maxBodyBytes: 65536,
      retryMs: 2000,
      a2aKeepaliveMs: KEEPALIVE_MS,
      onInternalError: (error) => assert.fail(String(error)),
    });
    await work(handler, broker);
  } finally {
    await broker.close();
    dir.cleanup();
  }
}

function post(handler: Handler, path: string, body: unknown, headers: Record<string, string> = {}): Promise<OutgoingResponse> {
  return handler(fromWebRequest(new Request(`http://localhost${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  })));
}

/** A blocking v1.0 SendMessage, as Hermes's client sends it (no `configuration`, so it waits for the task to settle). */
function blockingSend(handler: Handler, text: string): Promise<OutgoingResponse> {
  return post(handler, "/a2a/bob", {
    jsonrpc: "2.0",
    id: "call-1",
    method: "SendMessage",
    params: { message: { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }] } },
  }, { "a2a-version": "1.0" });
}

/**
 * Reads an answer as httpx does with a read timeout: the head, then each chunk, must come within `READ_TIMEOUT_MS`
 * of the last, or the read fails as Hermes's did ("A2A peer request failed", cause ReadTimeout).
 */
async function readWithReadTimeout(answer: Promise<OutgoingResponse>): Promise<{ text: string; streamed: boolean }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`ReadTimeout: no answer for ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
  });
  const response = await Promise.race([answer, silent]).finally(() => clearTimeout(timer));
  if (!isStream(response)) return { text: bodyText(response), streamed: false };
  return await new Promise((resolve, reject) => {
    let text = "";
    const closed = new AbortController();
    const fail = () => {
      closed.abort();
      reject(new Error(`ReadTimeout: no byte for ${READ_TIMEOUT_MS} ms after ${JSON.stringify(text)}`));
    };
    let idle = setTimeout(fail, READ_TIMEOUT_MS);
    const sink: StreamSink = {
      write(chunk) {
        text += chunk;
        clearTimeout(idle);
        idle = setTimeout(fail, READ_TIMEOUT_MS);
        return 0;
      },
      drained: () => Promise.resolve(),
      close() {
        clearTimeout(idle);
        closed.abort();
        resolve({ text, streamed: true });
      },
      destroy: () => closed.abort(),
      closed: closed.signal,
    };
    response.open(sink);
  });
}

/** bob takes the question from his inbox and, after `afterMs`, replies to it. */
async function bobReplies(handler: Handler, afterMs: number, text: string): Promise<void> {
  let question: { interop: { id: number } } | undefined;
  while (question === undefined) {
    const polled = await handler(fromWebRequest(new Request("http://localhost/poll?agent=bob")));
    assert.ok(!isStream(polled));
    [question] = JSON.parse(bodyText(polled));
    if (question === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, afterMs));
  const replied = await post(handler, `/broadcast?from=bob&reply_to=${question.interop.id}`, { text });
  assert.equal(replied.status, 200);
}

test("a blocking A2A SendMessage whose reply takes longer than the client's read timeout keeps the connection alive and answers the completed task", async () => {
  await withA2aRouter(async (handler) => {
    const [answer] = await Promise.all([
      readWithReadTimeout(blockingSend(handler, "what is the build status?")),
      bobReplies(handler, READ_TIMEOUT_MS * 3, "green"),
    ]);
    assert.ok(answer.streamed, "the answer was held open while the reply was awaited");
    assert.match(answer.text, /^ +\{/, "whitespace (which JSON allows before a value) until the answer");
    const rpc = JSON.parse(answer.text);
    assert.equal(rpc.id, "call-1");
    assert.equal(rpc.result.task.status.state, "TASK_STATE_COMPLETED");
    assert.equal(rpc.result.task.artifacts[0].parts[0].text, "green");
  });
});

test("a blocking A2A SendMessage whose reply comes within the keepalive interval is answered as a plain JSON body", async () => {
  await withA2aRouter(async (handler, broker) => {
    const [answer] = await Promise.all([
      readWithReadTimeout(blockingSend(handler, "quick one?")),
      bobReplies(handler, 0, "yes"),
    ]);
    assert.equal(answer.streamed, false);
    const rpc = JSON.parse(answer.text);
    assert.equal(rpc.result.task.status.state, "TASK_STATE_COMPLETED");
    assert.equal(rpc.result.task.artifacts[0].parts[0].text, "yes");
    assert.equal((await broker.status()).agents["a2a"]?.pending ?? 0, 0, "the reply was taken with the answer");
  });
});

/** Opens a held answer's stream into a sink that records what was written, with a way to hang up. */
function openHeld(response: OutgoingResponse): { text(): string; ended: Promise<void>; hangUp(): void } {
  assert.ok(isStream(response));
  const sink = new TextSink();
  const ended = new Promise<void>((resolve) => sink.closed.addEventListener("abort", () => resolve(), { once: true }));
  response.open(sink);
  return { text: () => sink.text, ended, hangUp: () => sink.destroy() };
}

test("heldJsonAnswer() ends a held answer that fails late with the late error's JSON after the spaces", async () => {
  let fail: (error: Error) => void = () => {};
  const value = new Promise<unknown>((_, reject) => (fail = reject));
  const answer = await heldJsonAnswer(value, 20, new AbortController(), (error) => ({ error: (error as Error).message }));
  assert.ok("response" in answer);
  const held = openHeld(answer.response);
  await new Promise((resolve) => setTimeout(resolve, 50));
  fail(new Error("token revoked"));
  await held.ended;
  assert.match(held.text(), /^ {2,}\{"error":"token revoked"\}$/);
});

test("heldJsonAnswer() tells what it waits for to stop once the held answer's client hangs up", async () => {
  const left = new AbortController();
  const answer = await heldJsonAnswer(new Promise(() => {}), 20, left, () => ({}));
  assert.ok("response" in answer);
  const held = openHeld(answer.response);
  assert.equal(left.signal.aborted, false);
  held.hangUp();
  assert.equal(left.signal.aborted, true);
});

/**
 * A router on a broker the test opens and closes itself, its bugs kept as the broker's log would get them; a blocking
 * or streamed call waits `a2aWaitMs` for its reply.
 */
async function openA2aRouter(
  dataDir: string,
  internalErrors: unknown[],
  overrides: Partial<BrokerOptions> = {},
  a2aWaitMs = 20_000,
): Promise<{ handler: Handler; broker: Broker }> {
  // Opened first: once the broker is, nothing that can throw comes before the caller holds it.
  const auth = await Authenticator.open(new TokenFile(dataDir));
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dataDir, "relaxed"), dataDir, { rateLimit: 0, ...overrides }));
  const handler = createRouter(broker, {
    auth,
    metrics: new BrokerMetrics(() => broker.status(), []),
    maxBodyBytes: 65536,
    retryMs: 2000,
    a2aWaitMs,
    a2aKeepaliveMs: KEEPALIVE_MS,
    onInternalError: (error) => internalErrors.push(error),
  });
  return { handler, broker };
}

/** Waits for the first space of a held answer: its head (200) went out. */
async function heldOpen(response: OutgoingResponse): Promise<ReturnType<typeof openHeld>> {
  const held = openHeld(response);
  while (held.text() === "") await new Promise((resolve) => setTimeout(resolve, 5));
  return held;
}

test("a held blocking SendMessage that the broker's stopping ends tells the caller to ask again for its stored task, which GetTask then finds", async () => {
  const dir = tempDir();
  const internalErrors: unknown[] = [];
  try {
    const first = await openA2aRouter(dir.path, internalErrors);
    let held: ReturnType<typeof openHeld>;
    try {
      held = await heldOpen(await blockingSend(first.handler, "still there?"));
    } finally {
      await first.broker.close();
    }
    await held.ended;
    const rpc = JSON.parse(held.text());
    assert.equal(rpc.id, "call-1");
    assert.equal(rpc.error.code, -32000);
    assert.equal(rpc.error.data.code, "storage_unavailable", `told to retry, not storage_failed: ${held.text()}`);
    assert.equal(rpc.error.data.retryAfter, 1);
    assert.match(rpc.error.data.taskId, /^task-1-/);
    assert.match(rpc.error.message, /stored as task task-1-/);

    const again = await openA2aRouter(dir.path, internalErrors);
    try {
      const got = await post(again.handler, "/a2a/bob", { jsonrpc: "2.0", id: 2, method: "GetTask", params: { id: rpc.error.data.taskId } });
      const task = JSON.parse(bodyText(got as never)).result;
      assert.equal(task.status.state, "TASK_STATE_SUBMITTED", "the message waits in bob's inbox");
      assert.equal(task.history[0].parts[0].text, "still there?");
    } finally {
      await again.broker.close();
    }
    assert.deepEqual(internalErrors, []);
  } finally {
    dir.cleanup();
  }
});

/** Runs `work` on a router of its own (see openA2aRouter), closed and removed after. */
async function withOwnA2aRouter(
  work: (handler: Handler, broker: Broker, internalErrors: unknown[]) => Promise<void>,
  overrides: Partial<BrokerOptions> = {},
  a2aWaitMs?: number,
): Promise<void> {
  const dir = tempDir();
  const internalErrors: unknown[] = [];
  try {
    const { handler, broker } = await openA2aRouter(dir.path, internalErrors, overrides, a2aWaitMs);
    try {
      await work(handler, broker, internalErrors);
    } finally {
      await broker.close();
    }
  } finally {
    dir.cleanup();
  }
}

test("a bug met by a held blocking SendMessage after its head went is logged as any other internal error", async () => {
  await withOwnA2aRouter(async (handler, broker, internalErrors) => {
    const held = await heldOpen(await blockingSend(handler, "break please"));
    const bug = new TypeError("a bug in reading the task");
    broker.tasks.message = () => Promise.reject(bug);
    await Promise.all([bobReplies(handler, 0, "here"), held.ended]);
    const rpc = JSON.parse(held.text());
    assert.equal(rpc.error.code, -32603);
    assert.deepEqual(internalErrors, [bug]);
  });
});

/** A held call whose message went (its task with it) is answered -32001 at once, well within its 20 s wait. */
async function assertAnsweredTaskGone(held: ReturnType<typeof openHeld>, started: number, internalErrors: unknown[]): Promise<void> {
  await held.ended;
  assert.ok(Date.now() - started < 10_000, `answered ${Date.now() - started} ms in, the wait is 20 s`);
  assert.equal(JSON.parse(held.text()).error.code, -32001, "the task went with its message");
  assert.deepEqual(internalErrors, []);
}

test("a blocking SendMessage whose message expires undelivered (--pending-ttl) is answered then, not after the whole wait", async () => {
  await withOwnA2aRouter(async (handler, _broker, internalErrors) => {
    const started = Date.now();
    const held = openHeld(await blockingSend(handler, "nobody reads me"));
    await assertAnsweredTaskGone(held, started, internalErrors);
  }, { pendingTtlMs: uniform(300) });
});

test("a blocking SendMessage whose recipient is removed with its message (agent remove --force) is answered then, not after the whole wait", async () => {
  await withOwnA2aRouter(async (handler, broker, internalErrors) => {
    const started = Date.now();
    const held = await heldOpen(await blockingSend(handler, "for a bob about to go"));
    assert.equal(await broker.removeAgent("bob" as AgentName, true), 1);
    await assertAnsweredTaskGone(held, started, internalErrors);
  });
});

/** A SendStreamingMessage to bob, as Hermes's `a2a_call` sends one to a card with streaming on, opened on a sink. */
async function streamedSend(handler: Handler, text: string): Promise<{ ended: Promise<boolean>; events(): Array<Record<string, any>> }> {
  const response = await post(handler, "/a2a/bob", {
    jsonrpc: "2.0",
    id: "call-s",
    method: "SendStreamingMessage",
    params: { message: { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }] } },
  }, { "a2a-version": "1.0" });
  assert.ok(isStream(response));
  const sink = new TextSink();
  // Resolves false if the stream is still open after 5 s: the old code left some open for good.
  const ended = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    sink.closed.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve(true);
    }, { once: true });
  });
  response.open(sink);
  const events = () => sink.text.split("\n").filter((line) => line.startsWith("data:")).map((line) => JSON.parse(line.slice(5)));
  return { ended, events };
}

/** Whether an event of a v1.0 task stream shows the task completed. */
const showsCompleted = (event: Record<string, any>) =>
  (event.result?.task ?? event.result?.statusUpdate)?.status?.state === "TASK_STATE_COMPLETED";

// Hermes streams its calls: a SIGTERM as the reply committed ended the stream's wait with nothing taken, and the
// stream then showed the reply, which also stayed in the caller's inbox (13 of 15 such stops).
test("a task stream whose wait the broker's stopping ends tells the caller to ask again and never shows a reply left in its inbox", async () => {
  const dir = tempDir();
  const internalErrors: unknown[] = [];
  try {
    const { handler, broker } = await openA2aRouter(dir.path, internalErrors);
    let stream: Awaited<ReturnType<typeof streamedSend>>;
    let replied: Promise<unknown>;
    try {
      stream = await streamedSend(handler, "still there?");
      let question: number | undefined;
      while (question === undefined) {
        [question] = (await broker.poll("bob" as AgentName, 1)).map((envelope) => envelope.id);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      replied = broker.publish("bob" as AgentName, "a2a" as AgentName, { text: "yes" }, { replyTo: question }).catch(() => undefined);
    } finally {
      await broker.close();
    }
    assert.equal(await stream.ended, true, "the stream ended with the broker");
    const events = stream.events();
    assert.equal(events.filter(showsCompleted).length, 0, JSON.stringify(events));
    assert.equal(events.at(-1)?.error?.data?.code, "storage_unavailable", JSON.stringify(events));
    const stored = await replied !== undefined;
    const again = await openA2aRouter(dir.path, internalErrors);
    try {
      const pending = (await again.broker.peek("a2a" as AgentName, 10)).map((envelope) => envelope.payload.text);
      assert.deepEqual(pending, stored ? ["yes"] : [], "the reply waits in the caller's inbox, once");
    } finally {
      await again.broker.close();
    }
    assert.deepEqual(internalErrors, []);
  } finally {
    dir.cleanup();
  }
});

test("a task stream whose wait passed its bound ends as it stands: a reply that comes later is the caller inbox's alone", async () => {
  await withOwnA2aRouter(async (handler, broker, internalErrors) => {
    const stream = await streamedSend(handler, "anyone?");
    assert.equal(await stream.ended, true, "ended at the bound");
    await bobReplies(handler, 0, "late answer");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const events = stream.events();
    assert.equal(events.filter(showsCompleted).length, 0, JSON.stringify(events));
    assert.ok(events.every((event) => event.error === undefined), JSON.stringify(events));
    assert.deepEqual((await broker.peek("a2a" as AgentName, 10)).map((envelope) => envelope.payload.text), ["late answer"]);
    assert.deepEqual(internalErrors, []);
  }, {}, 300);
});

// Red team 49: bob peeked at the question and answered it as the caller canceled it. Both landed (the cancel checked
// before the reply committed), the task read CANCELED, and the caller's wait took the reply it then showed nowhere.
test("a reply stored as a cancel raced it settles the task: the caller's call shows it, taken from its inbox once", async () => {
  await withOwnA2aRouter(async (handler, broker, internalErrors) => {
    const message = { messageId: "raced", role: "ROLE_USER", parts: [{ text: "still wanted?" }] };
    const send = (configuration: Record<string, unknown>) =>
      post(handler, "/a2a/bob", { jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message, configuration } }, { "a2a-version": "1.0" });
    const sent = JSON.parse(bodyText(await send({ returnImmediately: true }) as never)).result.task;
    const [question] = await broker.peek("bob" as AgentName, 1);
    await broker.publish("bob" as AgentName, "a2a" as AgentName, { text: "yes" }, { replyTo: question.id });
    assert.equal(await broker.tasks.withdraw("bob" as AgentName, question.id), true, "the cancel that raced the reply");
    const answered = JSON.parse(bodyText(await send({}) as never)).result.task;
    assert.equal(answered.id, sent.id);
    assert.equal(answered.status.state, "TASK_STATE_COMPLETED");
    assert.equal(answered.artifacts[0].parts[0].text, "yes");
    assert.deepEqual(await broker.peek("a2a" as AgentName, 10), [], "taken with the answer, once");
    const cancel = await post(handler, "/a2a/bob", { jsonrpc: "2.0", id: 2, method: "CancelTask", params: { id: sent.id } }, { "a2a-version": "1.0" });
    assert.equal(JSON.parse(bodyText(cancel as never)).error.code, -32002, "no longer cancelable");
    assert.deepEqual(internalErrors, []);
  });
});
