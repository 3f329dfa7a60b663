/** Errors that are true: each refusal says what actually happened, at once, and what to do. */
import assert from "node:assert/strict";
import { existsSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { collect, runCli, spawnCli, tempDir } from "../helpers/cli.ts";

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One `error:` line, no stack trace. */
function oneLine(stderr: string): void {
  assert.match(stderr, /^error: [^\n]+\n$/, stderr);
  assert.doesNotMatch(stderr, /\n\s+at /);
}

test("serve on a port held by a broker with tokens says what is known, never 'undefined'", async () => {
  const first = await startBroker();
  const otherDir = tempDir();
  try {
    const token = await runCli(["token", "create", "--agent", "hermes", "--data-dir", first.dataDir]);
    assert.equal(token.code, 0, token.stderr);
    // The broker reads its tokens within a second; from then on its bare /status hides the details.
    await waitFor(async () => (await (await fetch(`${first.url}/status`)).json()).pid === undefined, 5000, "tokens to take effect");
    const second = await runCli(["serve", "--port", String(first.port), "--data-dir", otherDir.path], { timeoutMs: 15_000 });
    assert.equal(second.code, 6);
    oneLine(second.stderr);
    assert.doesNotMatch(second.stderr, /undefined/);
    assert.equal(
      second.stderr,
      `error: An interop broker is already running on 127.0.0.1:${first.port} (it has tokens: its pid, version and data dir show ` +
        `with one: interop status --url http://127.0.0.1:${first.port} --token-file FILE); use it, or stop it first (a broker on another --port with a data dir of its own has inboxes of its own)\n`,
    );
  } finally {
    await first.cleanup();
    otherDir.cleanup();
  }
});

test("token create names the file it wrote and warns when the broker here serves another data dir", async () => {
  const broker = await startBroker();
  const state = tempDir();
  try {
    const env = { XDG_STATE_HOME: state.path, INTEROP_DATA_DIR: "", INTEROP_URL: broker.url, INTEROP_TOKEN: "" };
    const wrote = join(state.path, "interop", "tokens.json");
    const elsewhere = await runCli(["token", "create", "--agent", "hermes"], { env });
    assert.equal(elsewhere.code, 0, elsewhere.stderr);
    assert.match(elsewhere.stdout, /^itk_\S+\n$/);
    assert.ok(existsSync(wrote));
    assert.match(elsewhere.stderr, new RegExp(`^created \\S+ for hermes in ${wrote}; it is shown once, keep it safe:\n`));
    assert.match(
      elsewhere.stderr,
      new RegExp(`\nwarning: the broker at ${broker.url} serves data dir ${broker.dataDir}, not ${join(state.path, "interop")}: ` +
        `tokens changed here do not reach it; use --data-dir ${broker.dataDir}\n$`),
    );

    // Once the broker has tokens its bare /status hides its data dir: the warning says what it can.
    const there = await runCli(["token", "create", "--agent", "openclaw", "--data-dir", broker.dataDir], { env });
    assert.equal(there.code, 0, there.stderr);
    assert.doesNotMatch(there.stderr, /warning/, "the broker serves that data dir: no warning");
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).pid === undefined, 5000, "tokens to take effect");
    const hidden = await runCli(["token", "create", "--agent", "hermes"], { env });
    assert.equal(hidden.code, 0, hidden.stderr);
    assert.match(hidden.stderr, new RegExp(`\nwarning: no broker serves ${join(state.path, "interop")}, and the broker at ${broker.url} hides its data dir`));
  } finally {
    await broker.cleanup();
    state.cleanup();
  }
});

test("Ctrl-C during ask says it was interrupted and exits 130, and the broker stops waiting", async () => {
  const broker = await startBroker();
  try {
    const asking = spawnCli(["ask", "--url", broker.url, "--from", "hermes", "--to", "openclaw", "--timeout", "2m", "still there?"]);
    const done = collect(asking, 20_000);
    try {
      await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.hermes.waiting === 1, 10_000, "the ask to wait");
    } finally {
      if (asking.exitCode === null && asking.signalCode === null) process.kill(asking.pid!, "SIGINT");
    }
    const result = await done;
    assert.equal(result.code, 130);
    assert.equal(result.stderr, "error: Interrupted while waiting for openclaw's reply; a reply that comes later lands in hermes's inbox\n");
    await waitFor(async () => (await (await fetch(`${broker.url}/status`)).json()).agents.hermes.waiting === 0, 5000, "the broker to stop waiting");
  } finally {
    await broker.cleanup();
  }
});

test("ask --timeout takes units: 1500ms gives up after 1.5 s with exit 7", async () => {
  const broker = await startBroker();
  try {
    const result = await runCli(["ask", "--url", broker.url, "--from", "hermes", "--to", "openclaw", "--timeout", "1500ms", "anyone?"]);
    assert.equal(result.code, 7, result.stderr);
    assert.match(result.stderr, /^error: No reply from openclaw to message \d+ within 1\.5 s/);
  } finally {
    await broker.cleanup();
  }
});

test("send refuses empty or blank input from stdin, TEXT or --data alike, and sends nothing", async () => {
  const broker = await startBroker();
  try {
    const env = { INTEROP_URL: broker.url };
    const empties = [[[], ""], [[], " \n\t\n"], [[""], ""], [["  "], ""], [["-d", "{}"], ""], [["-d", '{"text":" "}'], ""]] as const;
    for (const [args, input] of empties) {
      const result = await runCli(["send", "--from", "hermes", "--to", "openclaw", ...args], { env, input });
      assert.equal(result.code, 2, `args ${JSON.stringify(args)}, stdin ${JSON.stringify(input)}: ${result.stderr}`);
      oneLine(result.stderr);
      assert.match(result.stderr, /^error: Nothing to send: /);
    }
    assert.equal((await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.pending, 0);
  } finally {
    await broker.cleanup();
  }
});

test("send refuses a --key no header can carry (a line break, a character past Latin-1, 201 characters) as a usage error, not as an answer lost", async () => {
  // Nothing listens: the key is refused before any connection. It was 'No answer ... it may have been done; send it
  // again with --key' and the same key, exit 11, for a request that never went out.
  const url = `http://127.0.0.1:${await closedPort()}`;
  for (const key of ["k\nbroadcast", "cl\u00e9\u20ac", "x".repeat(201)]) {
    const result = await runCli(["send", "-u", url, "-f", "hermes", "-t", "openclaw", "--key", key, "hi"]);
    assert.equal(result.code, 2, `--key ${JSON.stringify(key)}: ${result.stderr}`);
    oneLine(result.stderr);
    assert.match(result.stderr, /^error: Invalid --key: .*; use 1-200 printable ASCII characters/);
  }
});

test("listen fails at once on an --out it cannot write and on --idle-timeout 0", async () => {
  const broker = await startBroker();
  const dir = tempDir();
  try {
    await publish(broker.url, "hermes", "openclaw", { text: "waiting for a listener" });
    const common = ["listen", "--url", broker.url, "--agent", "openclaw", "--state", join(dir.path, "state.json")];
    const out = await runCli([...common, "--out", "/no/such/dir/x.jsonl"], { timeoutMs: 10_000 });
    assert.equal(out.code, 2);
    oneLine(out.stderr);
    assert.equal(out.stderr, "error: Cannot append to --out /no/such/dir/x.jsonl: its folder /no/such/dir does not exist; create it first (mkdir -p /no/such/dir)\n");
    const idle = await runCli([...common, "--idle-timeout", "0"], { timeoutMs: 10_000 });
    assert.equal(idle.code, 2);
    assert.equal(idle.stderr, `error: Invalid --idle-timeout: "0"; use at least 1s; see 'interop listen --help'\n`);
    assert.equal((await (await fetch(`${broker.url}/status`)).json()).agents.openclaw.pending, 1, "nothing was taken");
  } finally {
    await broker.cleanup();
    dir.cleanup();
  }
});

test("serve and token create refuse a data dir they cannot create in one line (exit 1) instead of spinning", async () => {
  const dir = tempDir();
  try {
    symlinkSync(join(dir.path, "gone"), join(dir.path, "dangling"));
    const unusable = [join(dir.path, "dangling", "data"), ...(existsSync("/proc/self") ? ["/proc/interop-test"] : [])];
    for (const dataDir of unusable) {
      for (const args of [["serve", "--port", "0", "--data-dir", dataDir], ["token", "create", "--agent", "hermes", "--data-dir", dataDir]]) {
        const result = await runCli(args, { timeoutMs: 10_000 });
        assert.equal(result.code, 1, `${args.join(" ")}: ${result.stderr}`);
        oneLine(result.stderr);
        assert.match(result.stderr, new RegExp(`^error: Cannot create data dir ${dataDir}: ENOENT`));
      }
    }
  } finally {
    dir.cleanup();
  }
});

test("a broker that refuses the connection gets the same one-line error on every runtime", async () => {
  const port = await closedPort();
  const result = await runCli(["send", "--url", `http://127.0.0.1:${port}`, "--from", "hermes", "--to", "openclaw", "hi"]);
  assert.equal(result.code, 3);
  assert.equal(result.stderr, `error: Cannot reach the broker at http://127.0.0.1:${port}: ECONNREFUSED; is 'interop serve' running?\n`);
});

test("--url takes HOST:PORT without a scheme, and refuses what is not a broker URL", async () => {
  const broker = await startBroker();
  try {
    const sent = await runCli(["send", "--url", `127.0.0.1:${broker.port}`, "--from", "hermes", "--to", "openclaw", "no scheme"]);
    assert.equal(sent.code, 0, sent.stderr);
    const polled = await runCli(["poll", "-u", `localhost:${broker.port}`, "-a", "openclaw"]);
    assert.equal(JSON.parse(polled.stdout).text, "no scheme");
    for (const url of ["ftp://127.0.0.1:1", "http://", "127.0.0.1:18900,", "127.0.0.1:18900,ftp://x"]) {
      const bad = await runCli(["status", "--url", url]);
      assert.equal(bad.code, 2);
      assert.equal(
        bad.stderr,
        `error: Invalid --url: ${JSON.stringify(url)}; use http://HOST:PORT or HOST:PORT (several: comma-separated, A,B); see 'interop status --help'\n`,
      );
    }
    const badEnv = await runCli(["status"], { env: { INTEROP_URL: "ftp://x" } });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /^error: Invalid \$INTEROP_URL: "ftp:\/\/x"/);
  } finally {
    await broker.cleanup();
  }
});

test("short flags, --data for the body and --json for JSON output; the old --json BODY and --print-json still work", async () => {
  const broker = await startBroker();
  try {
    const sent = await runCli(["send", "-u", broker.url, "-f", "hermes", "-t", "openclaw", "-d", '{"n":1}', "-j"]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(JSON.parse(sent.stdout).to, ["openclaw"]);
    const legacy = await runCli(["send", "-u", broker.url, "-f", "hermes", "-t", "openclaw", "--json", '{"n":2}', "--print-json"]);
    assert.equal(legacy.code, 0, legacy.stderr);
    assert.equal(JSON.parse(legacy.stdout).delivered, true);
    const text = await runCli(["send", "-u", broker.url, "-f", "hermes", "-t", "openclaw", "--json", "plain words"]);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(JSON.parse(text.stdout).delivered, true, "--json before a TEXT prints JSON");
    const polled = await runCli(["poll", "-u", broker.url, "-a", "openclaw", "-j"]);
    assert.deepEqual(polled.stdout.trimEnd().split("\n").map((line) => JSON.parse(line)).map(({ interop: _, ...rest }) => rest), [
      { n: 1 },
      { n: 2 },
      { text: "plain words" },
    ]);
    const status = await runCli(["status", "-u", broker.url, "-j"]);
    assert.equal(JSON.parse(status.stdout).ok, true);
  } finally {
    await broker.cleanup();
  }
});

test("listen, service install listen and integrate refuse a push URL that is not http(s), which listen retried for ever", async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const home = tempDir();
  try {
    const cases: Array<[string[], Record<string, string>, string]> = [
      [["listen", "-a", "hermes", "--url", url, "--post", "notaurl"], {}, `--post needs the http(s) URL to post each message to, not "notaurl"`],
      [["listen", "-a", "hermes", "--url", url, "--openclaw", "ftp://gateway"], { OPENCLAW_HOOKS_TOKEN: "t" }, `--openclaw needs the http(s) URL of the OpenClaw gateway, not "ftp://gateway"`],
      [["listen", "-a", "hermes", "--url", url, "--hermes-webhook", "webhook"], { HERMES_WEBHOOK_SECRET: "s" }, `--hermes-webhook needs the http(s) URL of the Hermes webhook route, not "webhook"`],
      [["listen", "-a", "hermes", "--url", url], { INTEROP_POST_URL: "notaurl" }, `$INTEROP_POST_URL needs the http(s) URL to post each message to, not "notaurl"`],
      [["service", "install", "--dry-run", "listen", "-a", "openclaw", "--post", "notaurl"], {}, `--post needs the http(s) URL to post each message to, not "notaurl"`],
      [["integrate", "openclaw", "--gateway", "notaurl", "--home", home.path, "--url", url], {}, `--gateway needs the http(s) URL of the OpenClaw gateway, not "notaurl"`],
    ];
    for (const [args, env, message] of cases) {
      const result = await runCli(args, { env, timeoutMs: 10_000 });
      assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
      oneLine(result.stderr);
      assert.ok(result.stderr.startsWith(`error: ${message}; see 'interop ${args[0]} --help'`), result.stderr);
    }
  } finally {
    home.cleanup();
  }
});

// Red team 55: a mistyped --from was exit 1, as a failed copy is; nothing was read or written.
test("migrate --from a directory without an interop store is a usage error (exit 2), before any database is reached", async () => {
  const dir = tempDir();
  try {
    const result = await runCli(["migrate", "--from", dir.path, "--to", `postgres://interop@127.0.0.1:${await closedPort()}/interop`]);
    assert.equal(result.code, 2, result.stderr);
    oneLine(result.stderr);
    assert.match(result.stderr, new RegExp(`^error: No interop store in ${dir.path} \\(${dir.path}/interop\\.db does not exist\\)`));
  } finally {
    dir.cleanup();
  }
});
