/** `serve` settings from a config file (`--config`, `$INTEROP_CONFIG`) and the environment: flag > env > file > default. */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startBroker } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

function configFile(t: { after(fn: () => void): void }, settings: unknown): string {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "interop.json");
  writeFileSync(file, typeof settings === "string" ? settings : JSON.stringify(settings));
  return file;
}

const listeningHost = (log: string) => /listening on http:\/\/([^\s:]+):/.exec(log)![1];

test("interop serve takes its settings from --config or $INTEROP_CONFIG; the environment beats the file and a flag beats both", async (t) => {
  const stop = testStops(t);
  // port 99999 would be refused: the helper's --port 0 flag wins over it.
  const file = configFile(t, { host: "127.0.0.3", port: 99999, agents: ["hermes", "leo"], "max-pending": 7 });
  const fromFile = await startBroker({ args: ["--config", file] });
  stop(() => fromFile.cleanup());
  assert.equal(listeningHost(fromFile.log()), "127.0.0.3");
  const status = await (await fetch(`http://127.0.0.3:${fromFile.port}/status`)).json();
  assert.deepEqual(Object.keys(status.agents).sort(), ["hermes", "leo"]);

  const fromEnv = await startBroker({ env: { INTEROP_CONFIG: file, INTEROP_HOST: "127.0.0.4" } });
  stop(() => fromEnv.cleanup());
  assert.equal(listeningHost(fromEnv.log()), "127.0.0.4", "$INTEROP_HOST beats the file");
  assert.deepEqual(Object.keys((await (await fetch(`http://127.0.0.4:${fromEnv.port}/status`)).json()).agents).sort(), ["hermes", "leo"]);

  const fromFlag = await startBroker({ args: ["--host", "127.0.0.1", "--agents", "cron"], env: { INTEROP_CONFIG: file, INTEROP_HOST: "127.0.0.4" } });
  stop(() => fromFlag.cleanup());
  assert.equal(listeningHost(fromFlag.log()), "127.0.0.1", "--host beats $INTEROP_HOST and the file");
  assert.deepEqual(Object.keys((await (await fetch(`${fromFlag.url}/status`)).json()).agents), ["cron"]);
});

// Red team 51: read up to its first digit, --a2a-wait on the command line took the file's a2a-origin-agent for itself
// and left it out: the origin card answered 404, with nothing said.
test("a flag on the command line leaves out the file's setting of that flag only, not one that shares its first letters", async (t) => {
  const file = configFile(t, { "a2a-origin-agent": "hermes", agents: ["hermes"] });
  const broker = await startBroker({ args: ["--config", file, "--a2a-wait", "10s"] });
  t.after(() => broker.cleanup());
  assert.equal((await fetch(`${broker.url}/.well-known/agent-card.json`)).status, 200);
});

test("interop serve refuses a bad config in one line naming the file and the key, and a bad $INTEROP_PORT naming it", async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ prot: 18901 }, /^error: Invalid config (\S+): unknown key "prot" \(did you mean "port"\?\); the keys are serve's long flag names/],
    [{ data_dir: "/srv" }, /^error: Invalid config (\S+): unknown key "data_dir" \(did you mean "data-dir"\?\); the keys are/],
    [{ colour: true }, /^error: Invalid config (\S+): unknown key "colour"; the keys are serve's long flag names/],
    [{ verbose: "yes" }, /^error: Invalid config (\S+): key "verbose" must be true or false/],
    [{ port: "http" }, /^error: Invalid --port: "http"; .* \(from key "port" of config (\S+)\)$/],
    ["port: [1\n", /^error: Invalid config (\S+): not YAML or JSON/],
  ];
  for (const [settings, expected] of cases) {
    const file = configFile(t, settings);
    const result = await runCli(["serve", "--config", file]);
    assert.equal(result.code, 2, result.stderr);
    const match = expected.exec(result.stderr.trimEnd());
    assert.ok(match, result.stderr);
    assert.equal(match[1], file, "the error names the file");
    assert.equal(result.stderr.trim().split("\n").length, 1);
  }
  const env = await runCli(["serve"], { env: { INTEROP_PORT: "high" } });
  assert.equal(env.code, 2);
  assert.match(env.stderr, /^error: Invalid --port: "high"; .* \(from \$INTEROP_PORT\)\n$/);
  const missing = await runCli(["serve"], { env: { INTEROP_CONFIG: "/no/such/interop.json" } });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^error: Cannot read config \/no\/such\/interop\.json: ENOENT/);
});

test("interop serve reads a YAML config file (JSON is YAML too)", async (t) => {
  const file = configFile(t, "# interop serve settings\nagents:\n  - alpha\n  - beta\nverbose: true\n");
  const broker = await startBroker({ args: ["--config", file] });
  t.after(() => broker.cleanup());
  assert.deepEqual(Object.keys((await (await fetch(`${broker.url}/status`)).json()).agents).sort(), ["alpha", "beta"]);
});

test("a config file's data-dir is relative to the file and may start with ~/ (the home directory), wherever the command runs", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const home = join(dir.path, "home");
  const etc = join(dir.path, "etc");
  mkdirSync(etc);
  const cases: Array<[string, string]> = [["data", join(etc, "data")], ["~/state/interop", join(home, "state", "interop")]];
  for (const [dataDir, expected] of cases) {
    const file = join(etc, "interop.yaml");
    writeFileSync(file, `data-dir: ${dataDir}\n`);
    // token create reads serve's config to find the data dir, and writes its tokens there.
    const result = await runCli(["token", "create", "-a", "bob", "--config", file], { env: { HOME: home } });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(existsSync(join(expected, "tokens.json")), true, `${dataDir}: ${expected}`);
  }
  assert.equal(existsSync(join(process.cwd(), "~")), false, "no literal ./~");
});

test("interop serve refuses a --max-body-bytes below 1KiB, and a database URL it cannot read naming where it came from, never its password (exit 2)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  // Port 0 and a data dir of its own: before the fix this broker started.
  const tiny = await runCli(["serve", "--port", "0", "--data-dir", dir.path, "--max-body-bytes", "0"], { timeoutMs: 10_000 });
  assert.equal(tiny.code, 2);
  assert.match(tiny.stderr, /^error: Invalid --max-body-bytes: at least 1KiB/);
  // A / in the password, a port that is no number.
  for (const url of ["postgres://interop:pa/s3cret@db.lan:5432/interop", "postgres://interop:s3cret@db.lan:54x2/interop"]) {
    const flag = await runCli(["serve", "--database-url", url]);
    assert.equal(flag.code, 2, flag.stderr);
    assert.match(flag.stderr, /^error: Invalid --database-url: not a URL \(postgres:\/\/USER@HOST:PORT\/DB, the port a number/);
    const env = await runCli(["serve"], { env: { INTEROP_DATABASE_URL: url } });
    assert.equal(env.code, 2, env.stderr);
    assert.match(env.stderr, /\(from \$INTEROP_DATABASE_URL\)\n$/);
    const file = configFile(t, { "database-url": url });
    const fromFile = await runCli(["serve", "--config", file]);
    assert.equal(fromFile.code, 2, fromFile.stderr);
    assert.ok(fromFile.stderr.endsWith(`(from key "database-url" of config ${file})\n`), fromFile.stderr);
    for (const result of [flag, env, fromFile]) {
      assert.doesNotMatch(result.stderr, /s3cret/);
      assert.equal(result.stderr.trimEnd().split("\n").length, 1);
    }
  }
  const migrate = await runCli(["migrate", "--from", "/nonexistent", "--to", "postgres://interop:pa/s3cret@db.lan/interop"]);
  assert.equal(migrate.code, 2);
  assert.match(migrate.stderr, /^error: Invalid --to: not a URL/);
});

test("interop serve refuses a bad broker setting before it makes its data dir or opens a store (exit 2)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const dataDir = join(dir.path, "data");
  const bad = [
    ["--max-hops", "0"],
    ["--rate-limit", "fast"],
    ["--max-agents", "0"],
    ["--pending-ttl", "soon"],
    ["--resume-window", "soon"],
    ["--max-requests-per-agent", "0"],
  ];
  for (const [flag, value] of bad) {
    const result = await runCli(["serve", "--port", "0", "--data-dir", dataDir, flag, value], { timeoutMs: 10_000 });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`^error: Invalid ${flag}`));
    assert.equal(existsSync(dataDir), false, `${flag} ${value}: the data dir was made`);
  }
});
