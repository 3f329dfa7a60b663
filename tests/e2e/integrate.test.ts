import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { freePort, publish, type RunningBroker, startBroker, waitFor } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { hermesAuthorizes, HermesLikeClient } from "../helpers/hermes_ntfy.ts";

function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (path: string) => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) walk(full);
      else files[full.slice(dir.length)] = readFileSync(full, "utf8");
    }
  };
  walk(dir);
  return files;
}

test("interop integrate hermes prints the steps and snippets for this machine", async () => {
  const home = tempDir();
  try {
    const result = await runCli(["integrate", "hermes", "--home", home.path, "--url", "http://127.0.0.1:18900"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\.hermes\/skills\/communication\/interop\/SKILL\.md/);
    assert.match(result.stdout, /mcp_servers:\n +interop:/);
    assert.match(result.stdout, /NTFY_SERVER_URL=http:\/\/127\.0\.0\.1:18900\/ntfy\/@hermes\n +NTFY_TOPIC=hermes\n +NTFY_PUBLISH_TOPIC=openclaw\n +NTFY_ALLOWED_USERS=hermes\n/);
    assert.deepEqual(readdirSync(home.path), [], "printing writes nothing");
    // The command that writes it is this one: without its --home and --url it would change this user's files.
    assert.ok(result.stdout.endsWith(`run:\n  interop integrate hermes --home ${home.path} --url http://127.0.0.1:18900 --write\n`), result.stdout);
    const quoted = await runCli(["integrate", "hermes", "--home", `${home.path}/it's mine`, "--database-url", "postgres://u:secret@127.0.0.1:1/db"]);
    assert.match(quoted.stdout, /interop integrate hermes --home '[^\n]*\/it'\\''s mine' --database-url postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/db --write\n$/);
    assert.doesNotMatch(quoted.stdout, /secret/);
  } finally {
    home.cleanup();
  }
});

test("interop integrate --write keeps existing settings, backs files up, and a second run changes nothing", async () => {
  const home = tempDir();
  try {
    mkdirSync(join(home.path, ".hermes"));
    writeFileSync(join(home.path, ".hermes", "config.yaml"), "# my settings\nmodel: hermes-4\nmcp_servers:\n  other:\n    command: other\n");
    writeFileSync(join(home.path, ".hermes", ".env"), "OPENAI_API_KEY=x\nNTFY_TOPIC=old\n");
    for (const target of ["hermes", "openclaw"]) {
      const first = await runCli(["integrate", target, "--write", "--home", home.path]);
      assert.equal(first.code, 0, first.stderr);
    }
    const after = snapshot(home.path);
    const config = after["/.hermes/config.yaml"];
    assert.match(config, /^# my settings\n/);
    const parsed = parse(config);
    assert.equal(parsed.model, "hermes-4");
    assert.equal(parsed.mcp_servers.other.command, "other");
    assert.deepEqual(parsed.mcp_servers.interop.args.slice(0, 3), ["mcp", "--agent", "hermes"]);
    assert.match(
      after["/.hermes/.env"],
      /^OPENAI_API_KEY=x\nNTFY_TOPIC=hermes\nNTFY_SERVER_URL=http:\/\/127\.0\.0\.1:18900\/ntfy\/@hermes\nNTFY_PUBLISH_TOPIC=openclaw\nNTFY_ALLOWED_USERS=hermes\nA2A_PEER_TOKENS=openclaw:a2a_[\w-]{43}\n$/,
    );
    assert.equal(JSON.parse(after["/.openclaw/openclaw.json"]).mcp.servers.interop.args[2], "openclaw");
    assert.equal(Object.keys(after).filter((path) => path.includes(".bak-")).length, 2, "config.yaml and .env backed up");

    for (const target of ["hermes", "openclaw"]) {
      const again = await runCli(["integrate", target, "--write", "--home", home.path]);
      assert.doesNotMatch(again.stdout, /^(created|updated) /m);
    }
    assert.deepEqual(snapshot(home.path), after, "the second run leaves the same files");
  } finally {
    home.cleanup();
  }
});

/** KEY=VALUE lines of a .env file. */
function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split("\n").filter((line) => line.includes("=")).map((line) => {
    const at = line.indexOf("=");
    return [line.slice(0, at), line.slice(at + 1)];
  }));
}

test("the .env interop integrate hermes writes lets interop's messages through Hermes's gateway, not strangers", async (t) => {
  const home = tempDir();
  let broker: RunningBroker | undefined;
  let hermes: HermesLikeClient | undefined;
  t.after(async () => {
    await hermes?.stop();
    await broker?.cleanup();
    home.cleanup();
  });
  broker = await startBroker();
  const result = await runCli(["integrate", "hermes", "--write", "--home", home.path, "--url", broker.url]);
  assert.equal(result.code, 0, result.stderr);
  const env = parseEnv(readFileSync(join(home.path, ".hermes", ".env"), "utf8"));

  await publish(broker.url, "openclaw", "hermes", { text: "are the tests green?" });
  hermes = new HermesLikeClient(env);
  hermes.start();
  await waitFor(() => hermes!.received.length + hermes!.refused.length > 0, 10_000, "the message on Hermes's ntfy stream");
  assert.deepEqual(hermes.refused, [], "Hermes answered interop's message with a pairing code");
  assert.deepEqual(hermes.received, ["are the tests green?"]);
  assert.deepEqual(await (await fetch(`${broker.url}/poll?agent=openclaw`)).json(), [], "nothing went back to openclaw");

  // Hermes sees the topic as the user: the allowlist holds only Hermes's own topic, and allows no one else.
  assert.equal(env.NTFY_ALLOWED_USERS, "hermes");
  assert.equal(env.NTFY_ALLOW_ALL_USERS, undefined);
  for (const stranger of ["openclaw", "ntfy", "*", "hermes2"]) assert.equal(hermesAuthorizes(env, stranger), false, stranger);
});

test("interop integrate refuses a broker URL with a user or password (--url or $INTEROP_URL), writing and printing nothing of it", async () => {
  const dir = tempDir();
  try {
    const home = join(dir.path, "home");
    mkdirSync(join(home, ".hermes"), { recursive: true });
    const url = "http://alice:s3cretpw@127.0.0.1:45999";
    for (const [args, env] of [[["--url", url], {}], [[], { INTEROP_URL: url }], [["--url", "http://s3cretpw@127.0.0.1:45999"], {}]] as const) {
      for (const agent of ["hermes", "openclaw"]) {
        const result = await runCli(["integrate", agent, "--write", "--home", home, "--data-dir", join(dir.path, "data"), ...args], { env });
        assert.equal(result.code, 2, result.stderr);
        assert.match(result.stderr, /^error: Invalid (--url|\$INTEROP_URL): "http:\/\/[^"]*\*\*\*@127\.0\.0\.1:45999" has a user or password, .* --token-file FILE; see 'interop integrate --help'\n$/);
        assert.doesNotMatch(result.stdout + result.stderr, /s3cretpw/);
      }
    }
    assert.deepEqual(readdirSync(join(home, ".hermes")), [], "nothing written");
    // A proxy's path prefix that looks like a key (shown as *** in logs) is no credential: taken as given.
    const prefixed = "http://127.0.0.1:45999/interopbrokerproduction";
    const accepted = await runCli(["integrate", "hermes", "--home", home, "--data-dir", join(dir.path, "data"), "--url", prefixed]);
    assert.equal(accepted.code, 0, accepted.stderr);
    assert.match(accepted.stdout, /interopbrokerproduction/);
  } finally {
    dir.cleanup();
  }
});

test("interop integrate refuses to edit a config it cannot parse", async () => {
  const home = tempDir();
  try {
    mkdirSync(join(home.path, ".openclaw"));
    writeFileSync(join(home.path, ".openclaw", "openclaw.json"), "{ // json5 comment\n}");
    const result = await runCli(["integrate", "openclaw", "--write", "--home", home.path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: Cannot edit openclaw\.json \(not plain JSON: .*\); add the snippet by hand\n$/);
    assert.deepEqual(readdirSync(join(home.path, ".openclaw")), ["openclaw.json"], "nothing written");
    const bad = await runCli(["integrate", "claude"]);
    assert.equal(bad.code, 2);
  } finally {
    home.cleanup();
  }
});

test("interop integrate warns of tokens from the --data-dir named when its broker is not running", async (t) => {
  const home = tempDir();
  const data = tempDir();
  t.after(() => {
    home.cleanup();
    data.cleanup();
  });
  const url = `http://127.0.0.1:${await freePort()}`;
  const plain = await runCli(["integrate", "openclaw", "--home", home.path, "--url", url, "--data-dir", data.path]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.doesNotMatch(plain.stderr, /warning/, "no tokens there: nothing to say");
  assert.equal((await runCli(["token", "create", "--agent", "openclaw", "--data-dir", data.path])).code, 0);
  // Red team 58: it printed a listen line without --token-file, and no warning.
  const warned = await runCli(["integrate", "openclaw", "--home", home.path, "--url", url, "--data-dir", data.path]);
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /^warning: the broker's data dir .* \(the broker is not answering\) has tokens: without one openclaw gets 401/);
  // --write makes the agent a token in that data dir: nothing to warn of.
  const written = await runCli(["integrate", "openclaw", "--write", "--home", home.path, "--url", url, "--data-dir", data.path]);
  assert.equal(written.code, 0, written.stderr);
  assert.equal(written.stderr, "");
  const listed = await runCli(["token", "list", "--json", "--data-dir", data.path]);
  assert.equal(JSON.parse(listed.stdout).filter((token: { agent: string }) => token.agent === "openclaw").length, 2);
});

test("interop integrate --token-file puts the broker's URL and the agent's token wherever the agent needs them", async (t) => {
  const home = tempDir();
  const broker = await startBroker();
  t.after(async () => {
    await broker.cleanup();
    home.cleanup();
  });
  const token = (await runCli(["token", "create", "--agent", "hermes", "--data-dir", broker.dataDir])).stdout.trim();
  await waitFor(async () => (await fetch(`${broker.url}/poll?agent=hermes`)).status === 401, 5000, "the token to take effect");
  const tokenFile = join(home.path, "hermes.token");
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });

  // Without the token: the plan is printed, with a warning that it would get 401.
  const warned = await runCli(["integrate", "hermes", "--home", home.path, "--url", broker.url]);
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /^warning: this broker has tokens: without one hermes gets 401; create one \(interop token create --agent hermes > FILE\)/);

  const args = ["integrate", "hermes", "--write", "--home", home.path, "--url", broker.url, "--token-file", tokenFile];
  const written = await runCli(args);
  assert.equal(written.code, 0, written.stderr);
  assert.equal(written.stderr, "");
  assert.ok(!written.stdout.includes(token), "the token is never printed");
  const files = snapshot(home.path);
  const server = parse(files["/.hermes/config.yaml"]).mcp_servers.interop;
  assert.deepEqual(server.args, ["mcp", "--agent", "hermes", "--url", broker.url, "--token-file", tokenFile]);
  const env = parseEnv(files["/.hermes/.env"]);
  assert.equal(env.NTFY_TOKEN, token);
  assert.equal(env.NTFY_SERVER_URL, `${broker.url}/ntfy/@hermes`);
  assert.equal(statSync(join(home.path, ".hermes", ".env")).mode & 0o777, 0o600, "the .env holding the token is the owner's only");
  const skill = files["/.hermes/skills/communication/interop/SKILL.md"];
  const send = /^ {4}(interop send .*--to openclaw .*)$/m.exec(skill)![1];
  assert.equal(send, `interop send --url ${broker.url} --token-file ${tokenFile} --from hermes --to openclaw "the build is green; please deploy"`);
  assert.match(skill, new RegExp(`^ {4}interop poll --url \\S+ --token-file \\S+ --agent hermes$`, "m"));

  // The skill's command works as written: the token lets hermes publish.
  const sent = await runCli([...send.split(" ").slice(1, -6), "from the skill"]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal((await runCli(["integrate", ...args.slice(1)])).stdout.match(/^(created|updated) /m), null, "a second run changes nothing");

  const openclaw = JSON.parse((await runCli(["integrate", "openclaw", "--json", "--home", home.path, "--url", broker.url, "--token-file", tokenFile])).stdout);
  assert.ok(openclaw.then.some((step: string) => step.includes(`listen --agent openclaw --url ${broker.url} --token-file ${tokenFile} --openclaw`)));
  assert.ok(openclaw.then.some((step: string) => step.includes(`service install listen --agent openclaw --url ${broker.url} --token-file ${tokenFile}`)));
  // Each turn ends before the next is pushed: the gateway drops the turns it took when it is killed.
  assert.equal(openclaw.then.filter((step: string) => step.includes("--openclaw-wait --push-token-file")).length, 2);
  // The A2A listener reads the broker as the agent too: without the token it got 401 (found with the real gateway).
  assert.ok(openclaw.then.some((step: string) => step.includes(`listen --agent openclaw --url ${broker.url} --token-file ${tokenFile} --a2a `)));
  // The hooks token's file is the given home's, in every line that names it (it said ~/.openclaw, this user's).
  const hooksToken = join(home.path, ".openclaw", "hooks-token");
  const naming = openclaw.then.filter((step: string) => step.includes("hooks-token"));
  assert.equal(naming.length, 3, naming.join("\n"));
  for (const step of naming) assert.ok(step.includes(hooksToken) && !step.includes("~/"), step);
  assert.ok(naming[0].includes(`chmod 600 ${hooksToken}`), naming[0]);
});
