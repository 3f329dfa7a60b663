import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { hashToken, TokenFile } from "../../src/auth/token_file.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

/** A data dir whose broker has tokens (one for the operator), as `interop token create` leaves it. */
async function dataDirWithTokens(path: string): Promise<void> {
  const created = await runCli(["token", "create", "--admin", "--data-dir", path]);
  assert.equal(created.code, 0, created.stderr);
}

test("interop integrate openclaw --write makes interop OpenClaw's A2A peer: listen token in a mode-600 file, its own interop token, and a second run changes nothing", async (t) => {
  const home = tempDir();
  const data = tempDir();
  t.after(() => {
    home.cleanup();
    data.cleanup();
  });
  await dataDirWithTokens(data.path);
  mkdirSync(join(home.path, ".openclaw"));
  writeFileSync(
    join(home.path, ".openclaw", "openclaw.json"),
    JSON.stringify({ channels: { a2a: { replyTimeoutMs: 5000, peers: { alice: { token: "t" } } } } }),
  );
  const args = [
    "integrate",
    "openclaw",
    "--write",
    "--home",
    home.path,
    "--data-dir",
    data.path,
    "--url",
    "http://127.0.0.1:18900",
  ];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const config = JSON.parse(readFileSync(join(home.path, ".openclaw", "openclaw.json"), "utf8"));
  const tokenFile = join(home.path, ".openclaw", "interop-a2a-token");
  const listenToken = readFileSync(tokenFile, "utf8").trim();
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  assert.equal(config.channels.a2a.enabled, true);
  assert.equal(config.channels.a2a.replyTimeoutMs, 5000, "the user's settings stay");
  assert.deepEqual(config.channels.a2a.peers.alice, { token: "t" });
  const peer = config.channels.a2a.peers.hermes;
  assert.equal(peer.url, "http://127.0.0.1:18900/a2a/hermes");
  assert.equal(peer.token, listenToken);
  // outboundToken is an interop token of openclaw: the broker takes it as openclaw.
  const record = new TokenFile(data.path).list().find((token) => token.hash === hashToken(peer.outboundToken));
  assert.equal(record?.agent, "openclaw");
  assert.match(
    first.stdout,
    /listen --agent openclaw --url http:\/\/127\.0\.0\.1:18900 --a2a http:\/\/127\.0\.0\.1:18789\/a2a\/v1 --a2a-token-file /,
  );

  const again = await runCli(args);
  assert.doesNotMatch(again.stdout, /^(created|updated) /m);
  assert.equal(new TokenFile(data.path).list().length, 2, "no second interop token");
});

test("interop integrate hermes --write sets a2a_agents and A2A_PEER_TOKENS for interop, keeping other peers; with no broker tokens it creates none", async (t) => {
  const home = tempDir();
  const data = tempDir();
  t.after(() => {
    home.cleanup();
    data.cleanup();
  });
  mkdirSync(join(home.path, ".hermes"));
  writeFileSync(join(home.path, ".hermes", ".env"), "A2A_PEER_TOKENS=alice:tok1\n");
  const args = [
    "integrate",
    "hermes",
    "--write",
    "--home",
    home.path,
    "--data-dir",
    data.path,
    "--url",
    "http://127.0.0.1:18900",
  ];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const listenToken = readFileSync(join(home.path, ".hermes", "interop-a2a-token"), "utf8").trim();
  assert.match(listenToken, /^a2a_[\w-]{43}$/);
  const env = readFileSync(join(home.path, ".hermes", ".env"), "utf8");
  assert.match(env, new RegExp(`^A2A_PEER_TOKENS=alice:tok1,openclaw:${listenToken}$`, "m"));
  const config = parse(readFileSync(join(home.path, ".hermes", "config.yaml"), "utf8"));
  assert.equal(config.gateway.platforms.a2a.enabled, true);
  assert.deepEqual(
    config.a2a_agents.openclaw,
    { url: "http://127.0.0.1:18900/a2a/openclaw" },
    "no auth: the broker has no tokens",
  );
  assert.deepEqual(
    new TokenFile(data.path).list(),
    [],
    "no token created: the first would lock out every client without one",
  );
  assert.match(first.stdout, /--a2a http:\/\/127\.0\.0\.1:9900\/ --a2a-token-file /);

  const again = await runCli(args);
  assert.doesNotMatch(again.stdout, /^(created|updated) /m);
});
