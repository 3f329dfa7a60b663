import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeComment, encodeEvent, encodeRetry } from "../src/http/sse.ts";

test("encodeEvent() writes id, event and data fields ending in a blank line", () => {
  assert.equal(encodeEvent({ id: 7, data: '{"a":1}' }), 'id: 7\ndata: {"a":1}\n\n');
  assert.equal(encodeEvent({ event: "replaced", data: "x" }), "event: replaced\ndata: x\n\n");
});

test("encodeEvent() splits data on every kind of line break so a payload cannot end the event", () => {
  assert.equal(encodeEvent({ data: "a\nb\r\nc\rd" }), "data: a\ndata: b\ndata: c\ndata: d\n\n");
  assert.equal(encodeEvent({ data: "x\n\nid: 99" }), "data: x\ndata: \ndata: id: 99\n\n");
});

test("encodeEvent() refuses an id or event name with a newline", () => {
  assert.throws(() => encodeEvent({ id: "1\n2", data: "" }), /"id" cannot contain a newline/);
  assert.throws(() => encodeEvent({ event: "a\rb", data: "" }), /"event" cannot contain a newline/);
});

test("encodeComment() and encodeRetry() write comment and retry frames", () => {
  assert.equal(encodeComment("keepalive"), ": keepalive\n\n");
  assert.equal(encodeComment("a\nb"), ": a\n: b\n\n");
  assert.equal(encodeRetry(2000), "retry: 2000\n\n");
  assert.throws(() => encodeRetry(-1), RangeError);
});
