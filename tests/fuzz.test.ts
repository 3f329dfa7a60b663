import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { test } from "node:test";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import fc from "fast-check";
import { Authenticator } from "../src/auth/authenticator.ts";
import { TokenFile } from "../src/auth/token_file.ts";
import { Broker } from "../src/broker/broker.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { BrokerMetrics } from "../src/metrics/broker_metrics.ts";
import { InteropError } from "../src/errors.ts";
import { encodeEvent } from "../src/http/sse.ts";
import { createRouter } from "../src/http/router.ts";
import { type AgentName, fromWire, parseAgentName, parsePayload, toWire } from "../src/message.ts";
import { latin1BodyText } from "../src/runtime/read_body.ts";
import { isStream } from "../src/runtime/types.ts";
import { fromWebRequest } from "./helpers/web_request.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";
import { bodyText } from "./helpers/response.ts";

/** Strings that stress the edges: unicode, control characters, CR/LF/NUL, and the empty string. */
const nastyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: fc.constantFrom("\r", "\n", "\0", " ", "/", "a", "é", "🦉", "\u2028", ":", '"', "{"), maxLength: 40 }),
  fc.constantFrom("", "hermes", "a".repeat(64), "a".repeat(65), "interop"),
);

test("parseAgentName() either accepts a valid name unchanged or throws invalid_agent", () => {
  fc.assert(fc.property(nastyString, (value) => {
    try {
      assert.equal(parseAgentName(value), value);
      assert.match(value, /^[a-z0-9][a-z0-9._-]{0,63}$/);
    } catch (error) {
      assert.ok(error instanceof InteropError && error.code === "invalid_agent", String(error));
    }
  }), { numRuns: 2000 });
});

test("parsePayload() returns a plain object without the reserved field, or a clear InteropError", () => {
  const bodies = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    nastyString.map((text) => new TextEncoder().encode(text)),
    fc.jsonValue().map((value) => new TextEncoder().encode(JSON.stringify(value))),
  );
  const contentTypes = fc.constantFrom(null, "application/json", "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded");
  fc.assert(fc.property(bodies, contentTypes, (body, contentType) => {
    try {
      const payload = parsePayload(latin1BodyText(Buffer.from(body).toString("latin1")), contentType);
      assert.equal(typeof payload, "object");
      assert.ok(payload !== null && !Array.isArray(payload));
      assert.ok(!Object.hasOwn(payload, "interop"));
    } catch (error) {
      assert.ok(error instanceof InteropError, String(error));
      assert.ok(["invalid_json", "invalid_body"].includes(error.code), error.code);
    }
  }), { numRuns: 2000 });
});

test("a body read as latin1 becomes the text a strict UTF-8 decoder makes of its bytes, or invalid_body when it has none", () => {
  const bodies = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.uint8Array({ min: 0, max: 0x7f, maxLength: 200 }),
    nastyString.map((text) => new TextEncoder().encode(text)),
  );
  const strict = new TextDecoder("utf-8", { fatal: true });
  fc.assert(fc.property(bodies, (body) => {
    let expected: string | undefined;
    try {
      expected = strict.decode(body);
    } catch {
      // no text: refused below
    }
    const read = () => latin1BodyText(Buffer.from(body).toString("latin1"));
    if (expected !== undefined) return void assert.equal(read(), expected);
    assert.throws(read, (error: unknown) => error instanceof InteropError && error.code === "invalid_body");
  }), { numRuns: 3000 });
});

test("a posted JSON object survives parsePayload, toWire, JSON and fromWire unchanged", () => {
  const objects = fc.dictionary(nastyString.filter((key) => key !== "interop" && key !== "__proto__"), fc.jsonValue(), { maxKeys: 8 });
  fc.assert(fc.property(objects, fc.nat(), (object, id) => {
    const payload = parsePayload(JSON.stringify(object), "application/json");
    assert.deepEqual(payload, JSON.parse(JSON.stringify(object)));
    const envelope = { id, from: "a" as AgentName, to: "b" as AgentName, timestamp: new Date(0).toISOString(), payload };
    assert.deepEqual(fromWire(JSON.parse(JSON.stringify(toWire(envelope)))), envelope);
  }), { numRuns: 1000 });
});

test("no payload can break SSE framing: a parser reads back exactly one event with the same id and data", () => {
  fc.assert(fc.property(nastyString, fc.nat(), (data, id) => {
    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed(encodeEvent({ id, data }));
    assert.equal(events.length, 1);
    assert.equal(events[0].id, String(id));
    assert.equal(events[0].data, data.replace(/\r\n|\r/g, "\n"));
  }), { numRuns: 3000 });
});

test("random requests to the routes get a valid status and JSON, and never corrupt stored messages", async () => {
  const dir = tempDir();
  // Opened first: nothing that can throw is awaited between the broker's open and the try that closes it.
  const auth = await Authenticator.open(new TokenFile(dir.path));
  const store = new SqliteStore(dir.path, "relaxed");
  const broker = await Broker.open(testBrokerOptions(store, dir.path, { maxPending: uniform(100_000), maxHops: 10 }));
  const handler = createRouter(broker, {
    auth,
    metrics: new BrokerMetrics(() => broker.status(), []),
    maxBodyBytes: 4096,
    retryMs: 2000,
    onInternalError: (error) => assert.fail(`internal error: ${error}`),
  });
  const published: unknown[] = [];
  // Publishes weigh most: the check that every acknowledged message is stored intact needs dozens of them.
  const paths = fc.constantFrom("/broadcast", "/broadcast", "/broadcast", "/broadcast", "/broadcast", "/broadcast", "/poll", "/status", "/wait", "/ask", "/dead-letters", "/ntfy", "/ntfy/hermes", "/ntfy/hermes/json", "/nope", "/", "/metrics", "/stats", "/ui");
  // Valid names half the time, so requests get past validation and reach the store.
  const values = fc.oneof(fc.constantFrom("hermes", "openclaw", "1"), nastyString);
  // One valid from= or agent= always (so a publish lacks its sender half the time), then random ones.
  const queries = fc.tuple(
    fc.tuple(fc.constantFrom("from", "agent"), fc.constant("hermes")),
    fc.array(fc.tuple(fc.constantFrom("from", "to", "agent", "limit", "reply_to", "timeout", "since", "poll", "last_event_id"), values), { maxLength: 4 }),
  ).map(([valid, random]) => [valid, ...random]);
  const bodies = fc.oneof(
    fc.constant(undefined),
    nastyString,
    fc.jsonValue().map((value) => JSON.stringify(value)),
    fc.dictionary(nastyString, fc.jsonValue(), { maxKeys: 5 }).map((value) => JSON.stringify(value)),
    fc.dictionary(nastyString, fc.jsonValue(), { maxKeys: 5 }).map((value) => JSON.stringify(value)),
    fc.dictionary(nastyString, fc.jsonValue(), { maxKeys: 5 }).map((value) => JSON.stringify(value)),
    fc.constant("x".repeat(5000)),
  );
  const contentTypes = fc.constantFrom("application/json", "text/plain", "application/octet-stream", "application/x-ndjson", "");
  try {
    await fc.assert(fc.asyncProperty(fc.constantFrom("GET", "POST", "POST", "PUT", "DELETE"), paths, queries, bodies, contentTypes, async (method, path, query, body, contentType) => {
      const url = new URL(`http://localhost${path}`);
      for (const [key, value] of query) url.searchParams.append(key, value);
      url.searchParams.set("timeout", "0.01"); // /wait and /ask would otherwise block for their default 30 s
      url.searchParams.set("poll", "1"); // a stream would never end; ntfy answers poll=1 with a body
      const request = new Request(url, { method, body: method === "GET" ? undefined : body ?? "", headers: { "content-type": contentType } });
      const response = await handler(fromWebRequest(request));
      if (isStream(response)) return; // /subscribe-like answers are streams: valid by construction
      assert.ok([200, 204, 302, 400, 404, 405, 409, 410, 413, 504].includes(response.status), `status ${response.status} for ${method} ${url}`);
      if (response.status === 204 || response.status === 302) return;
      // /metrics answers text and /ui HTML; every other answer is JSON.
      const parsed = response.headers["content-type"].startsWith("application/json") ? JSON.parse(bodyText(response)) : undefined;
      if (response.status >= 400) assert.equal(typeof parsed.error, "string");
      if (method === "POST" && path === "/broadcast" && response.status === 200) published.push(...parsed.ids);
    }), { numRuns: 1500 });
    assert.ok(published.length > 10, `only ${published.length} publishes got through: the fuzzing is too shallow`);
    // Everything acknowledged is still stored, whole and readable.
    for (const id of published) {
      const stored = await store.find(id as number);
      assert.ok(stored !== undefined && typeof stored.payload === "object", `message ${id} is stored`);
    }
  } finally {
    await broker.close();
    dir.cleanup();
  }
});
