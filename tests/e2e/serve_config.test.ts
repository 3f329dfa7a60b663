/** `serve` settings from a config file (`--config`, `$INTEROP_CONFIG`) and the environment: flag > env > file > default. */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { startBroker } from "../helpers/broker.ts";
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
  // port 99999 would be refused: the helper's --port 0 flag wins over it.
  const file = configFile(t, { host: "127.0.0.3", port: 99999, agents: ["hermes", "leo"], "max-pending": 7 });
  const fromFile = await startBroker({ args: ["--config", file] });
  t.after(() => fromFile.cleanup());
  assert.equal(listeningHost(fromFile.log()), "127.0.0.3");
  const status = await (await fetch(`http://127.0.0.3:${fromFile.port}/status`)).json();
  assert.deepEqual(Object.keys(status.agents).sort(), ["hermes", "leo"]);

  const fromEnv = await startBroker({ env: { INTEROP_CONFIG: file, INTEROP_HOST: "127.0.0.4" } });
  t.after(() => fromEnv.cleanup());
  assert.equal(listeningHost(fromEnv.log()), "127.0.0.4", "$INTEROP_HOST beats the file");
  assert.deepEqual(Object.keys((await (await fetch(`http://127.0.0.4:${fromEnv.port}/status`)).json()).agents).sort(), ["hermes", "leo"]);

  const fromFlag = await startBroker({ args: ["--host", "127.0.0.1", "--agents", "cron"], env: { INTEROP_CONFIG: file, INTEROP_HOST: "127.0.0.4" } });
  t.after(() => fromFlag.cleanup());
  assert.equal(listeningHost(fromFlag.log()), "127.0.0.1", "--host beats $INTEROP_HOST and the file");
  assert.deepEqual(Object.keys((await (await fetch(`${fromFlag.url}/status`)).json()).agents), ["cron"]);
});

test("interop serve refuses a bad config in one line naming the file and the key, and a bad $INTEROP_PORT naming it", async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ prot: 18901 }, /^error: Invalid config (\S+): unknown key "prot"; the keys are serve's long flag names/],
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
