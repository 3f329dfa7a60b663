import assert from "node:assert/strict";
import { test } from "node:test";
import { toWebResponse } from "../src/runtime/web.ts";

const done = Promise.resolve();

test("toWebResponse() answers a large byte body (sent as its text on Deno) with exactly its bytes and content type, every time", async () => {
  const bytes = new TextEncoder().encode(JSON.stringify({ agents: "é".repeat(70_000) }));
  const headers = { "content-type": "application/json; charset=utf-8" };
  for (let i = 0; i < 2; i++) {
    const response = toWebResponse({ status: 200, headers, body: bytes }, done);
    assert.equal(response.headers.get("content-type"), headers["content-type"]);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes);
  }
});

test("toWebResponse() answers a large body that is not UTF-8, or has no content type, with its bytes unchanged", async () => {
  const binary = new Uint8Array(100_000).map((_, i) => (i * 7) % 256);
  const withType = toWebResponse({ status: 200, headers: { "content-type": "application/octet-stream" }, body: binary }, done);
  assert.deepEqual(new Uint8Array(await withType.arrayBuffer()), binary);
  const ascii = new TextEncoder().encode("x".repeat(100_000));
  const untyped = toWebResponse({ status: 200, headers: {}, body: ascii }, done);
  assert.deepEqual(new Uint8Array(await untyped.arrayBuffer()), ascii);
  assert.notEqual(untyped.headers.get("content-type"), "text/plain;charset=UTF-8");
});
