/** What a stopping broker answers to the requests that still arrive on open connections (`stoppingGate`). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AgentCard, GetTaskRequest, SendMessageRequest } from "@a2a-js/sdk";
import { JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { agentCard } from "../src/a2a/agent_card.ts";
import type { AgentName } from "../src/message.ts";
import { stoppingGate } from "../src/http/stopping_gate.ts";
import type { Handler, OutgoingResponse } from "../src/runtime/types.ts";
import { isStream } from "../src/runtime/types.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { bodyText } from "./helpers/response.ts";

const BASE = "http://localhost";

/** A gate already stopped, in front of a handler that must not be reached. */
function stoppedGate(): Handler {
  const gate = stoppingGate(() => Promise.reject(new Error("reached the handler after stop")), 65536);
  gate.stop();
  return gate.handler;
}

function post(path: string, body: string): Request {
  return new Request(`${BASE}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
}

/** The gate's answer as a web Response, as a fetch would give it to a client. */
async function fetchThrough(handler: Handler, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  const answer: OutgoingResponse = await handler(fromWebRequest(new Request(input, init)));
  assert.ok(!isStream(answer));
  return new Response(bodyText(answer), { status: answer.status, headers: answer.headers });
}

test("stoppingGate refuses an A2A call as a JSON-RPC error with the call's id, 503 with Retry-After", async () => {
  const handler = stoppedGate();
  const answer = await handler(fromWebRequest(post("/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: "call-7", method: "SendMessage", params: {} }))));
  assert.ok(!isStream(answer));
  assert.equal(answer.status, 503);
  assert.equal(answer.headers["retry-after"], "1");
  const body = JSON.parse(bodyText(answer));
  assert.deepEqual([body.jsonrpc, body.id, body.error.code, body.error.data], ["2.0", "call-7", -32000, { code: "storage_unavailable", retryAfter: 1 }]);
  assert.match(body.error.message, /The broker is stopping/);
});

test("stoppingGate answers an A2A call whose id cannot be read with id null", async () => {
  const handler = stoppedGate();
  for (const text of ["not json", "[1]", JSON.stringify({ jsonrpc: "2.0", id: { nested: 1 }, method: "GetTask" })]) {
    const answer = await handler(fromWebRequest(post("/a2a/hermes", text)));
    assert.ok(!isStream(answer));
    const body = JSON.parse(bodyText(answer));
    assert.deepEqual([answer.status, body.id, body.error.code], [503, null, -32000], text);
  }
});

test("stoppingGate refuses other requests with plain JSON, 503 storage_unavailable", async () => {
  const handler = stoppedGate();
  for (const request of [new Request(`${BASE}/poll?agent=hermes`), new Request(`${BASE}/a2a`)]) {
    const answer = await handler(fromWebRequest(request));
    assert.ok(!isStream(answer));
    assert.deepEqual([answer.status, answer.headers["retry-after"], JSON.parse(bodyText(answer)).code], [503, "1", "storage_unavailable"]);
  }
});

test("@a2a-js/sdk's client reads a stopping broker's refusal as a JSON-RPC error carrying its retryAfter, streamed or not", async () => {
  // A plain {"error": …} reached the SDK as an Error naming only the HTTP status, and a streamed call's as a
  // JsonRpcTransportError saying "An unexpected error occurred.": the client could not tell the broker was stopping,
  // nor when to come back.
  const handler = stoppedGate();
  const card = AgentCard.fromJSON(agentCard("hermes" as AgentName, BASE));
  const transport = await new JsonRpcTransportFactory({ fetchImpl: (input, init) => fetchThrough(handler, input, init) }).create(`${BASE}/a2a/hermes`, card);
  const stopping = (error: { message?: string; data?: { retryAfter?: number } }) => {
    assert.match(error.message ?? "", /The broker is stopping/);
    assert.equal(error.data?.retryAfter, 1);
    return true;
  };
  await assert.rejects(transport.getTask(GetTaskRequest.fromJSON({ id: "task-1" })), stopping);
  const send = SendMessageRequest.fromJSON({ message: { messageId: "m-1", role: "ROLE_USER", parts: [{ text: "hi" }] } });
  await assert.rejects(transport.sendMessageStream(send).next(), stopping);
});
