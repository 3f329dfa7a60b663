import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, publish, startBroker } from "../helpers/broker.ts";
import { runCli, tempDir } from "../helpers/cli.ts";

const version = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;

test("interop --version prints the package version", async () => {
  const result = await runCli(["--version"]);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.slice(0, `interop ${version} (`.length), `interop ${version} (`, result.stdout);
});

test("every subcommand has --help on stdout with exit 0", async () => {
  for (const command of ["serve", "listen", "send", "ask", "poll", "status", "mcp", "integrate"]) {
    const result = await runCli([command, "--help"]);
    assert.equal(result.code, 0, command);
    assert.match(result.stdout, new RegExp(`^interop ${command} — `), command);
    assert.match(result.stdout, /Exit codes:/, command);
  }
  const top = await runCli(["--help"]);
  assert.match(top.stdout, /serve .*\n.*listen/s);
});

test("interop with an unknown command or flag exits 2 with one line on stderr", async () => {
  const unknown = await runCli(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, `error: Unknown command: "frobnicate"; run 'interop --help' for the list\n`);
  const flag = await runCli(["send", "--bogus"]);
  assert.equal(flag.code, 2);
  assert.equal(flag.stderr, "error: Unknown option --bogus for 'interop send'; see 'interop send --help'\n");
  const agent = await runCli(["send", "--from", "Bad/Name", "hi"]);
  assert.equal(agent.code, 2);
  assert.match(agent.stderr, /^error: Invalid agent name in --from: "Bad\/Name"/);
});

test("interop suggests the command or option a typo was meant to be, and says where an option before the command goes", async () => {
  const command = await runCli(["sned", "--from", "hermes", "hi"]);
  assert.equal(command.code, 2);
  assert.equal(command.stderr, `error: Unknown command: "sned" (did you mean 'interop send'?); run 'interop --help' for the list\n`);
  assert.match((await runCli(["help", "stauts"])).stderr, /^error: Unknown command: "stauts" \(did you mean 'interop status'\?\);/);
  const option = await runCli(["send", "--form", "hermes", "hi"]);
  assert.equal(option.code, 2);
  assert.equal(option.stderr, "error: Unknown option --form for 'interop send' (did you mean --from?); see 'interop send --help'\n");
  const before = await runCli(["-v"]);
  assert.equal(before.code, 2);
  assert.equal(
    before.stderr,
    "error: Unknown option -v before the command: options go after it (interop COMMAND -v …); 'interop --version' prints the version, 'interop --help' lists the commands\n",
  );
});

test("interop help --help prints the command list, as interop --help does", async () => {
  const top = await runCli(["--help"]);
  for (const args of [["help", "--help"], ["help", "-h"]]) {
    const result = await runCli(args);
    assert.equal(result.code, 0, args.join(" "));
    assert.equal(result.stdout, top.stdout, args.join(" "));
  }
});

test("interop send --data that is not a JSON object is refused in the command line's terms, before anything is sent", async () => {
  // No broker at this URL: a refusal here comes from the command itself.
  const url = `http://127.0.0.1:${await freePort()}`;
  const json = await runCli(["send", "--url", url, "-f", "hermes", "-t", "openclaw", "--data", "{bad"]);
  assert.equal(json.code, 2);
  assert.match(json.stderr, /^error: Invalid --data: not JSON \(.*\): give a JSON object, like \{"text": "hello"\}; plain text goes as TEXT, without --data; see 'interop send --help'\n$/);
  assert.doesNotMatch(json.stderr, /Content-Type/);
  const array = await runCli(["ask", "--url", url, "-f", "hermes", "-t", "openclaw", "-d", "[1]"]);
  assert.equal(array.code, 2);
  assert.equal(array.stderr, `error: Invalid --data: the JSON must be an object, like {"text": "hello"}; plain text goes as TEXT, without --data; see 'interop ask --help'\n`);
});

test("interop token list with no tokens says where it looked on stderr, and prints nothing on stdout", async (t) => {
  const data = tempDir("interop-tokens-");
  t.after(() => data.cleanup());
  const empty = await runCli(["token", "list", "--data-dir", data.path]);
  assert.equal(empty.code, 0);
  assert.equal(empty.stdout, "");
  assert.equal(empty.stderr, `no tokens in ${join(data.path, "tokens.json")}; 'interop token create --agent NAME' makes one\n`);
  const json = await runCli(["token", "list", "--data-dir", data.path, "--json"]);
  assert.equal(json.stdout, "[]\n");
  assert.equal(json.stderr, "");
});

test("interop send and status exit 3 when the broker is unreachable", async () => {
  // Nothing listens there (not port 9: fetch refuses that one, which is a usage error of its own).
  const url = `http://127.0.0.1:${await freePort()}`;
  const send = await runCli(["send", "--url", url, "--from", "hermes", "hi"]);
  assert.equal(send.code, 3);
  assert.ok(send.stderr.startsWith(`error: Cannot reach the broker at ${url}: `), send.stderr);
  assert.match(send.stderr, /is 'interop serve' running\?\n$/);
  const status = await runCli(["status", "--url", url, "--json"]);
  assert.equal(status.code, 3);
  assert.deepEqual(JSON.parse(status.stdout).reachable, false);
});

test("interop send, poll and status work against a real broker", async () => {
  const broker = await startBroker();
  try {
    const env = { INTEROP_URL: broker.url };
    const sent = await runCli(["send", "--from", "hermes", "--to", "openclaw", "hello", "world"], { env });
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stdout, /^\d+\n$/);
    const piped = await runCli(["send", "--from", "hermes", "--to", "openclaw"], { env, input: "from stdin\n" });
    assert.equal(piped.code, 0, piped.stderr);
    const json = await runCli(["send", "--from", "hermes", "--to", "openclaw", "--json", '{"task":"review","n":3}', "--print-json", "--key", "k1"], { env });
    assert.equal(JSON.parse(json.stdout).delivered, true);
    const retried = await runCli(["send", "--from", "hermes", "--to", "openclaw", "--json", '{"task":"review","n":3}', "--key", "k1"], { env });
    assert.equal(retried.stdout, `${JSON.parse(json.stdout).id}\n`, "a retry with the same --key is not stored twice");

    const status = await runCli(["status", "--json", "--max-pending", "2"], { env });
    assert.equal(status.code, 5, "3 pending is more than 2");
    const report = JSON.parse(status.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(report.problems, ["openclaw has 3 pending messages (more than 2)"]);
    assert.equal(report.pid, broker.pid);

    const polled = await runCli(["poll", "--agent", "openclaw"], { env });
    assert.equal(polled.code, 0);
    const lines = polled.stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.deepEqual(lines.map(({ interop: _, ...payload }) => payload), [
      { text: "hello world" },
      { text: "from stdin" },
      { task: "review", n: 3 },
    ]);
    assert.equal((await runCli(["poll", "--agent", "openclaw"], { env })).stdout, "");

    const healthy = await runCli(["status", "--require", "hermes,openclaw", "--max-pending", "0"], { env });
    assert.equal(healthy.code, 0, healthy.stdout);
    assert.match(healthy.stdout, /AGENT +ONLINE +STREAM +PENDING +DEAD LETTERS +LAST SEEN\nhermes +yes/);
    // For people, relative times; --json keeps the broker's absolute ones.
    assert.match(healthy.stdout, /: pid \d+, up \d+ s(, | \d+ s, )0 open streams,/);
    assert.match(healthy.stdout, /^openclaw +yes +- +0 +0 +\d+ s ago$/m);

    // A message a listener gave up on is a dead letter: shown, and a health check can fail on it.
    const undeliverable = await runCli(["send", "--from", "hermes", "--to", "openclaw", "--json", "undeliverable"], { env });
    const { id } = JSON.parse(undeliverable.stdout);
    const parked = await fetch(`${broker.url}/dead-letters?agent=openclaw`, { method: "POST", body: JSON.stringify({ id, reason: "HTTP 400" }) });
    assert.equal(parked.status, 200, await parked.text());
    const dead = await runCli(["status", "--max-dead-letters", "0"], { env });
    assert.equal(dead.code, 5, dead.stdout);
    assert.match(dead.stdout, /^openclaw +yes +- +\d+ +1 +\d+ s ago$/m);
    assert.match(
      dead.stdout,
      /problem: openclaw has 1 dead letter \(more than 0\): interop agent dead-letters openclaw lists them, interop agent acknowledge openclaw --all clears them/,
    );
    assert.equal((await runCli(["status", "--max-dead-letters", "1"], { env })).code, 0);
    // Seen to, the letter leaves the count: the health check passes again.
    const listed = await runCli(["agent", "dead-letters", "openclaw"], { env });
    assert.match(listed.stdout, new RegExp(`^${id}  parked \\d+ s ago, from hermes\n  reason: HTTP 400\n  message: undeliverable\n$`));
    const acknowledged = await runCli(["agent", "acknowledge", "openclaw", String(id)], { env });
    assert.equal(acknowledged.stdout, "acknowledged 1 dead letter of openclaw; 0 left\n");
    assert.equal((await runCli(["status", "--max-dead-letters", "0"], { env })).code, 0);
    const later = JSON.parse((await runCli(["status", "--json"], { env })).stdout);
    assert.match(later.agents.openclaw.last_seen, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);

    const offline = await runCli(["status", "--require", "hermes,leo"], { env });
    assert.equal(offline.code, 5);
    assert.match(offline.stdout, /problem: leo is unknown to the broker/);

    await publish(broker.url, "hermes", "openclaw", "{not json");
    const refused = await runCli(["send", "--from", "hermes", "--to", "openclaw", "--json", "[1]"], { env });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /must be an object/);
  } finally {
    await broker.cleanup();
  }
});
