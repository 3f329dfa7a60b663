/**
 * Client exit codes a script can act on: 3 only when nothing was sent, 11 when a request went out and its answer was
 * lost (send names the key that makes a retry safe), 4 for an answer that is not the broker's or a TLS failure.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { startBroker } from "../helpers/broker.ts";
import { cleanUpAll } from "../helpers/clean_up_all.ts";
import { collect, runCli, spawnCli } from "../helpers/cli.ts";
import { openSse } from "../helpers/sse.ts";

/** Starts an HTTP server on a free loopback port; the test closes it. */
async function serve(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function body(request: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
}

/** A proxy that passes each request on to the broker, waits for its answer, then hangs up instead of answering. */
function answerLosingProxy(brokerUrl: string): Promise<{ url: string; server: Server }> {
  return serve(async (request, response) => {
    const headers = Object.fromEntries(
      Object.entries(request.headers).filter(([name]) => !["host", "connection", "content-length"].includes(name)),
    ) as Record<string, string>;
    const text = await body(request);
    await (await fetch(brokerUrl + request.url, { method: request.method, headers, body: text || undefined })).text();
    response.socket?.destroy();
  });
}

/** A server that answers every request with `status` and `text` as JSON (a wrong upstream, a proxy's error page). */
function fixedAnswer(status: number, text: string, type = "application/json"): Promise<{ url: string; server: Server }> {
  return serve(async (request, response) => {
    await body(request);
    response.writeHead(status, { "content-type": type });
    response.end(text);
  });
}

async function peekTexts(brokerUrl: string, agent: string): Promise<string[]> {
  const messages = await (await fetch(`${brokerUrl}/poll?agent=${agent}&peek=1`)).json() as { text: string }[];
  return messages.map((message) => message.text);
}

/** One `error:` line, no stack trace. */
function oneLine(stderr: string): void {
  assert.match(stderr, /^error: [^\n]+\n$/, stderr);
}

test("send whose answer was lost exits 11 naming its key, and a retry with that key stores the message once", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  let proxy: { url: string; server: Server } | undefined;
  // One hook, the proxy first: a later hook does not run once the broker's cleanup throws, and the proxy would keep
  // the test run from ending.
  t.after(() => cleanUpAll(() => proxy && close(proxy.server), () => broker.cleanup()));
  proxy = await answerLosingProxy(broker.url);

  const lost = await runCli(["send", "-u", proxy.url, "-f", "hermes", "-t", "openclaw", "pay invoice 42"]);
  assert.equal(lost.code, 11, lost.stderr);
  oneLine(lost.stderr);
  const key = /send it again with --key (\S+)\n$/.exec(lost.stderr)?.[1];
  assert.ok(key, lost.stderr);
  assert.deepEqual(await peekTexts(broker.url, "openclaw"), ["pay invoice 42"], "the broker stored it");

  const retried = await runCli(["send", "-u", broker.url, "-f", "hermes", "-t", "openclaw", "--key", key, "pay invoice 42"]);
  assert.equal(retried.code, 0, retried.stderr);
  assert.deepEqual(await peekTexts(broker.url, "openclaw"), ["pay invoice 42"], "stored once");

  // With a second broker the keyed send goes on to it at once, and is stored once there too.
  const failover = await runCli(["send", "-u", `${proxy.url},${broker.url}`, "-f", "hermes", "-t", "openclaw", "second"]);
  assert.equal(failover.code, 0, failover.stderr);
  assert.deepEqual(await peekTexts(broker.url, "openclaw"), ["pay invoice 42", "second"]);

  // When the next broker cannot be reached either, the send stays in doubt (not 3: the first may have stored it).
  const dead = await fixedAnswer(200, "{}");
  await close(dead.server);
  const nowhere = await runCli(["send", "-u", `${proxy.url},${dead.url}`, "-f", "hermes", "-t", "openclaw", "third"]);
  assert.equal(nowhere.code, 11, nowhere.stderr);
  assert.match(nowhere.stderr, /^error: No broker answered \(2 tried\): .+; to store it once, send it again with --key \S+\n$/);
});

test("ask and agent add whose answer was lost exit 11: the question may have been asked, the agent added", async (t) => {
  const broker = await startBroker({ args: ["--agents", "hermes,openclaw"] });
  let proxy: { url: string; server: Server } | undefined;
  // One hook, the proxy first: a later hook does not run once the broker's cleanup throws, and the proxy would keep
  // the test run from ending.
  t.after(() => cleanUpAll(() => proxy && close(proxy.server), () => broker.cleanup()));
  proxy = await answerLosingProxy(broker.url);
  const asked = await runCli(["ask", "-u", proxy.url, "-f", "hermes", "-t", "openclaw", "--timeout", "1s", "ready?"]);
  assert.equal(asked.code, 11, asked.stderr);
  assert.match(asked.stderr, /^error: No answer from the broker at http:\/\/127\.0\.0\.1:\d+ \(.+\) after the request went out: it may have been done\n$/);
  const added = await runCli(["agent", "add", "zed", "-u", proxy.url]);
  assert.equal(added.code, 11, added.stderr);
  oneLine(added.stderr);
});

test("send to a port nothing listens on exits 3: nothing was sent", async () => {
  const { url, server } = await fixedAnswer(200, "{}");
  await close(server);
  const result = await runCli(["send", "-u", url, "-f", "hermes", "-t", "openclaw", "hi"]);
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /^error: Cannot reach the broker at /);
});

test("a 2xx answer that is not the broker's exits 4 naming what came back", async (t) => {
  for (const text of ['{"ok":true}', "[]"]) {
    const fake = await fixedAnswer(200, text);
    t.after(() => close(fake.server));
    for (
      const args of [
        ["send", "-f", "hermes", "-t", "openclaw", "-j", "hi"],
        ["send", "-f", "hermes", "-t", "openclaw", "hi"],
        ["agent", "add", "zed"],
        ["agent", "list", "--json"],
        // An empty inbox answers [] too: only an answer that cannot be a poll's is refused.
        ...(text === "[]" ? [] : [["poll", "-a", "hermes"]]),
        ["status"],
      ]
    ) {
      const result = await runCli([...args, "-u", fake.url]);
      assert.equal(result.code, 4, `${args.join(" ")} on ${text}: ${result.stderr}`);
      assert.equal(result.stdout, "", `${args.join(" ")} on ${text}`);
      assert.equal(result.stderr, `error: Broker at ${fake.url} sent an answer that is not interop's: ${text}; is --url a broker's?\n`);
    }
  }
});

test("status on a server answering 200 {} says it is not a broker, not that a token is missing", async (t) => {
  const fake = await fixedAnswer(200, "{}");
  t.after(() => close(fake.server));
  const result = await runCli(["status", "-u", fake.url]);
  assert.equal(result.code, 4, result.stderr);
  assert.doesNotMatch(result.stderr, /Missing token/);
});

test("a proxy's 502 or 504 leaves a send in doubt (11) and a poll unreachable (3); a 429 and a broker without its store exit 3", async (t) => {
  for (const status of [502, 503, 504]) {
    const proxy = await fixedAnswer(status, "<html>Bad Gateway</html>", "text/html");
    t.after(() => close(proxy.server));
    const sent = await runCli(["send", "-u", proxy.url, "-f", "hermes", "-t", "openclaw", "hi"]);
    assert.equal(sent.code, 11, sent.stderr);
    assert.match(sent.stderr, new RegExp(`^error: No answer from the broker at \\S+ \\(HTTP ${status} from a proxy: <html>Bad Gateway</html>\\): .+ --key \\S+\\n$`));
    const polled = await runCli(["poll", "-a", "hermes", "-u", proxy.url]);
    assert.equal(polled.code, 3, polled.stderr);
  }
  // The broker's own 503: its store is down, nothing was done, and a later try may work (exit 3, not 4: red team 53).
  const storeDown = await fixedAnswer(503, JSON.stringify({ error: "Storage unavailable", code: "storage_unavailable" }));
  t.after(() => close(storeDown.server));
  assert.equal((await runCli(["send", "-u", storeDown.url, "-f", "hermes", "-t", "openclaw", "hi"])).code, 3);
  const busy = await fixedAnswer(429, JSON.stringify({ error: "Too many messages from hermes; retry in 1 s", code: "rate_limited" }));
  t.after(() => close(busy.server));
  const limited = await runCli(["send", "-u", busy.url, "-f", "hermes", "-t", "openclaw", "hi"]);
  assert.equal(limited.code, 3, limited.stderr);
  assert.match(limited.stderr, /retry in 1 s/);
});

// Red team 63: a broker with every connection slot taken made send exit 4 (refused), and a retry loop dropped the message.
test("a broker with every connection slot taken: send exits 3 (nothing sent), and with several --url the next broker takes it", async (t) => {
  const full = await startBroker({ args: ["--max-connections", "2"] });
  t.after(() => full.cleanup());
  const other = await startBroker();
  t.after(() => other.cleanup());
  const streams = [await openSse(`${full.url}/subscribe?agent=a1`), await openSse(`${full.url}/subscribe?agent=a2`)];
  t.after(() => streams.forEach((stream) => stream.close()));
  const busy = await runCli(["send", "-u", full.url, "-f", "hermes", "-t", "openclaw", "hi"]);
  assert.equal(busy.code, 3, busy.stderr);
  assert.match(busy.stderr, /too many connections/i);
  const next = await runCli(["send", "-u", `${full.url},${other.url}`, "-f", "hermes", "-t", "openclaw", "hi"]);
  assert.equal(next.code, 0, next.stderr);
  assert.equal((await (await fetch(`${other.url}/poll?agent=openclaw`)).json()).length, 1);
});

// Red team 63: exit 4 said the question was refused; it was asked, and its reply comes to the asker's inbox.
test("ask whose wait the broker ended early (it was stopping: 504 ask_interrupted) exits 7: the question was asked", async (t) => {
  const message = "Ended early: the broker is stopping, so the wait for bee's reply to message 7 ended; the reply, when it comes, will be in hermes's inbox";
  const stopping = await fixedAnswer(504, JSON.stringify({ error: message, code: "ask_interrupted" }));
  t.after(() => close(stopping.server));
  const { code, stderr } = await runCli(["ask", "-u", stopping.url, "-f", "hermes", "-t", "bee", "still there?"]);
  assert.equal(code, 7, stderr);
  assert.equal(stderr, `error: ${message}\n`);
});

test("a TLS failure exits 4 as a setup problem, not 3 (which a retry loop would repeat forever)", async (t) => {
  const plain = await fixedAnswer(200, "{}");
  t.after(() => close(plain.server));
  const result = await runCli(["send", "-u", plain.url.replace("http:", "https:"), "-f", "hermes", "-t", "openclaw", "hi"]);
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, /^error: Cannot talk to the broker at https:\/\/\S+ over TLS: .+; a certificate or protocol problem/);
});

test("status --json prints ok, reachable and problems on stdout when the broker refuses the token", async (t) => {
  const fake = await fixedAnswer(401, JSON.stringify({ error: "Unauthorized", code: "unauthorized" }));
  t.after(() => close(fake.server));
  const result = await runCli(["status", "--json", "-u", fake.url]);
  assert.equal(result.code, 4, result.stderr);
  const report = JSON.parse(result.stdout);
  assert.equal(report.ok, false);
  assert.equal(report.reachable, true);
  assert.match(report.problems[0], /HTTP 401/);
});

test("send refuses standard input that is not UTF-8, saying where the bad byte is", async (t) => {
  const fake = await fixedAnswer(200, "{}");
  t.after(() => close(fake.server));
  const sender = spawnCli(["send", "-u", fake.url, "-f", "hermes", "-t", "openclaw"]);
  sender.stdin!.end(Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0xfe]));
  const result = await collect(sender);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /^error: Standard input is not UTF-8: byte 0xE9 at offset 3 does not start a valid character; .+\n$/);
  // A character cut short at the end ("ok" and the first two bytes of "€"), and a whole "€" accepted before it.
  const cut = spawnCli(["send", "-u", fake.url, "-f", "hermes", "-t", "openclaw"]);
  cut.stdin!.end(Uint8Array.from([0xe2, 0x82, 0xac, 0x6f, 0x6b, 0xe2, 0x82]));
  const truncated = await collect(cut);
  assert.equal(truncated.code, 2, truncated.stderr);
  assert.match(truncated.stderr, /byte 0xE2 at offset 5 does not start a valid character/);
});
