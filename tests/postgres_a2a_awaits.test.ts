/**
 * A blocking or streaming A2A SendMessage on a PostgreSQL store other brokers share: its wait for the reply is
 * recorded with its message, so a reply read on another broker the moment it commits is still left to the call.
 */
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import type { Broker } from "../src/broker/broker.ts";
import { createRouter } from "../src/http/router.ts";
import type { AgentName } from "../src/message.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { type Handler, isStream, type OutgoingResponse } from "../src/runtime/types.ts";
import type { PostgresStore } from "../src/store/postgres.ts";
import { waitFor } from "./helpers/broker.ts";
import { tempDir } from "./helpers/cli.ts";
import { sharedPostgres } from "./helpers/postgres.ts";
import { bodyText } from "./helpers/response.ts";
import { TextSink } from "./helpers/text_sink.ts";
import { twoBrokersOn } from "./helpers/two_brokers.ts";
import { fromWebRequest } from "./helpers/web_request.ts";

/** Without tokens an A2A caller is the agent `a2a`. */
const caller = "a2a" as AgentName;
const openclaw = "openclaw" as AgentName;
const twoBrokers = twoBrokersOn(sharedPostgres());

/** Broker A's routes (no tokens), answering a blocking call in one body (no keepalive within the test). */
async function routerOn(t: TestContext, broker: Broker): Promise<Handler> {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  return createRouter(broker, {
    auth: await Authenticator.open(new TokenFile(dir.path)),
    metrics: new BrokerMetrics(() => broker.status(), []),
    maxBodyBytes: 65536,
    retryMs: 2000,
    a2aKeepaliveMs: 60_000,
    onInternalError: (error) => assert.fail(String(error)),
  });
}

function send(handler: Handler, method: string, messageId: string, configuration: Record<string, unknown> = {}): Promise<OutgoingResponse> {
  return handler(fromWebRequest(
    new Request("http://localhost/a2a/openclaw", {
      method: "POST",
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method,
        params: { message: { messageId, role: "ROLE_USER", parts: [{ text: "ping" }] }, configuration },
      }),
      headers: { "content-type": "application/json", "a2a-version": "1.0" },
    }),
  ));
}

/** The JSON-RPC answer of a call answered in one body. */
function answerOf(response: OutgoingResponse) {
  assert.ok(!isStream(response), "answered in one body");
  return JSON.parse(bodyText(response));
}

/**
 * Holds store A's record of a wait written on its own (after the message's commit) until `released`: the window of
 * one round trip in which another broker's reader could take the reply, made as long as the test needs.
 */
function holdLateRecords(t: TestContext, store: PostgresStore): { released: () => void; late: () => number } {
  const release = Promise.withResolvers<void>();
  t.after(() => release.resolve());
  let late = 0;
  const awaitReply = store.shared.awaitReply.bind(store.shared);
  store.shared.awaitReply = async (...args) => {
    late++;
    await release.promise;
    return await awaitReply(...args);
  };
  return { released: () => release.resolve(), late: () => late };
}

/** Brokers A and B, openclaw's inbox, A's routes, and store A's late records held (`holdLateRecords`). */
async function callAcross(t: TestContext) {
  const brokers = await twoBrokers(t);
  if (brokers === undefined) return undefined;
  await brokers.b.addAgent(openclaw);
  return { ...brokers, handler: await routerOn(t, brokers.a), ...holdLateRecords(t, brokers.storeA) };
}

test("a blocking SendMessage's reply published and read on another broker right after the message's commit is left to the call", async (t) => {
  const brokers = await callAcross(t);
  if (brokers === undefined) return;
  const { b, handler, released } = brokers;
  const answering = send(handler, "SendMessage", crypto.randomUUID());
  const question = await waitFor(async () => (await b.poll(openclaw, 1))[0], 10_000, "the message on B");
  await b.publish(openclaw, caller, { text: "pong" }, { replyTo: question.id });
  const read = await b.poll(caller, 10);
  released();
  assert.deepEqual(read.map((envelope) => envelope.payload), [], "the caller's in-order read on B took the reply from under the call");
  const { result } = answerOf(await answering);
  assert.equal(result.task.status.state, "TASK_STATE_COMPLETED");
  assert.equal(result.task.artifacts[0].parts[0].text, "pong");
});

test("a streaming SendMessage's reply published and read on another broker right after the message's commit is left to the stream", async (t) => {
  const brokers = await callAcross(t);
  if (brokers === undefined) return;
  const { b, handler, released } = brokers;
  const response = await send(handler, "SendStreamingMessage", crypto.randomUUID());
  assert.ok(isStream(response));
  const sink = new TextSink();
  t.after(() => sink.close());
  response.open(sink);
  const question = await waitFor(async () => (await b.poll(openclaw, 1))[0], 10_000, "the message on B");
  await b.publish(openclaw, caller, { text: "pong" }, { replyTo: question.id });
  const read = await b.poll(caller, 10);
  released();
  assert.deepEqual(read.map((envelope) => envelope.payload), [], "the caller's in-order read on B took the reply from under the stream");
  await waitFor(() => sink.closed.aborted || undefined, 20_000, "the stream's end");
  assert.match(sink.text, /TASK_STATE_COMPLETED/);
  assert.match(sink.text, /"text":"pong"/);
});

test("a SendMessage sent again blocking, its message stored already, records its wait itself; one that returns at once records none", async (t) => {
  const brokers = await callAcross(t);
  if (brokers === undefined) return;
  const { b, admin, handler, released, late } = brokers;
  released();
  const messageId = crypto.randomUUID();
  const first = answerOf(await send(handler, "SendMessage", messageId, { returnImmediately: true }));
  assert.equal(first.result.task.status.state, "TASK_STATE_SUBMITTED");
  assert.equal((await admin`SELECT 1 FROM interop_awaited_replies`).length, 0, "a call that waits for nothing recorded a wait");
  const answering = send(handler, "SendMessage", messageId);
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies`).length === 1 || undefined, 10_000, "the retry's record");
  assert.equal(late(), 1);
  const [question] = await b.poll(openclaw, 1);
  await b.publish(openclaw, caller, { text: "pong" }, { replyTo: question.id });
  assert.deepEqual((await b.poll(caller, 10)).map((envelope) => envelope.payload), [], "the caller's in-order read on B took the reply");
  const { result } = answerOf(await answering);
  assert.equal(result.task.artifacts[0].parts[0].text, "pong");
  await waitFor(async () => (await admin`SELECT 1 FROM interop_awaited_replies`).length === 0 || undefined, 10_000, "the record ended");
});
