import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { TokenFile } from "../../src/auth/token_file.ts";
import { hashToken } from "../../src/auth/token_list.ts";
import { cliCommand, collect, runCli, tempDir } from "../helpers/cli.ts";

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
  const record = (await new TokenFile(data.path).list()).find((token) => token.hash === hashToken(peer.outboundToken));
  assert.equal(record?.agent, "openclaw");
  assert.match(
    first.stdout,
    /listen --agent openclaw --url http:\/\/127\.0\.0\.1:18900 --a2a http:\/\/127\.0\.0\.1:18789\/a2a\/v1 --a2a-token-file /,
  );

  const again = await runCli(args);
  assert.doesNotMatch(again.stdout, /^(created|updated) /m);
  assert.equal((await new TokenFile(data.path).list()).length, 2, "no second interop token");
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
    (await new TokenFile(data.path).list()),
    [],
    "no token created: the first would lock out every client without one",
  );
  assert.match(first.stdout, /--a2a http:\/\/127\.0\.0\.1:9900\/ --a2a-token-file /);

  const again = await runCli(args);
  assert.doesNotMatch(again.stdout, /^(created|updated) /m);
});

test("interop integrate --write under umask 022 leaves every file holding a token, and its backup, mode 600", async (t) => {
  const home = tempDir();
  const data = tempDir();
  t.after(() => {
    home.cleanup();
    data.cleanup();
  });
  await dataDirWithTokens(data.path);
  const hermes = join(home.path, ".hermes");
  mkdirSync(hermes);
  // Existing files as an editor under umask 022 leaves them; openclaw.json does not exist yet.
  for (const [name, text] of [["config.yaml", "model: hermes-4\n"], [".env", "OTHER=1\n"]]) {
    writeFileSync(join(hermes, name), text);
    chmodSync(join(hermes, name), 0o644);
  }
  const integrate = async (target: string) => {
    const [command, prefix] = cliCommand();
    const args = ["integrate", target, "--write", "--home", home.path, "--data-dir", data.path];
    const child = spawn("sh", ["-c", 'umask 022 && exec "$@"', "sh", command, ...prefix, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    const result = await collect(child);
    assert.equal(result.code, 0, result.stderr);
  };
  await integrate("hermes");
  await integrate("openclaw");
  const modeOf = (path: string) => statSync(path).mode & 0o777;
  const backups = readdirSync(hermes).filter((name) => name.includes(".bak-"));
  assert.equal(backups.length, 2, backups.join(", "));
  for (const name of ["config.yaml", ".env", "interop-a2a-token", ...backups]) assert.equal(modeOf(join(hermes, name)), 0o600, name);
  for (const name of ["openclaw.json", "interop-a2a-token"]) assert.equal(modeOf(join(home.path, ".openclaw", name)), 0o600, name);
});
