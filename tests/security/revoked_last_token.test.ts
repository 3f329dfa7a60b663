/**
 * Issue 13, hole 2: revoking the last token turned authentication off, and a broker on a public address then
 * served every inbox to anyone. Once a data dir has had tokens, authentication stays on.
 */
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { bearer, createToken, revokeTokens } from "../helpers/tokens.ts";
import { openSse } from "../helpers/sse.ts";

/** Every route that reads or writes messages, as an attacker without a token would try it. */
const ROUTES: Array<[method: string, path: string]> = [
  ["GET", "/poll?agent=hermes"],
  ["POST", "/broadcast?from=openclaw&to=hermes"],
  ["GET", "/subscribe?agent=hermes&last_event_id=0"],
  ["GET", "/wait?agent=hermes&timeout=1"],
  ["POST", "/ask?from=openclaw&to=hermes&timeout=1"],
  ["GET", "/dead-letters?agent=hermes"],
  ["POST", "/dead-letters?agent=hermes"],
  ["GET", "/ntfy/hermes/json?poll=1&since=all"],
  ["POST", "/ntfy/hermes"],
  ["GET", "/events"],
  ["GET", "/metrics"],
  ["GET", "/stats"],
];

async function attempt(broker: RunningBroker, method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  const body = method === "POST" ? JSON.stringify({ id: 1, reason: "x", text: "sent by anyone" }) : undefined;
  return await fetch(`${broker.url}${path}`, { method, headers: { "content-type": "application/json", ...headers }, body });
}

test("revoking the last token leaves authentication on: every route answers 401 saying how to make a token", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  const hermes = await createToken(dir.path, "hermes");
  broker = await startBroker({ dataDir: dir.path });
  const kept = await fetch(`${broker.url}/broadcast?from=hermes&to=hermes`, {
    method: "POST",
    headers: bearer(hermes),
    body: JSON.stringify({ text: "a note hermes keeps for itself" }),
  });
  assert.equal(kept.status, 200);

  const revoked = await revokeTokens(dir.path, "hermes");
  assert.match(revoked.stderr, /no tokens left/, "the operator is told what the broker does now");
  // Synchronised on /status, which takes nothing: until the broker reads the revocation, a poll would still work.
  await waitFor(async () => (await attempt(broker!, "GET", "/status", bearer(hermes))).status === 401, 5000, "the revocation");

  for (const [method, path] of ROUTES) {
    for (const headers of [{}, bearer(hermes)]) {
      const response = await attempt(broker, method, path, headers);
      const what = `${method} ${path} ${"authorization" in headers ? "with the revoked token" : "without a token"}`;
      assert.equal(response.status, 401, what);
      const { code, error } = await response.json();
      assert.equal(code, "unauthorized", what);
      assert.match(error, /interop token create/, what);
    }
  }
  assert.deepEqual(await (await fetch(`${broker.url}/status`)).json(), { service: "interop", ok: true, details: "send a token for details" });

  // A new token works at once, and nothing was taken meanwhile.
  const fresh = await createToken(dir.path, "hermes");
  const inbox = await waitFor(async () => {
    const response = await fetch(`${broker!.url}/poll?agent=hermes`, { headers: bearer(fresh) });
    return response.status === 200 ? await response.json() : undefined;
  }, 5000, "the new token");
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["a note hermes keeps for itself"]);
});

test("a broker on a non-loopback host never serves without a token, even when tokens.json is deleted", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  t.after(async () => {
    await broker?.cleanup();
    dir.cleanup();
  });
  const hermes = await createToken(dir.path, "hermes");
  // Bound to every address; the test only ever connects to 127.0.0.1.
  broker = await startBroker({ dataDir: dir.path, args: ["--host", "0.0.0.0"] });
  assert.equal((await attempt(broker, "GET", "/poll?agent=hermes", bearer(hermes))).status, 200);

  rmSync(join(dir.path, "tokens.json"));
  // The broker has read the deletion once hermes's token stops working.
  await waitFor(async () => (await attempt(broker!, "GET", "/status", bearer(hermes))).status !== 200, 5000, "the deletion");
  for (const [method, path] of ROUTES) {
    assert.equal((await attempt(broker, method, path)).status, 401, `${method} ${path} without a token`);
  }
});

test("interop token revoke on a data dir that never had tokens changes nothing", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const result = await runCli(["token", "revoke", "--agent", "hermes", "--data-dir", dir.path]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /No token matched/);
  assert.equal(existsSync(join(dir.path, "tokens.json")), false, "no empty token file that would turn authentication on");
});

test("streams and waits opened without a token end once the broker's first token is made", async (t) => {
  const dir = tempDir();
  let broker: RunningBroker | undefined;
  const streams: Array<{ close(): void }> = [];
  t.after(async () => {
    streams.forEach((stream) => stream.close());
    await broker?.cleanup();
    dir.cleanup();
  });
  broker = await startBroker({ dataDir: dir.path, args: ["--agents", "hermes"] });
  // Opened while the broker needs no token: all traffic, and hermes's inbox.
  const feed = await openSse(`${broker.url}/events`);
  const inbox = await openSse(`${broker.url}/subscribe?agent=hermes&last_event_id=0`);
  streams.push(feed, inbox);
  assert.deepEqual([feed.status, inbox.status], [200, 200]);
  const waiting = fetch(`${broker.url}/wait?agent=hermes&timeout=60`);

  await createToken(dir.path, "hermes");
  const within = async <T>(promise: Promise<T>, what: string): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} still open`)), 10_000)));
    try {
      return await Promise.race([promise, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  // Tokens are on now: what anyone opened before must not go on reading without one.
  await within(feed.ended, "the feed");
  await within(inbox.ended, "hermes's stream");
  const waited = await within(waiting, "the wait");
  assert.equal(waited.status, 401);
  assert.match((await waited.json()).error, /^Tokens turned on while waiting: nothing was taken/);
});
