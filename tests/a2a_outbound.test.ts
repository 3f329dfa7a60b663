import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { A2aRpcClient } from "../src/a2a/rpc_client.ts";
import { InteropError } from "../src/errors.ts";
import { parseSendResult } from "../src/a2a/task_view.ts";
import { hermesPeerToken, withPeerToken } from "../src/integrate/a2a_peers.ts";

test("parseSendResult() reads a v1.0 {task}, taking the artifacts as the answer", () => {
  const view = parseSendResult({
    task: {
      id: "t1",
      contextId: "c",
      status: {
        state: "TASK_STATE_COMPLETED",
        message: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "status" }] },
      },
      artifacts: [{ artifactId: "a", parts: [{ text: "one" }] }, { artifactId: "b", parts: [{ data: { n: 2 } }] }],
    },
  });
  assert.deepEqual(view, {
    taskId: "t1",
    state: "TASK_STATE_COMPLETED",
    answer: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "one" }, { data: { n: 2 } }] },
  });
});

test("parseSendResult() reads a v0.3 bare task, falling back to its status message when it has no artifact", () => {
  const view = parseSendResult({
    kind: "task",
    id: "t2",
    contextId: "c",
    status: {
      state: "input-required",
      message: { kind: "message", messageId: "q", role: "agent", parts: [{ kind: "text", text: "Which city?" }] },
    },
  });
  assert.equal(view?.state, "TASK_STATE_INPUT_REQUIRED");
  assert.deepEqual(view?.answer?.parts, [{ text: "Which city?" }]);
});

test("parseSendResult() takes a direct message answer as a completed exchange with no task to follow", () => {
  const view = parseSendResult({ message: { messageId: "r", role: "ROLE_AGENT", parts: [{ text: "hi" }] } });
  assert.equal(view?.taskId, undefined);
  assert.equal(view?.state, "TASK_STATE_COMPLETED");
  assert.deepEqual(view?.answer?.parts, [{ text: "hi" }]);
});

test("parseSendResult() refuses what is neither a task nor a message", () => {
  assert.equal(parseSendResult({ ok: true }), undefined);
  assert.equal(parseSendResult({ task: { id: "t", status: { state: "bogus" } } }), undefined);
  assert.equal(parseSendResult("WORKING"), undefined);
});

test("withPeerToken() sets one peer's entry in A2A_PEER_TOKENS and keeps the others", () => {
  assert.equal(withPeerToken(undefined, "openclaw", "x"), "openclaw:x");
  assert.equal(withPeerToken("alice:1, openclaw:old,bob:2", "openclaw", "new"), "alice:1,bob:2,openclaw:new");
  assert.equal(hermesPeerToken("A=1\nA2A_PEER_TOKENS=alice:1,openclaw:tok\n", "openclaw"), "tok");
  assert.equal(hermesPeerToken("A2A_PEER_TOKENS=alice:1\n", "openclaw"), undefined);
});

test("A2aRpcClient never follows a redirect: a 301 or 303 is a setup problem to retry, naming where it points", async (t) => {
  // The page a redirect points at answers any request with a JSON-RPC result: followed, the send would pass.
  const methods: string[] = [];
  const server = createServer((req, res) => {
    methods.push(`${req.method} ${req.url}`);
    if (req.url === "/landing") return res.end(JSON.stringify({ jsonrpc: "2.0", id: "x", result: { task: {} } }));
    res.writeHead(req.url === "/a2a-301" ? 301 : 303, { location: "/landing" }).end();
  });
  t.after(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  for (const status of [301, 303]) {
    const client = new A2aRpcClient({ url: `${base}/a2a-${status}`, token: "secret", timeoutMs: 5000 });
    await assert.rejects(client.call("SendMessage", () => ({})), (error: unknown) => {
      assert.ok(error instanceof InteropError);
      assert.equal(error.code, "unreachable");
      assert.match(error.message, new RegExp(`answered HTTP ${status}, a redirect to ${base}/landing`));
      return true;
    });
  }
  assert.deepEqual(methods, ["POST /a2a-301", "POST /a2a-303"], "the landing page was never asked");
});
