/** The CLI's seams with the world: token files and variables, the URLs and ports it is given, and its hints. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { networkInterfaces } from "node:os";
import { test } from "node:test";
import { processMark } from "../../src/process_runs.ts";
import { freePort, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { createToken } from "../helpers/tokens.ts";

test("a token file with a comment line is refused by name (exit 2), and no command prints the token", async (t) => {
  const stop = testStops(t);
  const dir = tempDir();
  stop(() => dir.cleanup());
  const broker = await startBroker();
  stop(() => broker.cleanup());
  const token = await createToken(broker.dataDir, "hermes");
  const commented = join(dir.path, "two.tok");
  writeFileSync(commented, `# hermes token\n${token}\n`);
  const env = { INTEROP_URL: broker.url, INTEROP_TOKEN: "" };
  for (const args of [["send", "-f", "hermes", "-t", "openclaw", "hi"], ["status", "--json"], ["poll", "-a", "hermes"]]) {
    const result = await runCli([...args, "--token-file", commented], { env });
    assert.equal(result.code, 2, `${args[0]}: ${result.stderr}`);
    assert.equal(
      result.stderr,
      `error: ${commented} does not hold one token: it holds 2 lines; it must hold the token alone ` +
        `(as 'interop token create ... > ${commented}' writes it)\n`,
    );
    assert.ok(!result.stdout.includes(token) && !result.stderr.includes(token), `${args[0]} printed the token`);
  }
  // As `token create > FILE` writes it, with blank space around it, the file works.
  const alone = join(dir.path, "one.tok");
  writeFileSync(alone, `\n${token}\n\n`);
  const sent = await runCli(["send", "-f", "hermes", "-t", "openclaw", "hi", "--token-file", alone], { env });
  assert.equal(sent.code, 0, sent.stderr);
});

test("$INTEROP_TOKEN with a space or a line break in it is not a token (exit 2), and is never printed", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  const token = await createToken(broker.dataDir, "hermes");
  for (const value of [`${token} extra`, `${token}\nextra`]) {
    const result = await runCli(["send", "-f", "hermes", "-t", "openclaw", "hi"], { env: { INTEROP_URL: broker.url, INTEROP_TOKEN: value } });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^error: \$INTEROP_TOKEN does not hold one token: it (holds 2 lines|contains white space, a control character or a character past ASCII); it must hold the token alone\n$/);
    assert.ok(!result.stderr.includes(token));
  }
});

test("serve refuses a port fetch never connects to (exit 2), and a client given one says so, not 'is serve running'", async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  // Refused before anything is bound, so this fixed port is never listened on.
  const serve = await runCli(["serve", "--port", "6666", "--data-dir", dir.path], { timeoutMs: 15_000 });
  assert.equal(serve.code, 2, serve.stderr);
  assert.equal(
    serve.stderr,
    "error: Invalid --port: port 6666 is one that fetch refuses to connect to (the fetch standard's bad ports: 6000, 6665-6669, " +
      "10080, …), so interop's clients and browsers (the dashboard's fetch and EventSource) cannot reach it; use another port; " +
      "see 'interop serve --help'\n",
  );
  for (const [args, env] of [[["status", "--url", "127.0.0.1:6666"], {}], [["send", "-f", "a", "-t", "b", "hi"], { INTEROP_URL: "http://localhost:10080" }]] as const) {
    const client = await runCli([...args], { env: { ...env } });
    assert.equal(client.code, 2, client.stderr);
    assert.match(client.stderr, /^error: Invalid (--url|\$INTEROP_URL): "[^"]+": port (6666|10080) is one that fetch refuses to connect to .*; see 'interop (status|send) --help'\n$/);
  }
});

test("--url and $INTEROP_URL take HOST:PORT or a URL: a port alone or a host without a port is a usage error (exit 2)", async () => {
  const bare = await runCli(["status", "--url", "18931"]);
  assert.equal(bare.code, 2, bare.stderr);
  assert.equal(
    bare.stderr,
    `error: Invalid --url: "18931" is a port alone; give HOST:PORT (127.0.0.1:18931) or http://HOST:PORT; see 'interop status --help'\n`,
  );
  for (const url of ["localhost", "127.0.0.1:18900,18901", "[::1]"]) {
    const result = await runCli(["poll", "-a", "hermes"], { env: { INTEROP_URL: url } });
    assert.equal(result.code, 2, `${url}: ${result.stderr}`);
    assert.match(result.stderr, /^error: Invalid \$INTEROP_URL: "[^"]+"( is a port alone; give HOST:PORT|; use http:\/\/HOST:PORT or HOST:PORT)/);
  }
});

test("token create refuses the data dir of a running broker when $INTEROP_URL names another, and writes nothing", async (t) => {
  const stop = testStops(t);
  const served = await startBroker();
  stop(() => served.cleanup());
  const named = await startBroker();
  stop(() => named.cleanup());
  // The data dir by default ($INTEROP_DATA_DIR), as a shell that set only INTEROP_URL has it.
  const env = { INTEROP_URL: `127.0.0.1:${named.port}`, INTEROP_DATA_DIR: served.dataDir, INTEROP_TOKEN: "" };
  const refused = await runCli(["token", "create", "-a", "hermes"], { env });
  assert.equal(refused.code, 2, refused.stderr);
  assert.equal(refused.stdout, "");
  assert.match(
    refused.stderr,
    new RegExp(`^error: ${served.dataDir} is the data dir of the broker on 127\\.0\\.0\\.1:${served.port} \\(pid ${served.pid}\\), ` +
      `not of \\$INTEROP_URL's http://127\\.0\\.0\\.1:${named.port}: .*pass the --data-dir of the broker you mean`),
  );
  assert.ok(!existsSync(join(served.dataDir, "tokens.json")), "no token was written");
  const status = await (await fetch(`${served.url}/status`)).json();
  assert.equal(status.pid, served.pid, "the broker serving that data dir still has no tokens");

  // The data dir of the broker $INTEROP_URL names is the one meant.
  const there = await runCli(["token", "create", "-a", "hermes"], { env: { ...env, INTEROP_DATA_DIR: named.dataDir } });
  assert.equal(there.code, 0, there.stderr);
  assert.doesNotMatch(there.stderr, /warning/);
});

test("token create takes the data dir of a broker killed (kill -9) whose pid the kernel gave to another process since", async (t) => {
  const stop = testStops(t);
  const named = await startBroker();
  stop(() => named.cleanup());
  const dataDir = tempDir();
  stop(() => dataDir.cleanup());
  const other = spawn("sleep", ["30"]);
  stop(() => other.kill());
  // The owner file a killed broker left, naming a pid that `other` has now, started at another moment.
  const mark = processMark(other.pid!);
  const owner = { ...mark, started: String(Number(mark.started) - 1), host: "127.0.0.1", port: await freePort(), version: "0" };
  writeFileSync(join(dataDir.path, "broker.json"), JSON.stringify(owner) + "\n", { mode: 0o600 });
  const env = { INTEROP_URL: `127.0.0.1:${named.port}`, INTEROP_DATA_DIR: dataDir.path, INTEROP_TOKEN: "" };
  const created = await runCli(["token", "create", "-a", "hermes"], { env });
  assert.equal(created.code, 0, created.stderr);
  assert.ok(existsSync(join(dataDir.path, "tokens.json")));
});

test("token create takes a data dir named with --data-dir, and a broker bound to every address reached by this host's address", async (t) => {
  const stop = testStops(t);
  const address = Object.values(networkInterfaces()).flat().find((nic) => nic?.family === "IPv4" && !nic.internal)?.address;
  const everywhere = await startBroker({ args: ["--host", "0.0.0.0", "--insecure"] });
  stop(() => everywhere.cleanup());
  const other = await startBroker();
  stop(() => other.cleanup());
  const env = { INTEROP_URL: `127.0.0.1:${other.port}`, INTEROP_DATA_DIR: everywhere.dataDir, INTEROP_TOKEN: "" };
  const named = await runCli(["token", "create", "-a", "hermes", "--data-dir", everywhere.dataDir], { env });
  assert.equal(named.code, 0, named.stderr);
  if (address === undefined) return t.diagnostic("no non-loopback IPv4 address: the every-address case is not run");
  const lan = await runCli(["token", "create", "-a", "openclaw"], { env: { ...env, INTEROP_URL: `${address}:${everywhere.port}` } });
  assert.equal(lan.code, 0, lan.stderr);
});

test("a misplaced or text-like option says where it goes: --dry-run after 'listen', a text that starts with '-'", async () => {
  const service = await runCli(["service", "install", "listen", "--agent", "hermes", "--dry-run"]);
  assert.equal(service.code, 2, service.stderr);
  assert.equal(
    service.stderr,
    "error: --dry-run is a service option: put it before 'listen' (interop service install --dry-run listen -a AGENT …); " +
      "see 'interop service --help'\n",
  );
  const text = await runCli(["send", "-f", "a", "-t", "b", "-5 degrees"]);
  assert.equal(text.code, 2, text.stderr);
  assert.equal(
    text.stderr,
    `error: Unknown option -5 for 'interop send' (a text that starts with '-' goes after --: interop send … -- "-5 degrees"); ` +
      "see 'interop send --help'\n",
  );
});

test("a command without a token on a broker with tokens gets the CLI's hint, not the HTTP one", async (t) => {
  const broker = await startBroker();
  t.after(() => broker.cleanup());
  await createToken(broker.dataDir, "hermes");
  const env = { INTEROP_URL: broker.url, INTEROP_TOKEN: "" };
  // The broker reads its tokens within a second: until then a send would be let through.
  await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).pid === undefined, 5000, "tokens to take effect");
  for (const args of [["send", "-f", "hermes", "-t", "openclaw", "hi"], ["poll", "-a", "hermes"], ["status"]]) {
    const result = await runCli(args, { env });
    assert.equal(result.code, 4, result.stderr);
    assert.equal(
      result.stderr,
      "error: Broker refused (HTTP 401): Missing token: the broker has tokens; pass --token-file FILE or set INTEROP_TOKEN\n",
      args[0],
    );
  }
});

test("integrate hermes --write on a machine without Hermes's config says to set Hermes up, as openclaw's does", async (t) => {
  const home = tempDir();
  t.after(() => home.cleanup());
  const env = { HOME: home.path, INTEROP_URL: `127.0.0.1:${await freePort()}`, INTEROP_TOKEN: "" };
  const result = await runCli(["integrate", "hermes", "--write"], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.ok(
    result.stdout.includes(`- ${join(home.path, ".hermes", "config.yaml")} did not exist: install Hermes and run 'hermes setup'`),
    result.stdout,
  );
  // Once it exists (the run above wrote it), the next run has nothing to warn of.
  const again = await runCli(["integrate", "hermes", "--write"], { env });
  assert.doesNotMatch(again.stdout, /did not exist/);
});
