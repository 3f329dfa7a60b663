/**
 * Red-team finding (review34): every stream of an A2A task, and every blocking SendMessage waiting on it, reads the
 * task again, its message and reply whole, at each change, and one agent's token could open as many of them on one
 * task as its --max-requests-per-agent share: with 300 streams of its own 1 MB task, its 1 MB reply took 39 s to
 * publish and /status waited 67 s. A task now has at most 4 followers (SubscribeToTask, SendStreamingMessage or a
 * blocking SendMessage with its messageId again): past them 429.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { rpc } from "../helpers/a2a.ts";
import { tempDir } from "../helpers/cli.ts";
import { createToken } from "../helpers/tokens.ts";

const MAX_STREAMS = 4;

/** A task stream's POST, resolving once its head came: the broker counts it from then until `streams` aborts it. */
function openStream(broker: RunningBroker, token: string, method: string, params: unknown, streams: AbortController): Promise<Response> {
  return fetch(`${broker.url}/a2a/mallory`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "a2a-version": "1.0" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method, params }),
    signal: AbortSignal.any([streams.signal, AbortSignal.timeout(120_000)]),
  });
}

async function assertStreamsFull(response: Response, taskId: string): Promise<{ code: string; taskId?: string }> {
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "1");
  const body = await response.json();
  assert.match(body.error.message, new RegExp(`Too many waits and streams of task ${taskId}: ${MAX_STREAMS} open, the most one task may have is ${MAX_STREAMS}`));
  assert.equal(body.error.data.code, "too_many_requests");
  return body.error.data;
}

test("an A2A task has at most 4 streams and blocking calls open: the 5th SubscribeToTask, a retried SendStreamingMessage or blocking SendMessage get 429, another task still streams, a closed stream frees its place", async (t) => {
  const dir = tempDir();
  const streams = new AbortController();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    streams.abort();
    await broker?.cleanup();
    dir.cleanup();
  });
  const mallory = await createToken(dir.path, "mallory");
  broker = await startBroker({ dataDir: dir.path, args: ["--agents", "mallory"] });

  // A message to itself, which it alone may answer: a task no other agent settles.
  const message = { messageId: "own-task", role: "ROLE_USER", parts: [{ text: "hold" }] };
  const sent = await rpc(broker.url, "mallory", mallory, "SendMessage", { message, configuration: { returnImmediately: true } }, { "a2a-version": "1.0" });
  const taskId = (sent.body.result!.task as { id: string }).id;

  const first = new AbortController();
  const opened = await openStream(broker, mallory, "SubscribeToTask", { id: taskId }, first);
  assert.equal(opened.status, 200);
  assert.match(opened.headers.get("content-type") ?? "", /text\/event-stream/);
  for (let i = 2; i <= MAX_STREAMS; i++) {
    assert.equal((await openStream(broker, mallory, "SubscribeToTask", { id: taskId }, streams)).status, 200, `stream ${i}`);
  }
  await assertStreamsFull(await openStream(broker, mallory, "SubscribeToTask", { id: taskId }, streams), taskId);
  const again = await assertStreamsFull(await openStream(broker, mallory, "SendStreamingMessage", { message }, streams), taskId);
  assert.equal(again.taskId, taskId, "the refusal names the task its message is stored as");
  const blocking = await assertStreamsFull(await openStream(broker, mallory, "SendMessage", { message }, streams), taskId);
  assert.equal(blocking.taskId, taskId);

  const other = { messageId: "other-task", role: "ROLE_USER", parts: [{ text: "another" }] };
  assert.equal((await openStream(broker, mallory, "SendStreamingMessage", { message: other }, streams)).status, 200, "another task's stream");

  // Its place is the task's again once the broker sees the first stream closed.
  first.abort();
  await waitFor(async () => {
    const response = await openStream(broker!, mallory, "SubscribeToTask", { id: taskId }, streams);
    await response.body?.cancel().catch(() => {});
    return response.status === 200;
  }, 30_000, "a place for the task's stream once one closed");
});
