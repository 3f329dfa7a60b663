import assert from "node:assert/strict";
import { test } from "node:test";
import { partsOf, payloadOf } from "../src/a2a/interop_payload.ts";
import { contextIdOf, outboundMessageId } from "../src/a2a/message_ids.ts";
import { A2A_ERROR, A2aError, parseMessage, resolveMethod } from "../src/a2a/protocol.ts";
import { parseTaskState, toV03Task } from "../src/a2a/v03_shapes.ts";
import type { AgentName, Envelope } from "../src/message.ts";

function assertA2aError(work: () => unknown, code: number, pattern: RegExp) {
  assert.throws(work, (error: unknown) => {
    assert.ok(error instanceof A2aError);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}

test("resolveMethod() dispatches on the method name: v1.0 names without a header (as OpenClaw sends them) and v0.3 slash names", () => {
  assert.deepEqual(resolveMethod("SendMessage", null), { method: "SendMessage", version: "1.0" });
  assert.deepEqual(resolveMethod("message/send", ""), { method: "SendMessage", version: "0.3" });
  assert.deepEqual(resolveMethod("tasks/resubscribe", "0.3"), { method: "SubscribeToTask", version: "0.3" });
  assertA2aError(() => resolveMethod("tasks/explode", null), A2A_ERROR.methodNotFound, /tasks\/explode/);
  assertA2aError(() => resolveMethod("SendMessage", "2.0"), A2A_ERROR.versionNotSupported, /2\.0/);
});

test("parseMessage() reads v1.0 and v0.3 parts into one form and names the first bad field", () => {
  const v10 = parseMessage({ messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }, { data: { n: 1 } }] });
  const v03 = parseMessage({
    kind: "message",
    messageId: "m1",
    role: "user",
    parts: [{ kind: "text", text: "hi" }, { kind: "data", data: { n: 1 } }],
  });
  assert.deepEqual(v03, v10);
  assert.deepEqual(
    parseMessage({ messageId: "f", parts: [{ kind: "file", file: { uri: "https://x/y", mimeType: "text/csv" } }] }).parts,
    [{ url: "https://x/y", mediaType: "text/csv" }],
  );
  assertA2aError(() => parseMessage({ parts: [{ text: "x" }] }), A2A_ERROR.invalidParams, /messageId/);
  assertA2aError(() => parseMessage({ messageId: "m", parts: [] }), A2A_ERROR.invalidParams, /parts/);
  // It keys the message in the store: a NUL failed PostgreSQL's text, and lone surrogates all became U+FFFD (one key).
  for (const messageId of ["m\0x", "T-\ud800", "T-\udbff"]) {
    assertA2aError(() => parseMessage({ messageId, parts: [{ text: "x" }] }), A2A_ERROR.invalidParams, /messageId/);
  }
  assert.equal(parseMessage({ messageId: "T-\u{1F600}", parts: [{ text: "x" }] }).messageId, "T-\u{1F600}");
  assertA2aError(() => parseMessage({ messageId: "m", parts: [{ nothing: 1 }] }), A2A_ERROR.invalidParams, /parts\[0\]/);
  assertA2aError(
    () => parseMessage({ messageId: "m", contextId: "a b", parts: [{ text: "x" }] }),
    A2A_ERROR.invalidParams,
    /contextId/,
  );
});

const envelope = (payload: Envelope["payload"], thread?: Envelope["thread"]): Envelope => ({
  id: 42,
  from: "hermes" as AgentName,
  to: "openclaw" as AgentName,
  timestamp: "2026-11-29T19:00:00.000Z",
  payload,
  ...(thread ? { thread } : {}),
});

test("an A2A message keeps its parts and contextId through an interop payload", () => {
  const message = parseMessage({ messageId: "m1", parts: [{ text: "hello" }, { data: { k: "v" } }] });
  const payload = payloadOf(message, "ctx-1");
  assert.equal(payload.text, "hello");
  assert.deepEqual(partsOf(payload), message.parts);
  assert.equal(contextIdOf(envelope(payload)), "ctx-1");
});

test("a plain interop payload goes out as its text, plus a data part when it holds more than the text", () => {
  assert.deepEqual(partsOf({ text: "hi" }), [{ text: "hi" }]);
  assert.deepEqual(partsOf({ message: "hi", urgent: true }), [
    { text: "hi" },
    { data: { message: "hi", urgent: true }, mediaType: "application/json" },
  ]);
  assert.deepEqual(partsOf({ n: 1 }), [{ data: { n: 1 }, mediaType: "application/json" }]);
  assert.equal(contextIdOf(envelope({ text: "x" }, { replyTo: 7, conversation: 5, hops: 1 })), "interop-5");
  assert.equal(contextIdOf(envelope({ text: "x" })), "interop-42");
});

test("outboundMessageId() is fixed per message and differs between data dirs that reuse an id", () => {
  const first = outboundMessageId(envelope({ text: "x" }));
  assert.equal(first, outboundMessageId(envelope({ text: "x" })));
  assert.notEqual(first, outboundMessageId({ ...envelope({ text: "x" }), timestamp: "2026-11-30T00:00:00.000Z" }));
});

test("tasks convert to v0.3 form with lowercase states and kind-tagged parts", () => {
  const task = toV03Task({
    id: "t1",
    contextId: "c1",
    status: { state: "TASK_STATE_COMPLETED", timestamp: "2026-11-29T19:00:00.000Z" },
    artifacts: [{ artifactId: "a1", parts: [{ text: "done" }] }],
  });
  assert.equal(task.kind, "task");
  assert.deepEqual(task.status, { state: "completed", timestamp: "2026-11-29T19:00:00.000Z" });
  assert.deepEqual(task.artifacts, [{ artifactId: "a1", parts: [{ kind: "text", text: "done" }] }]);
  assert.equal(parseTaskState("input-required"), "TASK_STATE_INPUT_REQUIRED");
  assert.equal(parseTaskState("TASK_STATE_WORKING"), "TASK_STATE_WORKING");
  assert.equal(parseTaskState("bogus"), undefined);
});

test("resolveMethod() and parseTaskState() do not take Object.prototype's names for methods or states", () => {
  for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
    assertA2aError(() => resolveMethod(name, null), A2A_ERROR.methodNotFound, /Method not found/);
    assert.equal(parseTaskState(name), undefined);
  }
});
