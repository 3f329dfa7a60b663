/**
 * A SendMessage that the broker's stopping meets after its message was stored, sent as OpenClaw's A2A channel sends
 * (v1.0 method, `returnImmediately`, no A2A-Version header). OpenClaw counts any error or 5xx as a failed send and,
 * once the peer was reached, does not send it again: an error for a stored message reports a delivered message as
 * not sent (agents28: 2 of 200 such calls at a SIGTERM). A streamed send (an SDK client of a card with streaming
 * on) ended with no event at all then: the client had no task to follow.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { createRouter } from "../src/http/router.ts";
import type { Handler, OutgoingResponse } from "../src/runtime/types.ts";
import { isStream } from "../src/runtime/types.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import type { MessageOutcome } from "../src/store/store.ts";
import type { AgentName } from "../src/message.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";
import { TextSink } from "./helpers/text_sink.ts";

/** A store whose reads of a message's outcome come once the broker has stopped (as a SIGTERM's timing can have it). */
class StopsBeforeOutcomeStore extends SqliteStore {
  stopBroker: () => Promise<void> = () => Promise.resolve();
  #stopped: Promise<void> | undefined;

  override async outcome(id: number): Promise<MessageOutcome> {
    this.#stopped ??= this.stopBroker();
    await this.#stopped;
    return await super.outcome(id);
  }
}

/** A router on a broker that stops as its first task is read; `stopped` settles once it has. */
async function routerStoppingAtFirstRead(dataDir: string) {
  // Opened first: once the broker is, nothing that can throw comes before the caller holds it.
  const auth = await Authenticator.open(new TokenFile(dataDir));
  const store = new StopsBeforeOutcomeStore(dataDir, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dataDir, { rateLimit: 0 }));
  const stop: { stopped?: Promise<void> } = {};
  store.stopBroker = () => (stop.stopped = broker.close());
  const internalErrors: unknown[] = [];
  const handler = createRouter(broker, {
    auth,
    metrics: new BrokerMetrics(() => broker.status(), []),
    maxBodyBytes: 65536,
    retryMs: 2000,
    onInternalError: (error) => internalErrors.push(error),
  });
  return { handler, stop, internalErrors };
}

/** A send as OpenClaw's channel makes it (`SendMessage`), or as an SDK client of a card with streaming on. */
function openClawSend(handler: Handler, method: "SendMessage" | "SendStreamingMessage"): Promise<OutgoingResponse> {
  return handler(fromWebRequest(
    new Request("http://localhost/a2a/hermes", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: "oc-1",
        method,
        params: {
          message: { messageId: crypto.randomUUID(), role: "ROLE_USER", contextId: "ctx-oc-hermes", parts: [{ text: "hello from openclaw" }] },
          configuration: { returnImmediately: true },
        },
      }),
    }),
  ));
}

/** What waits in hermes's inbox, read by a broker opened again on the data dir. */
async function pendingForHermes(dataDir: string): Promise<unknown[]> {
  const reopened = await Broker.open(testBrokerOptions(new SqliteStore(dataDir, "relaxed"), dataDir, { rateLimit: 0 }));
  try {
    return (await reopened.peek("hermes" as AgentName, 10)).map((envelope) => envelope.payload.text);
  } finally {
    await reopened.close();
  }
}

test("a SendMessage whose message was stored before the broker stopped answers its task, not an error", async () => {
  const dir = tempDir();
  try {
    const { handler, stop, internalErrors } = await routerStoppingAtFirstRead(dir.path);
    const response = await openClawSend(handler, "SendMessage");
    assert.ok(stop.stopped !== undefined, "the broker stopped between the commit and the task's read");
    await stop.stopped;
    const text = bodyText(response as never);
    assert.equal(response.status, 200, text);
    const answer = JSON.parse(text);
    assert.equal(answer.error, undefined, text);
    assert.match(answer.result.task.id, /^task-1-/);
    assert.equal(answer.result.task.contextId, "ctx-oc-hermes");
    assert.equal(answer.result.task.status.state, "TASK_STATE_SUBMITTED");
    assert.deepEqual(internalErrors, []);
    assert.deepEqual(await pendingForHermes(dir.path), ["hello from openclaw"], "stored once, waiting for hermes");
  } finally {
    dir.cleanup();
  }
});

test("a SendStreamingMessage whose message was stored before the broker stopped streams its task before it ends", async () => {
  const dir = tempDir();
  try {
    const { handler, stop, internalErrors } = await routerStoppingAtFirstRead(dir.path);
    const response = await openClawSend(handler, "SendStreamingMessage");
    assert.ok(isStream(response));
    const sink = new TextSink();
    const ended = new Promise((resolve) => sink.closed.addEventListener("abort", resolve, { once: true }));
    response.open(sink);
    await ended;
    await stop.stopped;
    const events = sink.text.split("\n").filter((line) => line.startsWith("data:")).map((line) => JSON.parse(line.slice(5)));
    assert.equal(events.length, 1, `the task, then the end: ${JSON.stringify(sink.text)}`);
    assert.equal(events[0].id, "oc-1");
    assert.match(events[0].result.task.id, /^task-1-/);
    assert.equal(events[0].result.task.status.state, "TASK_STATE_SUBMITTED");
    assert.deepEqual(internalErrors, []);
    assert.deepEqual(await pendingForHermes(dir.path), ["hello from openclaw"], "stored once, waiting for hermes");
  } finally {
    dir.cleanup();
  }
});
