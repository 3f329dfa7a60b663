/** Every configurable limit of `interop serve`, hit over real HTTP: its status, its JSON error, and nothing lost. */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { test } from "node:test";
import { brokerPool, publish, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { openSse, type SseConnection } from "../helpers/sse.ts";

async function assertError(response: Response, status: number, code: string, message: RegExp): Promise<void> {
  assert.equal(response.status, status);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  const body = await response.json();
  assert.equal(body.code, code);
  assert.match(body.error, message);
}

test("per-agent pending caps and TTLs: the capped inbox answers 507 naming its own cap, and only its messages expire", async () => {
  const broker = await startBroker({ args: ["--max-pending", "100,openclaw=2", "--pending-ttl", "0,openclaw=1s", "--agents", "hermes,openclaw,cron"] });
  try {
    for (let n = 1; n <= 2; n++) assert.equal((await publish(broker.url, "hermes", "openclaw", { n })).status, 200);
    await assertError(await publish(broker.url, "hermes", "openclaw", { n: 3 }), 507, "inbox_full", /openclaw has 2 undelivered messages \(the cap is 2\)/);
    for (let n = 1; n <= 3; n++) assert.equal((await publish(broker.url, "cron", "hermes", { n })).status, 200, "hermes has the default cap");

    const status = await waitFor(async () => {
      const report = await (await fetch(`${broker.url}/status`)).json();
      return report.agents.openclaw.expired === 2 ? report : undefined;
    }, 10_000, "openclaw's messages to expire");
    assert.equal(status.agents.hermes.expired, 0, "hermes has no TTL");
    const hermes = await (await fetch(`${broker.url}/poll?agent=hermes`)).json();
    assert.deepEqual(hermes.map((message: { n: number }) => message.n), [1, 2, 3]);
    assert.equal((await publish(broker.url, "hermes", "openclaw", { n: 4 })).status, 200, "room again once expired");
  } finally {
    await broker.cleanup();
  }
});

test("interop send to everyone past a full inbox warns per agent left out and exits 10; a --key retry says whom, or that it cannot tell after a restart", async (t) => {
  const dir = tempDir();
  const args = ["--max-pending", "100,bob=1", "--agents", "alice,bob,carol"];
  let broker = await startBroker({ dataDir: dir.path, args });
  t.after(async () => {
    await broker.cleanup();
    dir.cleanup();
  });
  assert.equal((await publish(broker.url, "alice", "bob", { text: "fill" })).status, 200);
  const send = (key: string, ...flags: string[]) => runCli(["send", "--url", broker.url, "-f", "alice", "--key", key, ...flags, "to everyone"]);
  const warning = /^warning: not delivered to bob: Inbox full: bob has 1 undelivered messages \(the cap is 1\)/m;

  const first = await send("K");
  assert.equal(first.code, 10, first.stderr);
  assert.match(first.stderr, warning);
  assert.equal(first.stdout.trim().split("\n").length, 1, "stored for carol only");
  await fetch(`${broker.url}/poll?agent=bob`);
  // bob has room now; the retry answers what the first attempt did, not a clean delivery.
  const retried = await send("K", "--json");
  assert.equal(retried.code, 10, retried.stderr);
  assert.match(retried.stderr, warning);
  assert.deepEqual(JSON.parse(retried.stdout).refused.map((refusal: { agent: string }) => refusal.agent), ["bob"]);
  const clean = await send("K2");
  assert.deepEqual([clean.code, clean.stderr], [0, ""], "a broadcast that reached everyone");
  assert.deepEqual([(await send("K2")).code], [0], "and its retry");

  await broker.stop();
  broker = await startBroker({ dataDir: dir.path, args });
  const afterRestart = await send("K", "--json");
  assert.equal(afterRestart.code, 10, afterRestart.stderr);
  assert.match(afterRestart.stderr, /whether that attempt left out full inboxes was not kept/);
  assert.equal(JSON.parse(afterRestart.stdout).refusals_unknown, true);
  assert.equal(JSON.parse(afterRestart.stdout).id, JSON.parse(retried.stdout).id, "the first attempt's message");
});

test("malformed per-agent limits are usage errors that show the syntax", async () => {
  const result = await runCli(["serve", "--port", "0", "--max-pending", "100,openclaw"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /Invalid --max-pending: "openclaw"; after the default, write AGENT=VALUE/);
});

test("--second-stream refuse answers 409 to a second stream for the same agent and keeps the first", async () => {
  const broker = await startBroker({ args: ["--second-stream", "refuse"] });
  let first: SseConnection | undefined;
  try {
    first = await openSse(`${broker.url}/subscribe?agent=openclaw`);
    assert.equal(first.status, 200);
    await assertError(await fetch(`${broker.url}/subscribe?agent=openclaw`), 409, "stream_open", /openclaw already has an open stream/);
    await publish(broker.url, "hermes", "openclaw", { text: "still the first" });
    assert.equal(JSON.parse((await first.take(1))[0].data).text, "still the first");
  } finally {
    first?.close();
    await broker.cleanup();
  }
});

test("--max-connections: past it a request gets 503 with Retry-After, and a freed place is taken again", async () => {
  const broker = await startBroker({ args: ["--max-connections", "3"] });
  const streams: SseConnection[] = [];
  try {
    for (const agent of ["a1", "a2", "a3"]) streams.push(await openSse(`${broker.url}/subscribe?agent=${agent}`));
    const refused = await fetch(`${broker.url}/poll?agent=hermes`);
    assert.equal(refused.headers.get("retry-after"), "1");
    await assertError(refused, 503, "too_many_connections", /3 requests and streams are open, the limit is 3 \(--max-connections\)/);
    assert.equal((await fetch(`${broker.url}/status`)).status, 200, "the operator's /status has places of its own");
    streams.pop()!.close();
    await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`)).status === 200, 5000, "the place to be freed");
  } finally {
    for (const stream of streams) stream.close();
    await broker.cleanup();
  }
});

test("header and URL caps: 431 and 414 with JSON errors, even past the runtime's own parser limit", async () => {
  const broker = await startBroker({ args: ["--max-header-bytes", "1KiB", "--max-url-bytes", "1KiB"] });
  try {
    await assertError(await fetch(`${broker.url}/poll?agent=hermes&pad=${"x".repeat(1100)}`), 414, "url_too_long", /the limit is 1024 \(--max-url-bytes\)/);
    const filler = (bytes: number) => ({ headers: { "x-filler": "x".repeat(bytes) } });
    await assertError(
      await fetch(`${broker.url}/status`, filler(2000)),
      431,
      "headers_too_large",
      /Request headers too large: \d+ bytes; the limit is 1024 \(--max-header-bytes\)/,
    );
    // Past node:http's parser limit (set just above the caps) the parser itself refuses; the answer is the same JSON.
    await assertError(await fetch(`${broker.url}/status`, filler(40 * 1024)), 431, "headers_too_large", /too large/i);
    assert.equal((await fetch(`${broker.url}/status`)).status, 200, "the broker still serves");
  } finally {
    await broker.cleanup();
  }
});

test("a target of // or //host/path is a path: 404 with a JSON error, never a host, never a crash", async () => {
  const broker = await startBroker();
  try {
    for (const target of ["//", "//evil.example/status", "//x/broadcast?from=hermes"]) {
      const answer = await rawRequest(broker.url, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.match(answer, /^HTTP\/1\.1 404 /, target);
      assert.match(answer, /"code":"not_found"/, target);
    }
    assert.equal((await fetch(`${broker.url}/status`)).status, 200, "the broker still serves");
  } finally {
    await broker.cleanup();
  }
});

test("an HTTP/1.1 request without Host gets 400 with a JSON error; an HTTP/1.0 one, which may have none, is served", async (t) => {
  const broker = await brokerPool(t)();
  const missing = await rawRequest(broker.url, "GET /status HTTP/1.1\r\nConnection: close\r\n\r\n");
  assert.match(missing, /^HTTP\/1\.1 400 /);
  assert.match(missing, /\{"error":"Bad Request: an HTTP\/1\.1 request needs a Host header","code":"invalid_request"\}$/);
  assert.match(await rawRequest(broker.url, "GET /status HTTP/1.0\r\n\r\n"), /^HTTP\/1\.1 200 /);
});

/** Sends raw bytes (fetch would normalise the target) and reads the answer to the end. */
function rawRequest(url: string, bytes: string | Uint8Array): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let answer = "";
    const socket = connect(Number(port), hostname, () => socket.write(bytes));
    socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk)).on("error", reject).on("close", () => resolve(answer));
  });
}

test("--max-body-bytes: a body past it gets 413, declared or streamed without a length, and nothing of it is stored", async () => {
  const broker = await startBroker({ args: ["--max-body-bytes", "4096"] });
  try {
    const tooBig = JSON.stringify({ text: "x".repeat(8192) });
    await assertError(await publish(broker.url, "hermes", "openclaw", JSON.parse(tooBig)), 413, "payload_too_large", /the limit is 4096 bytes/);
    // Chunked, no Content-Length: refused once the bytes read pass the limit.
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(new TextEncoder().encode(i === 0 ? '{"text":"' : "y".repeat(1024)));
        controller.enqueue(new TextEncoder().encode('"}'));
        controller.close();
      },
    });
    const streamed = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, {
      method: "POST",
      body: chunks,
      headers: { "content-type": "application/json" },
      duplex: "half",
    } as RequestInit);
    await assertError(streamed, 413, "payload_too_large", /the limit is 4096 bytes/);
    assert.equal((await publish(broker.url, "hermes", "openclaw", { text: "fits" })).status, 200, "the broker still serves");
    const inbox = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
    assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["fits"]);
  } finally {
    await broker.cleanup();
  }
});

test("a dead letter's request past its fixed 64 KiB gets 413 saying so, not naming --max-body-bytes, which does not change it", async (t) => {
  const broker = await brokerPool(t)({ args: ["--max-body-bytes", "4MiB", "--agents", "hermes"] });
  const reason = "x".repeat(70 * 1024);
  const parked = await fetch(`${broker.url}/dead-letters?agent=hermes`, { method: "POST", body: JSON.stringify({ id: 1, reason }) });
  await assertError(parked, 413, "payload_too_large", /a dead letter \(\{"id", "reason"\}\) is at most 65536 bytes$/);
});

// Red team, session 44: a gzip body was refused as "not valid UTF-8", which sent its client looking in the wrong place.
test("a body sent with Content-Encoding gzip is refused 415 unsupported_encoding, and nothing is stored", async (t) => {
  const start = brokerPool(t);
  const broker = await start();
  const compressed = gzipSync('{"text":"hello"}');
  for (const path of ["/broadcast?from=openclaw&to=hermes", "/ntfy/hermes"]) {
    const refused = await fetch(`${broker.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: compressed,
    });
    assert.equal(refused.status, 415, path);
    assert.deepEqual(await refused.json(), {
      error: 'Content-Encoding "gzip" is not supported: send the body uncompressed (no Content-Encoding)',
      code: "unsupported_encoding",
    });
  }
  const identity = await fetch(`${broker.url}/broadcast?from=openclaw&to=hermes`, {
    method: "POST",
    headers: { "content-type": "application/json", "content-encoding": "identity" },
    body: '{"text":"plain"}',
  });
  assert.equal(identity.status, 200);
  // A request without a body is served, whatever its client says of one (some set the field on every request).
  const inbox = await fetch(`${broker.url}/poll?agent=hermes`, { headers: { "content-encoding": "gzip" } });
  assert.equal(inbox.status, 200);
  assert.deepEqual((await inbox.json()).map((message: { text: string }) => message.text), ["plain"]);
});

// Red team, session 46: both runtimes' parsers take `gzip, chunked`, and the body came through still gzip ("not
// valid UTF-8", or stored as text had it been other bytes).
test("a body sent with a transfer coding other than chunked is refused 501 unsupported_transfer_coding, and nothing is stored", async (t) => {
  const broker = await brokerPool(t)();
  const send = (transferEncoding: string, body: Buffer) => {
    const head = `POST /broadcast?from=openclaw&to=hermes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Transfer-Encoding: ${transferEncoding}\r\nConnection: close\r\n\r\n`;
    return rawRequest(broker.url, Buffer.concat([Buffer.from(`${head}${body.length.toString(16)}\r\n`), body, Buffer.from("\r\n0\r\n\r\n")]));
  };
  const refused = await send("gzip, chunked", gzipSync('{"text":"hello"}'));
  assert.match(refused, /^HTTP\/1\.1 501 /);
  assert.deepEqual(JSON.parse(refused.slice(refused.indexOf("\r\n\r\n") + 4)), {
    error: 'Transfer-Encoding "gzip, chunked" is not supported: send the body as it is, or chunked alone',
    code: "unsupported_transfer_coding",
  });
  assert.match(await send("chunked", Buffer.from('{"text":"plain"}')), /^HTTP\/1\.1 200 /);
  const inbox = await fetch(`${broker.url}/poll?agent=hermes`);
  assert.deepEqual((await inbox.json()).map((message: { text: string }) => message.text), ["plain"]);
});
