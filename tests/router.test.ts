import assert from "node:assert/strict";
import { test } from "node:test";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { DEFAULT_AGENT_ANSWER_MEMORY } from "../src/broker/answer_memory.ts";
import { Broker } from "../src/broker/broker.ts";
import type { AgentName } from "../src/message.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { createRouter } from "../src/http/router.ts";
import type { Handler, OutgoingResponse, StreamSink } from "../src/runtime/types.ts";
import { isStream } from "../src/runtime/types.ts";
import { waitFor } from "./helpers/broker.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { countJsonParses } from "./helpers/json_parses.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";

interface Fixture {
  handler: Handler;
  broker: Broker;
  call(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<OutgoingResponse>;
  json(method: string, path: string, body?: string, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
}

async function withRouter(
  work: (fixture: Fixture) => Promise<void>,
  { maxBodyBytes = 1024, rateLimit = 0, now = Date.now, answerBudget }: {
    maxBodyBytes?: number;
    rateLimit?: number;
    now?: () => number;
    answerBudget?: number;
  } = {},
): Promise<void> {
  const dir = tempDir();
  // Opened first: nothing that can throw is awaited between the broker's open and the try that closes it.
  const auth = await Authenticator.open(new TokenFile(dir.path));
  const broker = await Broker.open(testBrokerOptions(new SqliteStore(dir.path, "relaxed"), dir.path, { rateLimit, now, answerBudget }));
  const metrics = new BrokerMetrics(() => broker.status(), []);
  const handler = createRouter(broker, { auth, metrics, maxBodyBytes, retryMs: 2000, onInternalError: (error) => assert.fail(String(error)) });
  const call = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    handler(fromWebRequest(new Request(`http://localhost${path}`, { method, body, headers: { "content-type": "application/json", ...headers } })));
  const json = async (method: string, path: string, body?: string, headers?: Record<string, string>) => {
    const response = await call(method, path, body, headers);
    assert.ok(!isStream(response));
    assert.match(response.headers["content-type"], /^application\/json/);
    return { status: response.status, body: JSON.parse(bodyText(response)) };
  };
  try {
    await work({ handler, broker, call, json });
  } finally {
    await broker.close();
    dir.cleanup();
  }
}

/** Opens a stream response into a sink that records what was written. */
function capture(response: OutgoingResponse): { text(): string; close(): void } {
  assert.ok(isStream(response));
  let text = "";
  const closed = new AbortController();
  const sink: StreamSink = {
    write(chunk) {
      text += chunk;
      return 0;
    },
    drained: () => Promise.resolve(),
    close: () => closed.abort(),
    destroy: () => closed.abort(),
    closed: closed.signal,
  };
  response.open(sink);
  return { text: () => text, close: () => closed.abort() };
}

/** Time for something that must not happen to show itself (what must happen is waited for with waitFor). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 30));

test("POST /broadcast without to delivers to the other agent and /poll returns it once", async () => {
  await withRouter(async ({ json }) => {
    const sent = await json("POST", "/broadcast?from=hermes", JSON.stringify({ message: "hi", seq: 1 }));
    assert.equal(sent.status, 200);
    assert.equal(sent.body.delivered, true);
    assert.deepEqual(sent.body.to, ["openclaw"]);
    const polled = await json("GET", "/poll?agent=openclaw");
    assert.deepEqual(polled.body, [{ message: "hi", seq: 1, interop: { id: sent.body.id, from: "hermes", to: "openclaw", timestamp: sent.body.timestamp } }]);
    assert.deepEqual((await json("GET", "/poll?agent=openclaw")).body, []);
    assert.deepEqual((await json("GET", "/poll?agent=hermes")).body, []);
  });
});

test("GET /subscribe replays pending messages with ids and then follows live ones", async () => {
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":1}');
    const response = await call("GET", "/subscribe?agent=openclaw");
    assert.equal(response.status, 200);
    assert.equal(response.headers["content-type"], "text/event-stream; charset=utf-8");
    assert.equal(response.headers["cache-control"], "no-cache");
    assert.equal(response.headers["x-accel-buffering"], "no");
    const stream = capture(response);
    await json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":2}');
    await waitFor(() => stream.text().includes("id: 2\n"), 10_000, "the live message on the stream");
    const frames = stream.text().split("\n\n").filter((frame) => frame.startsWith("id: "));
    assert.equal(frames.length, 2);
    assert.match(frames[0], /^id: 1\ndata: \{"n":1,"interop":\{"id":1,/);
    assert.match(frames[1], /^id: 2\ndata: \{"n":2,"interop":\{"id":2,/);
    assert.ok(stream.text().startsWith("retry: 2000\n\n"));
    assert.deepEqual((await json("GET", "/poll?agent=openclaw")).body, [], "streamed messages are delivered");
    stream.close();
  });
});

test("Last-Event-ID resumes exactly after the id, and skips what a poll took", async () => {
  await withRouter(async ({ call, json }) => {
    for (let n = 1; n <= 3; n++) await json("POST", "/broadcast?from=hermes&to=openclaw", `{"n":${n}}`);
    const first = capture(await call("GET", "/subscribe?agent=openclaw"));
    await waitFor(() => first.text().includes("id: 3\n"), 10_000, "the pending messages on the first stream");
    first.close();
    for (let n = 4; n <= 5; n++) await json("POST", "/broadcast?from=hermes&to=openclaw", `{"n":${n}}`);
    assert.deepEqual((await json("GET", "/poll?agent=openclaw&limit=1")).body.map((m: any) => m.n), [4]);
    const resumed = capture(await call("GET", "/subscribe?agent=openclaw", undefined, { "last-event-id": "2" }));
    await waitFor(() => resumed.text().includes("id: 5\n"), 10_000, "the resumed stream to reach message 5");
    const ids = [...resumed.text().matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
    assert.deepEqual(ids, [3, 5]);
    resumed.close();
  });
});

test("a subscribe that says it had the agent's inbox on this store is refused (410 agent_removed) once the operator removed it; any other creates it", async () => {
  await withRouter(async ({ broker, call, json }) => {
    const resume = (store: string) => ({ "last-event-id": "0", "interop-store": store, "interop-had-inbox": store });
    // This store without a record of bob (restored from a backup taken before he existed): the read creates him.
    const restored = capture(await call("GET", "/subscribe?agent=bob", undefined, resume(broker.storeId)));
    restored.close();
    assert.ok(Object.hasOwn(broker.status().agents, "bob"));
    await broker.removeAgent("bob" as AgentName, true);
    assert.deepEqual(await json("GET", "/subscribe?agent=bob", undefined, resume(broker.storeId)), {
      status: 410,
      body: { error: "bob was removed by the operator; its inbox is not created again for a client that had it", code: "agent_removed" },
    });
    assert.ok(!Object.hasOwn(broker.status().agents, "bob"));
    // Another store's client (this broker restarted on a fresh data dir) never had bob here: the read creates him.
    const elsewhere = capture(await call("GET", "/subscribe?agent=bob", undefined, resume("another-store")));
    elsewhere.close();
    assert.ok(Object.hasOwn(broker.status().agents, "bob"));
    // Created again: no longer removed.
    const again = capture(await call("GET", "/subscribe?agent=bob", undefined, resume(broker.storeId)));
    again.close();
    // The old wire API: a bare subscribe creates the inbox, as before.
    const bare = capture(await call("GET", "/subscribe?agent=carol"));
    bare.close();
    assert.ok(Object.hasOwn(broker.status().agents, "carol"));
    // Existing: served as ever.
    const existing = capture(await call("GET", "/subscribe?agent=carol", undefined, resume(broker.storeId)));
    existing.close();
  });
});

test("a wait, poll or peek that says it had the agent's inbox on this store is refused (410 agent_removed) once the operator removed it; /wait names its store", async () => {
  await withRouter(async ({ broker, call, json }) => {
    const waited = await call("GET", "/wait?agent=bob&timeout=0.01");
    assert.equal(waited.status, 204);
    assert.equal(waited.headers["interop-store"], broker.storeId, "a waiter learns the store it read the inbox on");
    const had = { "interop-had-inbox": broker.storeId };
    // Still there: the header changes nothing.
    assert.equal((await json("GET", "/poll?agent=bob", undefined, had)).status, 200);
    await broker.removeAgent("bob" as AgentName, true);
    const refused = {
      status: 410,
      body: { error: "bob was removed by the operator; its inbox is not created again for a client that had it", code: "agent_removed" },
    };
    for (const path of ["/wait?agent=bob&timeout=0.01", "/wait?agent=bob&timeout=0.01&reply_to=1", "/poll?agent=bob", "/poll?agent=bob&peek=1"]) {
      assert.deepEqual(await json("GET", path, undefined, had), refused, path);
    }
    assert.ok(!Object.hasOwn(broker.status().agents, "bob"), "not created again");
    // Another store's client, or one that says nothing (the old clients), creates it by reading, as before.
    assert.equal((await json("GET", "/poll?agent=bob", undefined, { "interop-had-inbox": "another-store" })).status, 200);
    assert.ok(Object.hasOwn(broker.status().agents, "bob"));
  });
});

test("a read by a client that had the inbox, overtaken by the operator's removal, is refused 410 rather than create the inbox again; an /ask reads as its asker", async () => {
  await withRouter(async ({ broker, json }) => {
    const had = { "interop-had-inbox": broker.storeId };
    const refused = [410, "agent_removed"];
    const removedDuring = async (request: Promise<{ status: number; body: any }>) => {
      // Within the poll's settle clock (SETTLE_MS): its check found the inbox; its take comes after the removal.
      await new Promise((resolve) => setTimeout(resolve, 5));
      await broker.removeAgent("bob" as AgentName, true);
      const answer = await request;
      assert.deepEqual([answer.status, answer.body.code], refused);
      assert.ok(!Object.hasOwn(broker.status().agents, "bob"), "not created again");
    };
    await broker.addAgent("bob" as AgentName);
    await removedDuring(json("GET", "/poll?agent=bob", undefined, had));
    // Ended with the read: a client that never had bob creates him, as before.
    assert.equal((await json("GET", "/poll?agent=bob")).status, 200);
    await removedDuring(json("GET", "/wait?agent=bob&timeout=5", undefined, had));
    // An ask waits on its asker's inbox: one by a client that had it is refused once the asker was removed.
    const asked = await json("POST", "/ask?from=bob&to=hermes&timeout=0.05", JSON.stringify({ text: "there?" }), had);
    assert.deepEqual([asked.status, asked.body.code], refused);
    assert.ok(!Object.hasOwn(broker.status().agents, "bob"), "not created again by the ask");
    // So is a question whose reply is held for its sender (interop mcp's ask).
    const held = await json("POST", "/broadcast?from=bob&to=hermes&hold_reply=5", JSON.stringify({ text: "there?" }), had);
    assert.deepEqual([held.status, held.body.code], refused);
    assert.ok(!Object.hasOwn(broker.status().agents, "bob"), "not created again by the held question");
  });
});

test("a dead letter parked while the operator removes its agent is refused 404 and does not create the inbox again", async () => {
  // Red team, session 47: 12 of 20 parks racing a forced removal made the agent again (20 of 20 on PostgreSQL).
  await withRouter(async ({ broker, json }) => {
    await broker.addAgent("bob" as AgentName);
    const { body: sent } = await json("POST", "/broadcast?from=hermes&to=bob", JSON.stringify({ text: "deploy" }));
    // The park finds the message; the removal deletes it (and the inbox) before the park looks the inbox up.
    const parking = broker.deadLetters.park("bob" as AgentName, sent.id, "refused");
    assert.equal(await broker.removeAgent("bob" as AgentName, true), 1);
    await assert.rejects(parking, { code: "unknown_message" });
    assert.ok(!Object.hasOwn(broker.status().agents, "bob"), "not created again");
  });
});

test("a leased reader's take after the operator removed the agent (force) is refused 410 agent_removed, not an empty take of a new inbox", async () => {
  // The removal wins (the lease goes with the inbox); the holder's take, which names no store, created the inbox
  // again and answered [] for what it had been shown.
  await withRouter(async ({ broker, call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }));
    const shown = await call("GET", "/poll?agent=openclaw&peek=1&lease=30");
    assert.ok(!isStream(shown));
    const lease = shown.headers["interop-lease"];
    assert.ok(lease);
    shown.written?.();
    assert.equal(await broker.removeAgent("openclaw" as AgentName, true), 1);
    const taken = await json("GET", `/poll?agent=openclaw&up_to=${JSON.parse(bodyText(shown))[0].interop.id}&lease_id=${lease}`);
    assert.deepEqual([taken.status, taken.body.code], [410, "agent_removed"]);
    assert.ok(!Object.hasOwn(broker.status().agents, "openclaw"), "not created again");
  });
});

test("a second stream for an agent replaces the first, which is told why: an SSE client by an event, any other by a comment", async () => {
  await withRouter(async ({ call }) => {
    const sse = { accept: "text/event-stream" };
    const first = capture(await call("GET", "/subscribe?agent=openclaw", undefined, sse));
    // The old bridge's client asks for nothing and writes every data: line to its pipe as a message.
    const plain = capture(await call("GET", "/subscribe?agent=openclaw"));
    await waitFor(() => first.text().includes("event: replaced"), 10_000, "the first stream to be told");
    assert.match(first.text(), /event: replaced\ndata: \{"reason":"a newer stream for openclaw took over"\}\n\n$/);
    const second = capture(await call("GET", "/subscribe?agent=openclaw", undefined, sse));
    await waitFor(() => plain.text().includes(": replaced"), 10_000, "the plain stream to be told");
    assert.match(plain.text(), /: replaced: a newer stream for openclaw took over\n\n$/);
    assert.doesNotMatch(plain.text(), /^(data|event):/m);
    assert.doesNotMatch(second.text(), /replaced/);
    second.close();
  });
});

test("bad input gets a clear JSON error and leaves stored messages intact", async () => {
  await withRouter(async ({ json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", '{"keep":1}');
    const cases: Array<[string, string, string | undefined, Record<string, string> | undefined, number, string]> = [
      ["POST", "/broadcast?from=hermes", "{bad json", undefined, 400, "invalid_json"],
      ["POST", "/broadcast?from=hermes", "[1]", undefined, 400, "invalid_body"],
      ["POST", "/broadcast?from=hermes", "", undefined, 400, "invalid_body"],
      ["POST", "/broadcast", "{}", undefined, 400, "invalid_agent"],
      ["POST", "/broadcast?from=a%2Fb", "{}", undefined, 400, "invalid_agent"],
      ["POST", "/broadcast?from=hermes&to=with%20space", "{}", undefined, 400, "invalid_agent"],
      ["POST", "/broadcast?from=hermes", JSON.stringify({ big: "x".repeat(2000) }), undefined, 413, "payload_too_large"],
      ["POST", "/broadcast?from=solo&to=solo", '{"n":1}', undefined, 200, ""],
      ["GET", "/poll", undefined, undefined, 400, "invalid_agent"],
      ["GET", "/poll?agent=openclaw&limit=0", undefined, undefined, 400, "invalid_query"],
      // Red team, session 45: read by `Number` as 16 and 0.001 (" 0.001").
      ["GET", "/poll?agent=openclaw&limit=0x10", undefined, undefined, 400, "invalid_query"],
      ["GET", "/wait?agent=openclaw&timeout=%200.001", undefined, undefined, 400, "invalid_query"],
      // Red team, session 46: read as a take, these took what their client meant only to look at.
      ["GET", "/poll?agent=openclaw&peek=yes", undefined, undefined, 400, "invalid_query"],
      ["GET", "/wait?agent=openclaw&peek=on&lease=5", undefined, undefined, 400, "invalid_query"],
      // Red team, session 46: read as "not forced" (409 agent_busy), not as what its operator asked for.
      ["DELETE", "/agents?agent=openclaw&force=yes", undefined, undefined, 400, "invalid_query"],
      // Newcomer, session 51: published to the first `to` alone, answered 200; the second never had it.
      ["POST", "/broadcast?from=hermes&to=openclaw&to=solo", '{"n":2}', undefined, 400, "invalid_query"],
      ["POST", "/broadcast?from=hermes&from=solo&to=openclaw", '{"n":3}', undefined, 400, "invalid_query"],
      ["GET", "/poll?agent=openclaw&agent=solo", undefined, undefined, 400, "invalid_query"],
      ["GET", "/ntfy/openclaw/json?poll=1&since=all&since=1", undefined, undefined, 400, "invalid_query"],
      ["GET", "/subscribe?agent=openclaw", undefined, { "last-event-id": "abc" }, 400, "invalid_event_id"],
      ["GET", "/subscribe?agent=openclaw", undefined, { "last-event-id": "999" }, 409, "unknown_event_id"],
      ["GET", "/ntfy/openclaw/json?since=999", undefined, undefined, 409, "unknown_event_id"],
      ["GET", "/ntfy/openclaw/json?poll=1&since=999", undefined, undefined, 409, "unknown_event_id"],
      ["GET", "/nowhere", undefined, undefined, 404, "not_found"],
      ["DELETE", "/poll?agent=openclaw", undefined, undefined, 405, "method_not_allowed"],
    ];
    for (const [method, path, body, headers, status, code] of cases) {
      const answer = await json(method, path, body, headers);
      assert.equal(answer.status, status, `${method} ${path} ${body?.slice(0, 20)}`);
      if (code) {
        assert.equal(answer.body.code, code, `${method} ${path}`);
        assert.equal(typeof answer.body.error, "string");
      }
      // An ntfy client names the id with since=, not Last-Event-ID.
      if (code === "unknown_event_id") assert.match(answer.body.error, path.startsWith("/ntfy/") ? /without since=/ : /without Last-Event-ID/, path);
    }
    const polled = (await json("GET", "/poll?agent=openclaw")).body;
    assert.deepEqual(polled.map((message: any) => message.keep), [1]);
  });
});

test("a broadcast with no other known agent is refused, and a full inbox answers 507", async () => {
  await withRouter(async ({ json }) => {
    const alone = await json("POST", "/broadcast?from=solo", "{}");
    assert.equal(alone.status, 200, "hermes and openclaw are known, so solo reaches them");
    for (let n = 1; n < 5; n++) assert.equal((await json("POST", "/broadcast?from=hermes&to=openclaw", "{}")).status, 200);
    const full = await json("POST", "/broadcast?from=hermes&to=openclaw", "{}");
    assert.equal(full.status, 507);
    assert.equal(full.body.code, "inbox_full");
    assert.match(full.body.error, /openclaw has 5 undelivered messages \(the cap is 5\)/);
    assert.equal((await json("GET", "/poll?agent=openclaw")).body.length, 5);
    assert.equal((await json("POST", "/broadcast?from=hermes&to=openclaw", "{}")).status, 200);
  });
});

test("a batch (one JSON object per line) is stored in one go, in order; a bad line or a full inbox stores none of it", async () => {
  await withRouter(async ({ json }) => {
    const ndjson = { "content-type": "application/x-ndjson" };
    const batch = await json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":1}\n{"n":2}\n\n{"n":3}\n', ndjson);
    assert.equal(batch.status, 200);
    assert.equal(batch.body.messages, 3);
    assert.deepEqual(batch.body.ids, [batch.body.id, batch.body.id + 1, batch.body.id + 2]);

    const bad = await json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":4}\n[5]\n', ndjson);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error, /^Line 2 of the batch: Invalid body: the JSON must be an object.*; nothing of the batch was stored$/);
    const overCap = await json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":4}\n{"n":5}\n{"n":6}\n', ndjson);
    assert.equal(overCap.status, 507, "3 + 3 is past the cap of 5: the whole batch is refused");
    assert.equal(
      overCap.body.error,
      "Inbox full: a batch of 3 messages does not fit: openclaw has room for 2 more (3 undelivered, the cap is 5); send at most 2 at a time",
    );
    const empty = await json("POST", "/broadcast?from=hermes&to=openclaw", "\n\n", ndjson);
    assert.equal(empty.status, 400);

    const polled = (await json("GET", "/poll?agent=openclaw")).body;
    assert.deepEqual(polled.map((message: { n: number }) => message.n), [1, 2, 3]);
  });
});

test("GET /status answers from a cached document that follows every change at once", async () => {
  await withRouter(async ({ json }) => {
    const pending = async () => (await json("GET", "/status")).body.agents.openclaw.pending;
    assert.equal(await pending(), 0);
    await json("POST", "/broadcast?from=hermes&to=openclaw", "{}");
    assert.equal(await pending(), 1, "a publish shows in the same second");
    await json("POST", "/broadcast?from=hermes&to=openclaw", "{}");
    assert.equal(await pending(), 2);
    await json("GET", "/poll?agent=openclaw&limit=1");
    assert.equal(await pending(), 1, "a poll shows too");
    assert.equal((await json("GET", "/status")).body.agents.newcomer, undefined);
    await json("POST", "/broadcast?from=hermes&to=newcomer", "{}");
    assert.equal((await json("GET", "/status")).body.agents.newcomer.pending, 1, "a new inbox shows");
  });
});

test("GET /status keeps the old bridge's keys and adds pid, version and per-agent detail", async () => {
  await withRouter(async ({ json }) => {
    await json("POST", "/broadcast?from=hermes", "{}");
    const { status, body } = await json("GET", "/status");
    assert.equal(status, 200);
    assert.deepEqual(body.queues, { hermes: 0, openclaw: 1 });
    assert.deepEqual(body.subscribers, { hermes: false, openclaw: false });
    assert.equal(body.agents.hermes.online, true);
    assert.equal(body.agents.openclaw.online, false);
    assert.equal(body.agents.openclaw.pending, 1);
    assert.equal(body.service, "interop");
    assert.equal(body.pid, process.pid);
    assert.equal(typeof body.version, "string");
  });
});

test("a sender past the rate limit gets 429 with Retry-After, and other senders are not slowed", async () => {
  let now = 1_000_000;
  await withRouter(async ({ call, json }) => {
    let inbox = 0; // a new recipient each time, so the pending cap (5) stays out of the way
    const post = (from: string) => json("POST", `/broadcast?from=${from}&to=r${inbox++}`, "{}");
    for (let n = 0; n < 4; n++) assert.equal((await post("hermes")).status, 200, "a burst of twice the rate passes");
    const limited = await call("POST", "/broadcast?from=hermes&to=r-limited", "{}");
    assert.ok(!isStream(limited));
    assert.equal(limited.status, 429);
    assert.equal(limited.headers["retry-after"], "1");
    assert.match(JSON.parse(bodyText(limited)).error, /^Too many messages from hermes: the limit is 2 per second \(serve --rate-limit\); retry in 1 s$/);
    assert.equal((await post("solo")).status, 200, "limits are per sender");
    now += 1000;
    assert.equal((await post("hermes")).status, 200, "the bucket refills");
  }, { rateLimit: 2, now: () => now });
});

test("a publish retried with the same Idempotency-Key is stored once and answers with the first id", async () => {
  await withRouter(async ({ json }) => {
    const key = { "idempotency-key": "retry-7" };
    const concurrent = await Promise.all([1, 2, 3].map(() => json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":1}', key)));
    assert.deepEqual(new Set(concurrent.map((answer) => answer.body.id)).size, 1);
    const later = await json("POST", "/broadcast?from=hermes&to=openclaw", '{"n":1}', key);
    assert.equal(later.body.id, concurrent[0].body.id);
    const otherSender = await json("POST", "/broadcast?from=solo&to=openclaw", '{"n":1}', key);
    assert.notEqual(otherSender.body.id, later.body.id, "keys are per sender");
    assert.equal((await json("GET", "/poll?agent=openclaw")).body.length, 2);
    const tooLong = await json("POST", "/broadcast?from=hermes&to=openclaw", "{}", { "idempotency-key": "k".repeat(201) });
    assert.equal(tooLong.status, 400);
  });
});

test("an ntfy JSON publish nested past the limit is refused before JSON.parse reads it (a 1 MiB one took it a second)", async () => {
  await withRouter(async ({ call }) => {
    const body = `{"topic":"hermes","tags":${"[".repeat(500_000)}${"]".repeat(500_000)}}`;
    const { result: response, parses } = await countJsonParses(() => call("POST", "/ntfy", body));
    assert.ok(!isStream(response));
    assert.equal(response.status, 400);
    assert.match(bodyText(response), /nests objects and arrays deeper than 100 levels/);
    assert.equal(parses, 0);
  }, { maxBodyBytes: 2 * 1024 * 1024 });
});

test("A2A ListTasks answers the newest tasks that fit in one answer's budget and ends the page with a token for the rest", async () => {
  // It answered up to 100 tasks whole, each with its message: four lists at once of 1 MiB messages took a 512 MiB heap down.
  await withRouter(async ({ json }) => {
    const rpc = async (method: string, params: Record<string, unknown>) =>
      (await json("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }))).body;
    const sent: string[] = [];
    for (let n = 0; n < 5; n++) {
      const message = { messageId: `m-${n}`, role: "ROLE_USER", parts: [{ text: String(n).repeat(800) }] };
      sent.push((await rpc("SendMessage", { message, configuration: { returnImmediately: true } })).result.task.id);
    }
    const pages: string[][] = [];
    let pageToken = "";
    do {
      const { result } = await rpc("ListTasks", { pageSize: 100, pageToken });
      pages.push(result.tasks.map((task: { id: string }) => task.id));
      pageToken = result.nextPageToken;
    } while (pageToken !== "" && pages.length < 10);
    assert.deepEqual(pages, [[sent[4], sent[3]], [sent[2], sent[1]], [sent[0]]]);
  }, { maxBodyBytes: 4096, answerBudget: 2500 });
});

test("A2A ListTasks pages that their client has not read hold the caller's memory for answers: past it 429 at once, until they are read", async () => {
  // Unbounded, 30 unread pages of 1 MiB tasks held 170 MiB more and kept /status waiting 24 s (review27).
  await withRouter(async ({ call }) => {
    const rpc = async (method: string, params: Record<string, unknown>) => {
      const response = await call("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }));
      assert.ok(!isStream(response));
      return { response, body: JSON.parse(bodyText(response)) };
    };
    // Four of five tasks of 3.5 M characters fill a page (an answer's 16 Mi characters); the bound is four full answers.
    for (let n = 0; n < 5; n++) {
      const message = { messageId: `m-${n}`, role: "ROLE_USER", parts: [{ text: "x".repeat(3_500_000) }] };
      const sent = await rpc("SendMessage", { message, configuration: { returnImmediately: true } });
      assert.equal(sent.response.status, 200, JSON.stringify(sent.body));
    }
    const unread = [];
    let refused: Awaited<ReturnType<typeof rpc>> | undefined;
    while (refused === undefined && unread.length < 8) {
      const listed = await rpc("ListTasks", {});
      if (listed.response.status === 200) {
        assert.equal(listed.body.result.tasks.length, 4);
        unread.push(listed.response);
      } else refused = listed;
    }
    assert.ok(refused !== undefined, `${unread.length} unread pages, none refused`);
    assert.equal(unread.length, 4);
    assert.equal(refused.response.status, 429);
    assert.equal(refused.body.error.data.code, "too_many_requests");
    assert.equal(refused.response.headers["retry-after"], "1");
    for (const response of unread) response.written?.();
    assert.equal((await rpc("ListTasks", {})).response.status, 200);
  }, { maxBodyBytes: 4 * 1024 * 1024 });
});

test("A2A ListTasks builds a big page a slice at a time: a /status asked meanwhile is answered first, and the bytes are the page's JSON", async () => {
  // Built in one go (16 Mi characters read, encoded, joined and made bytes), it held every other request up meanwhile.
  await withRouter(async ({ call }) => {
    const rpc = (method: string, params: Record<string, unknown>) =>
      call("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: "list-1", method, params }));
    // Five tasks of 0.6 M characters (1.2 MB each): a page of three slices.
    for (let n = 0; n < 5; n++) {
      const message = { messageId: `m-${n}`, role: "ROLE_USER", parts: [{ text: `${n}ü€😀`.repeat(120_000) }] };
      assert.equal((await rpc("SendMessage", { message, configuration: { returnImmediately: true } })).status, 200);
    }
    const events: string[] = [];
    const listing = rpc("ListTasks", {}).then((response) => (events.push("ListTasks answered"), response));
    // Asked once the list is under way: the next turn of the event loop.
    const status = new Promise((resolve) => setTimeout(resolve, 0))
      .then(() => call("GET", "/status"))
      .then((response) => (events.push("/status answered"), response));
    const [listed, answered] = await Promise.all([listing, status]);
    assert.deepEqual(events, ["/status answered", "ListTasks answered"]);
    assert.equal(answered.status, 200);
    assert.ok(!isStream(listed));
    assert.ok(listed.body instanceof Uint8Array, "made bytes a slice at a time");
    const text = bodyText(listed);
    const parsed = JSON.parse(text);
    assert.equal(parsed.id, "list-1");
    assert.equal(parsed.result.tasks.length, 5);
    assert.equal(text, JSON.stringify(parsed), "the bytes of the page's JSON, as built in one go");
    listed.written?.();
  }, { maxBodyBytes: 2 * 1024 * 1024 });
});

test("A2A ListTasks of a v0.3 caller holds its page to the budget in the v0.3 shape it answers, larger than v1.0's", async () => {
  // Each page was held to the budget in the v1.0 shape, then converted to v0.3's, which tags every part with its kind.
  const budget = 2400;
  await withRouter(async ({ json }) => {
    const rpc = async (method: string, params: Record<string, unknown>) =>
      (await json("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }))).body;
    const parts = Array.from({ length: 60 }, () => ({ kind: "text", text: "x" }));
    for (let n = 0; n < 3; n++) await rpc("message/send", { message: { kind: "message", messageId: `m-${n}`, role: "user", parts } });
    const sizes = { v03: JSON.stringify((await rpc("tasks/get", { id: (await rpc("tasks/list", {})).result.tasks[0].id })).result).length };
    assert.ok(sizes.v03 * 2 > budget, "two v0.3 tasks are over the budget");
    const pages: number[][] = [];
    let pageToken = "";
    do {
      const { result } = await rpc("tasks/list", { pageToken });
      assert.equal(result.tasks[0].kind, "task");
      pages.push(result.tasks.map((task: unknown) => JSON.stringify(task).length));
      pageToken = result.nextPageToken;
    } while (pageToken !== "" && pages.length < 10);
    assert.deepEqual(pages.map((page) => page.length), [1, 1, 1], `one task a page: ${JSON.stringify(pages)}`);
  }, { maxBodyBytes: 4096, answerBudget: budget });
});

test("A2A ListTasks refuses with -32602 naming it a param it does not take, or one of the wrong type, and honours statusTimestampAfter", async () => {
  // An unknown filter was ignored (a list of tasks the caller had left out), pageSize true read as 1.
  await withRouter(async ({ json }) => {
    const rpc = async (method: string, params: Record<string, unknown>) =>
      (await json("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }))).body;
    const message = { messageId: "m-1", role: "ROLE_USER", parts: [{ text: "hi" }] };
    const task = (await rpc("SendMessage", { message, configuration: { returnImmediately: true } })).result.task;
    const refusal = async (params: Record<string, unknown>) => {
      const { error } = await rpc("ListTasks", params);
      assert.equal(error?.code, -32602, JSON.stringify(params));
      return error.message as string;
    };
    assert.match(await refusal({ ownerId: "x" }), /unknown field "ownerId"/);
    assert.match(await refusal({ pageSize: true }), /pageSize must be 1-100/);
    assert.match(await refusal({ pageSize: "ten" }), /pageSize must be 1-100/);
    assert.match(await refusal({ includeArtifacts: "yes" }), /includeArtifacts/);
    assert.match(await refusal({ historyLength: true }), /historyLength/);
    assert.match(await refusal({ statusTimestampAfter: "yesterday" }), /statusTimestampAfter/);
    assert.match(await refusal({ tenant: "acme" }), /tenant/);
    // Proto JSON's other spellings: an int32 as a string, a field by its proto name.
    assert.deepEqual((await rpc("ListTasks", { pageSize: "5" })).result.tasks.map((listed: { id: string }) => listed.id), [task.id]);
    assert.equal((await rpc("ListTasks", { page_size: 5 })).result.pageSize, 5);
    const since = async (time: string) => (await rpc("ListTasks", { statusTimestampAfter: time })).result.tasks.length;
    assert.equal(await since(new Date(Date.now() + 60_000).toISOString()), 0);
    assert.equal(await since(new Date(Date.now() - 60_000).toISOString()), 1);
  });
});

test("A2A answers params that are not an object with -32602 and the request's id", async () => {
  // It answered "id": null: the check ran before the id was taken from the request.
  await withRouter(async ({ json }) => {
    const { body } = await json("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 9, method: "ListTasks", params: null }));
    assert.deepEqual([body.id, body.error?.code], [9, -32602]);
  });
});

test("A2A CancelTask of a message a leased reader may have shown answers 409 inbox_leased with Retry-After, and the task stays as it was", async () => {
  // It withdrew the message from under the lease (interop poll had printed it).
  await withRouter(async ({ call, json }) => {
    const rpc = async (method: string, params: Record<string, unknown>) =>
      await json("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 3, method, params }));
    const message = { messageId: "m-1", role: "ROLE_USER", parts: [{ text: "deploy?" }] };
    const task = (await rpc("SendMessage", { message, configuration: { returnImmediately: true } })).body.result.task;
    const peeked = await call("GET", "/poll?agent=hermes&peek=1&lease=30");
    assert.equal(peeked.status, 200);
    const refused = await call("POST", "/a2a/hermes", JSON.stringify({ jsonrpc: "2.0", id: 3, method: "CancelTask", params: { id: task.id } }));
    assert.ok(!isStream(refused));
    const body = JSON.parse(bodyText(refused));
    assert.deepEqual([refused.status, body.id, body.error?.code, body.error?.data?.code], [409, 3, -32000, "inbox_leased"]);
    assert.equal(refused.headers["retry-after"], "30");
    assert.match(body.error.message, /Task cannot be canceled now: hermes is reading its inbox/);
    assert.equal((await rpc("GetTask", { id: task.id })).body.result.status.state, "TASK_STATE_SUBMITTED");
  });
});

test("GET /wait reads peek as /poll does: peek=true is a leased wait that takes nothing, and a lease without a peek is 400", async () => {
  // peek=true (which /poll takes as a peek) made a taking wait that dropped its lease: the message a client asked
  // to be shown was taken, so a cancel then lost it; lease=S without peek was ignored the same way.
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }));
    const shown = await call("GET", "/wait?agent=openclaw&timeout=5&peek=true&lease=30");
    assert.equal(shown.status, 200);
    assert.ok(shown.headers["interop-lease"], "shown under a lease");
    assert.equal((await json("GET", `/poll?agent=openclaw&up_to=0&lease_id=${shown.headers["interop-lease"]}`)).status, 200);
    assert.equal((await json("GET", "/poll?agent=openclaw&peek=1")).body.length, 1, "nothing taken");
    for (const query of ["lease=30", "peek=0&lease=30"]) {
      const refused = await json("GET", `/wait?agent=openclaw&timeout=1&${query}`);
      assert.deepEqual([refused.status, refused.body.code], [400, "invalid_query"], query);
    }
    assert.equal((await json("GET", "/poll?agent=openclaw&peek=1")).body.length, 1, "nothing taken by the refused waits");
  });
});

test("GET /wait?peek=1&lease=S is held to the memory for answers: one not read yet refuses the next with 429, as a peek's does, but not the take of nothing that ends its lease", async () => {
  // Not held, a client that ended each lease with up_to=0 and read no answer had the message built again for every
  // wait (30 unread waits on a 15 MiB message: 672 MB, where /poll?peek=1&lease= stops at four).
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }));
    const shown = await call("GET", "/wait?agent=openclaw&timeout=5&peek=1&lease=30");
    assert.ok(!isStream(shown));
    assert.equal(shown.status, 200);
    assert.equal(JSON.parse(bodyText(shown)).text, "deploy?");
    const refused = await json("GET", "/wait?agent=openclaw&timeout=1&peek=1&lease=30");
    assert.deepEqual([refused.status, refused.body.code], [429, "too_many_requests"], "the first answer is not read yet");
    // A take of nothing carries no message, so the unread answer does not hold it up: refused 429, the lease ran out
    // instead of ending, and the inbox's next reader waited the lease's length.
    const ended = await json("GET", `/poll?agent=openclaw&up_to=0&lease_id=${shown.headers["interop-lease"]}`);
    assert.deepEqual([ended.status, ended.body], [200, []], "the lease ended, nothing taken");
    assert.equal((await json("GET", "/poll?agent=openclaw&up_to=0")).status, 200, "no lease holds the inbox any more");
    shown.written?.();
    assert.equal((await call("GET", "/wait?agent=openclaw&timeout=5&peek=1&lease=30")).status, 200, "read, it holds nothing");
  }, { answerBudget: DEFAULT_AGENT_ANSWER_MEMORY });
});

test("a leased reader's take of what it showed is not refused for its agent's unread answers, one take at a time", async () => {
  // Refused 429, the holder could neither take nor renew (a renewing peek needs the same room): its lease ran out,
  // and the next reader was shown the same message again.
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }));
    const shown = await call("GET", "/poll?agent=openclaw&peek=1&lease=30");
    assert.ok(!isStream(shown));
    shown.written?.();
    const id = JSON.parse(bodyText(shown))[0].interop.id;
    // Another client of the agent, reading nothing of its answer.
    assert.equal((await call("GET", "/history?agent=openclaw")).status, 200);
    assert.equal((await json("GET", "/poll?agent=openclaw&peek=1")).status, 429, "the agent's answers are full");
    const taken = await call("GET", `/poll?agent=openclaw&up_to=${id}&lease_id=${shown.headers["interop-lease"]}`);
    assert.ok(!isStream(taken));
    assert.deepEqual([taken.status, JSON.parse(bodyText(taken)).map((message: { text: string }) => message.text)], [200, ["deploy?"]]);
    const second = await json("GET", `/poll?agent=openclaw&up_to=${id}&lease_id=another`);
    assert.deepEqual([second.status, second.body.code], [429, "too_many_requests"], "one such take at a time, while the first is unread");
    taken.written?.();
    assert.equal((await call("GET", `/poll?agent=openclaw&up_to=${id}&lease_id=another`)).status, 200, "the next, once it was read");
  }, { answerBudget: DEFAULT_AGENT_ANSWER_MEMORY });
});

test("GET /wait refuses lease_id with 400 naming it, taking nothing: a wait neither takes nor renews under a lease", async () => {
  // Ignored, a taking wait with its lease's id waited the lease out and then took, and a leased wait with it waited
  // its own lease out: a client that believed it held the lease took out of order.
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }));
    const shown = await call("GET", "/wait?agent=openclaw&timeout=5&peek=1&lease=30");
    assert.ok(!isStream(shown));
    const lease = shown.headers["interop-lease"];
    shown.written?.();
    for (const query of [`lease_id=${lease}`, `peek=1&lease=30&lease_id=${lease}`]) {
      const refused = await json("GET", `/wait?agent=openclaw&timeout=1&${query}`);
      assert.deepEqual([refused.status, refused.body.code], [400, "invalid_query"], query);
      assert.match(refused.body.error, /lease_id/);
    }
    const taken = await json("GET", `/poll?agent=openclaw&up_to=${JSON.parse(bodyText(shown)).interop.id}&lease_id=${lease}`);
    assert.deepEqual(taken.body.map((message: { text: string }) => message.text), ["deploy?"], "the lease still held, nothing taken");
  });
});

test("GET /wait?peek=1&lease=S shows the next message under a lease, taking nothing; without a lease, 400", async () => {
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }));
    const shown = await call("GET", "/wait?agent=openclaw&timeout=5&peek=1&lease=30");
    assert.ok(!isStream(shown));
    assert.equal(shown.status, 200);
    const lease = shown.headers["interop-lease"];
    assert.ok(lease, "the lease's id");
    assert.equal(JSON.parse(bodyText(shown)).text, "deploy?");
    assert.equal((await json("GET", "/poll?agent=openclaw")).status, 409, "held for the wait's client");
    const taken = await json("GET", `/poll?agent=openclaw&up_to=${JSON.parse(bodyText(shown)).interop.id}&lease_id=${lease}`);
    assert.deepEqual(taken.body.map((message: { text: string }) => message.text), ["deploy?"]);
    assert.equal((await call("GET", "/wait?agent=openclaw&timeout=0.05&peek=1&lease=30")).status, 204);
    for (const query of ["peek=1", "peek=1&reply_to=1", "peek=1&lease=0"]) {
      const refused = await json("GET", `/wait?agent=openclaw&timeout=1&${query}`);
      assert.deepEqual([refused.status, refused.body.code], [400, "invalid_query"], query);
    }
  });
});

test("GET /wait?reply_to=Q&peek=1&lease=S shows the reply behind earlier messages under a lease; /poll?take=ID&lease_id= takes it alone", async () => {
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "earlier" }));
    const question = (await json("POST", "/broadcast?from=openclaw&to=hermes", JSON.stringify({ text: "deploy?" }))).body.id;
    await json("POST", `/broadcast?from=hermes&reply_to=${question}`, JSON.stringify({ text: "yes" }));
    const shown = await call("GET", `/wait?agent=openclaw&timeout=5&reply_to=${question}&peek=1&lease=30`);
    assert.ok(!isStream(shown));
    assert.equal(shown.status, 200);
    const reply = JSON.parse(bodyText(shown));
    assert.equal(reply.text, "yes");
    const lease = shown.headers["interop-lease"];
    assert.ok(lease, "the lease's id");
    assert.equal((await json("GET", "/poll?agent=openclaw")).status, 409, "held for the wait's client");
    const taken = await json("GET", `/poll?agent=openclaw&take=${reply.interop.id}&lease_id=${lease}`);
    assert.deepEqual([taken.status, taken.body.map((message: { text: string }) => message.text)], [200, ["yes"]]);
    // The lease ended with the take; what was ahead of the reply is still there, and the reply is not again.
    assert.deepEqual((await json("GET", "/poll?agent=openclaw")).body.map((message: { text: string }) => message.text), ["earlier"]);
    const again = await json("GET", `/poll?agent=openclaw&take=${reply.interop.id}&lease_id=${lease}`);
    assert.deepEqual([again.status, again.body], [200, []]);
  });
});

test("a leased reply wait refuses what cannot be: an unknown question 404, take without its lease or with peek or up_to 400", async () => {
  await withRouter(async ({ json }) => {
    const question = (await json("POST", "/broadcast?from=hermes&to=openclaw", JSON.stringify({ text: "deploy?" }))).body.id;
    const unknown = await json("GET", "/wait?agent=openclaw&timeout=1&reply_to=999&peek=1&lease=30");
    assert.deepEqual([unknown.status, unknown.body.code], [404, "unknown_message"]);
    for (const query of [`take=${question}`, `take=${question}&lease_id=x&peek=1`, `take=${question}&lease_id=x&up_to=1`, "take=x&lease_id=x"]) {
      const refused = await json("GET", `/poll?agent=openclaw&${query}`);
      assert.deepEqual([refused.status, refused.body.code], [400, "invalid_query"], query);
    }
    assert.equal((await json("GET", "/poll?agent=openclaw&peek=1")).body.length, 1, "nothing taken by the refused takes");
    // Only the caller's own inbox: another agent's message by its id is no message of this one's.
    const theirs = (await json("POST", "/broadcast?from=openclaw&to=hermes", JSON.stringify({ text: "for hermes" }))).body.id;
    assert.deepEqual((await json("GET", `/poll?agent=openclaw&take=${theirs}&lease_id=x`)).body, []);
    assert.equal((await json("GET", "/poll?agent=hermes&peek=1")).body.length, 1, "hermes's message not taken");
  });
});

test("GET /wait?reply_to=Q&peek=1&lease=S is held to the memory for answers as a leased wait is: one not read yet refuses the next with 429", async () => {
  await withRouter(async ({ call, json }) => {
    const question = (await json("POST", "/broadcast?from=openclaw&to=hermes", JSON.stringify({ text: "deploy?" }))).body.id;
    await json("POST", `/broadcast?from=hermes&reply_to=${question}`, JSON.stringify({ text: "yes" }));
    const wait = `/wait?agent=openclaw&timeout=1&reply_to=${question}&peek=1&lease=30`;
    const shown = await call("GET", wait);
    assert.ok(!isStream(shown));
    assert.equal(shown.status, 200);
    const refused = await json("GET", wait);
    assert.deepEqual([refused.status, refused.body.code], [429, "too_many_requests"], "the first answer is not read yet");
    shown.written?.();
    await json("GET", `/poll?agent=openclaw&up_to=0&lease_id=${shown.headers["interop-lease"]}`);
    assert.equal((await call("GET", wait)).status, 200, "read, it holds nothing");
  }, { answerBudget: DEFAULT_AGENT_ANSWER_MEMORY });
});

test("POST /broadcast?hold_reply=S holds the reply from the sender's stream from the question's commit, for its leased reply wait", async () => {
  // Published plain, a reply sent before interop mcp's ask's first leased wait arrived went to the asker's stream.
  await withRouter(async ({ call, json }) => {
    await json("POST", "/broadcast?from=openclaw&to=hermes", JSON.stringify({ text: "hello" }));
    const stream = capture(await call("GET", "/subscribe?agent=hermes"));
    try {
      const question = await json("POST", "/broadcast?from=hermes&to=openclaw&hold_reply=30", JSON.stringify({ text: "deploy?" }));
      assert.equal(question.status, 200);
      const reply = await json("POST", `/broadcast?from=openclaw&reply_to=${question.body.id}`, JSON.stringify({ text: "yes" }));
      await json("POST", "/broadcast?from=openclaw&to=hermes", JSON.stringify({ text: "after" }));
      await settle();
      assert.doesNotMatch(stream.text(), /"yes"|"after"/, "the stream stops before the held reply");
      const shown = await call("GET", `/wait?agent=hermes&timeout=5&reply_to=${question.body.id}&peek=1&lease=30`);
      assert.ok(!isStream(shown));
      assert.equal(JSON.parse(bodyText(shown)).interop.id, reply.body.id);
      const taken = await json("GET", `/poll?agent=hermes&take=${reply.body.id}&lease_id=${shown.headers["interop-lease"]}`);
      assert.deepEqual(taken.body.map((message: { text: string }) => message.text), ["yes"]);
      // "after" came after "yes": once it is on the stream, "yes" would be too had the stream taken it.
      await waitFor(() => /"after"/.test(stream.text()), 10_000, "the stream to go on past the taken reply");
      assert.doesNotMatch(stream.text(), /"yes"/);
    } finally {
      stream.close();
    }
  });
});

test("POST /broadcast refuses hold_reply (400 invalid_query, nothing stored) without to, for a batch, and out of (0, 3600] seconds", async () => {
  await withRouter(async ({ json }) => {
    await json("POST", "/broadcast?from=openclaw&to=hermes", JSON.stringify({ text: "hello" }));
    const refusals: [string, string | undefined][] = [
      ["from=hermes&hold_reply=30", undefined],
      ["from=hermes&to=openclaw&hold_reply=30", "application/x-ndjson"],
      ...["0", "-1", "3601", "", "abc", "NaN"].map((seconds): [string, undefined] => [`from=hermes&to=openclaw&hold_reply=${seconds}`, undefined]),
    ];
    for (const [query, contentType] of refusals) {
      const headers = contentType === undefined ? undefined : { "content-type": contentType };
      const refused = await json("POST", `/broadcast?${query}`, JSON.stringify({ text: "deploy?" }), headers);
      assert.deepEqual([refused.status, refused.body.code], [400, "invalid_query"], query);
    }
    assert.deepEqual((await json("GET", "/poll?agent=openclaw&peek=1")).body, [], "nothing stored");
  });
});
