import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { OutboundState } from "../src/a2a/outbound_state.ts";
import { A2aRpcClient, InDoubtError } from "../src/a2a/rpc_client.ts";
import { parseSendResult } from "../src/a2a/task_view.ts";
import { InteropError } from "../src/errors.ts";
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
    const client = new A2aRpcClient({ url: `${base}/a2a-${status}`, token: () => "secret", timeoutMs: 5000 });
    await assert.rejects(client.call("SendMessage", () => ({})), (error: unknown) => {
      assert.ok(error instanceof InteropError);
      assert.equal(error.code, "unreachable");
      assert.match(error.message, new RegExp(`answered HTTP ${status}, a redirect to ${base}/landing`));
      return true;
    });
  }
  assert.deepEqual(methods, ["POST /a2a-301", "POST /a2a-303"], "the landing page was never asked");
});

test("OutboundState saves its A2A URL with the secrets hidden, and reads a file an older listen saved with it as given", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "interop-a2a-state-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "bob.a2a.json");
  const url = "http://u:pw@127.0.0.1:9900/a2a?token=s3cret";
  const state = new OutboundState(path, url, "bob");
  state.lastSent = 7;
  state.save();
  assert.equal(JSON.parse(readFileSync(path, "utf8")).url, "http://u:***@127.0.0.1:9900/a2a?token=***");
  // A new token for the same server is the same setup: what it follows is not forgotten.
  assert.equal(new OutboundState(path, "http://u:pw2@127.0.0.1:9900/a2a?token=n3w", "bob").lastSent, 7);
  writeFileSync(path, JSON.stringify({ url, agent: "bob", last_sent: 9, version: "1.0", records: [] }));
  assert.equal(new OutboundState(path, url, "bob").lastSent, 9);
  assert.equal(new OutboundState(path, "http://127.0.0.1:9901/a2a", "bob").lastSent, 0);
});

test("A2aRpcClient reads a SendMessage answered as SSE (which a JSON call did not ask for) by its first event: the server took it", async (t) => {
  // Red team 56: read as JSON, it was parked as "not an A2A answer" although the server was working on it.
  const client = await clientOf(t, (id, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id, result: { task: { id: "t1", status: { state: "TASK_STATE_WORKING" } } } })}\n\n`);
    res.end(`data: ${JSON.stringify({ jsonrpc: "2.0", id, result: { statusUpdate: { taskId: "t1" } } })}`);
  });
  assert.deepEqual(await client.call("SendMessage", () => ({})), { task: { id: "t1", status: { state: "TASK_STATE_WORKING" } } });
});

test("A2aRpcClient takes an answer for another request id as no answer to its own: in doubt, never its result or its error", async (t) => {
  const answers = [
    { id: "another", result: { task: { id: "t1" } } },
    { id: 7, error: { code: -32602, message: "Invalid params" } },
  ];
  for (const answer of answers) {
    const client = await clientOf(t, (_id, res) => res.end(JSON.stringify({ jsonrpc: "2.0", ...answer })));
    await assert.rejects(client.call("SendMessage", () => ({})), (error: unknown) => {
      assert.ok(error instanceof InDoubtError, String(error));
      assert.match(error.message, /was answered for another request \(id .*, not [0-9a-f-]{36}\): this one may have been taken/);
      return true;
    });
  }
  const lax = await clientOf(t, (_id, res) => res.end(JSON.stringify({ jsonrpc: "2.0", result: { task: { id: "t2" } } })));
  assert.deepEqual(await lax.call("SendMessage", () => ({})), { task: { id: "t2" } }, "an answer without an id is let by");
});

/** A client of a server of the test's that answers each JSON-RPC request (`id`: its id) with `answer`. */
async function clientOf(t: TestContext, answer: (id: unknown, res: ServerResponse) => void): Promise<A2aRpcClient> {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    answer(JSON.parse(body).id, res);
  });
  t.after(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return new A2aRpcClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/a2a`, token: undefined, timeoutMs: 5000 });
}
