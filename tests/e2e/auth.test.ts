import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import process from "node:process";
import { join } from "node:path";
import { test } from "node:test";
import { brokerPool, startBroker, waitFor } from "../helpers/broker.ts";
import { type CliResult, runCli, spawnCli, collect, tempDir } from "../helpers/cli.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { openSse } from "../helpers/sse.ts";
import { bearer, createToken } from "../helpers/tokens.ts";

// Red team, session 50: with requests coming all the time (the broker re-reads its tokens once a second while they are
// off), requests without a token were served 0.1-0.5 s after the first `interop token create` returned, and took
// messages (5 of 5).
test("once the first `interop token create` returns, the broker serving its data dir requires tokens, even under traffic", async (t) => {
  const dir = tempDir();
  testStops(t)(dir.cleanup);
  const broker = await brokerPool(t)({ dataDir: dir.path });
  assert.equal((await fetch(`${broker.url}/poll?agent=hermes`)).status, 200);
  assert.equal((await fetch(`${broker.url}/broadcast?from=openclaw&to=hermes`, { method: "POST", body: '{"text":"for hermes only"}' })).status, 200);
  let traffic = true;
  // An unauthenticated reader asking all the time, as a client looping on /status does.
  const asking = (async () => {
    while (traffic) {
      await (await fetch(`${broker.url}/status`)).arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  const token = await createToken(dir.path, "hermes");
  const after = await fetch(`${broker.url}/poll?agent=hermes`);
  traffic = false;
  await asking;
  assert.equal(after.status, 401, JSON.stringify(await after.json()));
  const inbox = await (await fetch(`${broker.url}/poll?agent=hermes&peek=1`, { headers: bearer(token) })).json();
  assert.deepEqual(inbox.map((message: { text: string }) => message.text), ["for hermes only"]);
});

test("with tokens, each request needs one and a token acts only as its own agent", async () => {
  const dir = tempDir();
  const outputs: CliResult[] = [];
  const broker = await startBroker({ dataDir: dir.path, args: ["--verbose"] });
  try {
    assert.equal((await fetch(`${broker.url}/poll?agent=hermes`)).status, 200, "no tokens yet: open on loopback");
    const hermes = await createToken(dir.path, "hermes");
    const openclaw = await createToken(dir.path, "openclaw");
    assert.equal((statSync(join(dir.path, "tokens.json")).mode & 0o777), 0o600);
    assert.doesNotMatch(readFileSync(join(dir.path, "tokens.json"), "utf8"), new RegExp(hermes), "only hashes are stored");

    // Within a second the running broker requires them.
    await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`)).status === 401, 5000, "tokens to take effect");
    const missing = await fetch(`${broker.url}/poll?agent=hermes`);
    assert.equal((await missing.json()).code, "unauthorized");
    assert.equal((await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer("itk_wrong") })).status, 401);

    const liveness = await (await fetch(`${broker.url}/status`)).json();
    assert.deepEqual(liveness, { service: "interop", ok: true, details: "send a token for details" });
    assert.equal((await (await fetch(`${broker.url}/status`, { headers: bearer(hermes) })).json()).pid, broker.pid);

    const ok = await fetch(`${broker.url}/broadcast?from=hermes&to=openclaw`, { method: "POST", headers: bearer(hermes), body: '{"secret":"for openclaw"}' });
    assert.equal(ok.status, 200);
    const impersonation = await fetch(`${broker.url}/broadcast?from=openclaw&to=hermes`, { method: "POST", headers: bearer(hermes), body: "{}" });
    assert.equal(impersonation.status, 403);
    assert.match((await impersonation.json()).error, /the token of hermes cannot send as openclaw/);
    for (const path of [
      "/poll?agent=openclaw",
      "/wait?agent=openclaw&timeout=1",
      "/subscribe?agent=openclaw&last_event_id=0",
      "/dead-letters?agent=openclaw",
      "/ntfy/openclaw/json?poll=1&since=all",
    ]) {
      const response = await fetch(`${broker.url}${path}`, { headers: bearer(hermes) });
      assert.equal(response.status, 403, `reading another inbox: ${path}`);
      assert.equal((await response.json()).code, "forbidden");
    }
    const asOther = await fetch(`${broker.url}/ntfy/@openclaw/hermes`, { method: "POST", headers: bearer(hermes), body: "hi" });
    assert.equal(asOther.status, 403, "ntfy publishing as another agent");
    const ntfyPublish = await fetch(`${broker.url}/ntfy/hermes`, { method: "POST", headers: bearer(openclaw), body: "via ntfy" });
    assert.equal(ntfyPublish.status, 200);

    // The owner reads its inbox, with the header or ?token= for clients that cannot set headers.
    const mine = await (await fetch(`${broker.url}/poll?agent=openclaw&token=${openclaw}`)).json();
    assert.deepEqual(mine.map((message: { secret: string }) => message.secret), ["for openclaw"]);

    // CLI clients take the token from INTEROP_TOKEN or --token-file.
    const tokenFile = join(dir.path, "hermes.token");
    writeFileSync(tokenFile, hermes + "\n");
    outputs.push(await runCli(["poll", "--agent", "hermes", "--url", broker.url, "--token-file", tokenFile]));
    assert.equal(JSON.parse(outputs.at(-1)!.stdout).text, "via ntfy");
    assert.equal(JSON.parse(outputs.at(-1)!.stdout).interop.from, "openclaw", "the token names the ntfy sender");
    outputs.push(await runCli(["send", "--from", "hermes", "--to", "openclaw", "--url", broker.url, "hello"], { env: { INTEROP_TOKEN: hermes } }));
    assert.equal(outputs.at(-1)!.code, 0);
    outputs.push(await runCli(["send", "--from", "openclaw", "--url", broker.url, "spoof"], { env: { INTEROP_TOKEN: hermes } }));
    assert.equal(outputs.at(-1)!.code, 4);
    assert.match(outputs.at(-1)!.stderr, /HTTP 403.*cannot send as openclaw/);
    outputs.push(await runCli(["status", "--url", broker.url, "--json"], { env: { INTEROP_TOKEN: hermes } }));
    assert.equal(JSON.parse(outputs.at(-1)!.stdout).ok, true);

    // A revoked token stops working, and a stream opened with it is cut.
    const hermesStream = await openSse(`${broker.url}/subscribe?agent=hermes`, bearer(hermes));
    assert.equal(hermesStream.status, 200);
    const revoked = await runCli(["token", "revoke", "--agent", "hermes", "--data-dir", dir.path]);
    assert.match(revoked.stdout, /^revoked tok_[0-9a-f]{12} \(hermes\)\n$/);
    await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(hermes) })).status === 401, 5000, "the revocation");
    await Promise.race([
      hermesStream.ended,
      new Promise((_, reject) => setTimeout(() => reject(new Error("the stream outlived its revoked token")), 5000)),
    ]);

    const everything = broker.log() + outputs.map((output) => output.stdout + output.stderr).join("");
    for (const token of [hermes, openclaw]) assert.ok(!everything.includes(token), "no token in any log line");
  } finally {
    await broker.cleanup();
    dir.cleanup();
  }
});

test("an operator's token publishes through ntfy as the sender it names, as /broadcast?from= does", async (t) => {
  const dir = tempDir();
  // Stopped newest first: the broker, then its data dir.
  testStops(t)(dir.cleanup);
  const broker = await brokerPool(t)({ dataDir: dir.path, args: ["--agents", "hermes,openclaw"] });
  const admin = await createToken(dir.path, "ops", { admin: true });
  await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`)).status === 401, 5000, "tokens to take effect");
  for (const [path, headers] of [
    ["/ntfy/@openclaw/hermes", {}],
    ["/ntfy/hermes", { "x-interop-from": "openclaw" }],
  ] as const) {
    const sent = await fetch(`${broker.url}${path}`, { method: "POST", headers: { ...bearer(admin), ...headers }, body: path });
    assert.equal(sent.status, 200, path);
  }
  const stored = await (await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(admin) })).json();
  assert.deepEqual(stored.map((message: { interop: { from: string } }) => message.interop.from), ["openclaw", "openclaw"]);
  const unnamed = await fetch(`${broker.url}/ntfy/hermes`, { method: "POST", headers: bearer(admin), body: "no sender named" });
  assert.equal((await unnamed.json()).event, "message");
  assert.equal((await (await fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(admin) })).json())[0].interop.from, "ops");
});

test("interop serve refuses a non-loopback host without tokens, and --insecure says so loudly", async () => {
  const dir = tempDir();
  try {
    const refused = await runCli(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", dir.path]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^error: Refusing to serve on 0\.0\.0\.0 without tokens: .*interop token create --agent NAME/);
    const insecure = spawnCli(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", dir.path, "--insecure"]);
    const done = collect(insecure);
    let log = "";
    insecure.stderr!.on("data", (chunk: string) => (log += chunk));
    await waitFor(() => log.includes("listening on"), 10_000, "the insecure broker");
    process.kill(insecure.pid!, "SIGTERM");
    assert.match((await done).stderr, /warn: INSECURE: serving on 0\.0\.0\.0 without tokens/);
  } finally {
    dir.cleanup();
  }
});

test("listen reads its inbox with its token, and without one exits 4 saying why", async () => {
  const dir = tempDir();
  const broker = await startBroker({ dataDir: dir.path });
  let listen: ReturnType<typeof spawnCli> | undefined;
  try {
    const hermes = await createToken(dir.path, "hermes");
    const openclaw = await createToken(dir.path, "openclaw");
    await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`)).status === 401, 5000, "tokens on");
    const anonymous = await runCli(["listen", "--agent", "hermes", "--url", broker.url, "--state", join(dir.path, "a")]);
    assert.equal(anonymous.code, 4);
    assert.match(anonymous.stderr, /error: Broker refused \(HTTP 401\): Missing token/);

    listen = spawnCli(["listen", "--agent", "hermes", "--url", broker.url, "--state", join(dir.path, "s")], { INTEROP_TOKEN: hermes });
    const done = collect(listen);
    let output = "";
    listen.stdout!.on("data", (chunk: string) => (output += chunk));
    const sent = await fetch(`${broker.url}/broadcast?from=openclaw&to=hermes`, { method: "POST", headers: bearer(openclaw), body: '{"text":"with token"}' });
    assert.equal(sent.status, 200);
    await waitFor(() => output.includes("with token"), 15_000, "listen with its token");
    process.kill(listen.pid!, "SIGTERM");
    assert.equal((await done).code, 0);
  } finally {
    if (listen?.exitCode === null) process.kill(listen.pid!, "SIGKILL");
    await broker.cleanup();
    dir.cleanup();
  }
});

// Red team, session 52: `{"tokens": null}` failed inside each request (500, a stack in the log), where a file that is
// not JSON is refused as a whole (503, the file named).
test("a tokens file edited by hand into a shape the broker cannot read refuses every token, and the tokenless liveness check, with 503 naming it, and serves again once fixed", async (t) => {
  const dir = tempDir();
  testStops(t)(dir.cleanup);
  const broker = await brokerPool(t)({ dataDir: dir.path });
  const hermes = await createToken(dir.path, "hermes");
  const file = join(dir.path, "tokens.json");
  const good = readFileSync(file, "utf8");
  const record = JSON.parse(good).tokens[0];
  const read = () => fetch(`${broker.url}/poll?agent=hermes`, { headers: bearer(hermes) });
  await waitFor(async () => (await read()).status === 200, 5000, "the token to take effect");
  for (const [shape, said] of [
    [{ tokens: null }, /holds no "tokens" list: fix or remove it/],
    [{}, /holds no "tokens" list/],
    [{ tokens: [{ ...record, hash: 5 }] }, /has a token 1 that is not \{"id", "agent", "hash" \(64 hex digits\), "created_at"\}/],
    [{ tokens: [record, { ...record, id: "tok_x", agent: "../../etc" }] }, /has a token 2 that is not/],
  ] as const) {
    writeFileSync(file, JSON.stringify(shape));
    await waitFor(async () => (await read()).status === 503, 5000, `${JSON.stringify(shape)} to be read`);
    const answer = await (await read()).json();
    assert.match(answer.error, new RegExp(`${file.replaceAll("/", "\\/")} `), JSON.stringify(shape));
    assert.match(answer.error, said, JSON.stringify(shape));
    // Red team 52: the liveness answer without a token said ok while every request was refused.
    const liveness = await fetch(`${broker.url}/status`);
    assert.equal(liveness.status, 503, JSON.stringify(shape));
    // Without the path or the fault (red team 53, second pass): a request with a token says them.
    assert.equal((await liveness.json()).error, "The broker cannot read its tokens: every request is refused until they are fixed (a request with a token says why)");
  }
  writeFileSync(file, good);
  await waitFor(async () => (await read()).status === 200, 5000, "the fixed file to be read");
  assert.deepEqual(await (await fetch(`${broker.url}/status`)).json(), { service: "interop", ok: true, details: "send a token for details" });
  assert.doesNotMatch(broker.log(), /\n\s+at /, "no stack in the log");
});
