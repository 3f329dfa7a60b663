/** A user and password in the broker URL (`--url`, `$INTEROP_URL`): used, and never printed by any subcommand. */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { freePort, startBroker, waitFor } from "../helpers/broker.ts";
import { collect, runCli, spawnCli, tempDir } from "../helpers/cli.ts";
import { stopListen } from "../helpers/listener.ts";

/** With an @ in it, as a URL parser reads a password up to the last @ before the host. */
const PASSWORD = "S3CRET@pw";
const LEAKS = /S3CRET/;

const withPassword = (url: string) => url.replace("http://", `http://hermes:${PASSWORD}@`);

/** Each subcommand that talks to a broker, run to its end against `url` (given as --url, or as $INTEROP_URL); `down` is none. */
function oneShots(url: string, down: string): Array<{ args: string[]; env?: Record<string, string> }> {
  return [
    { args: ["send", "--from", "openclaw", "--to", "hermes", "--data", '{"n":1}', "--url", url] },
    { args: ["poll", "--agent", "hermes", "--url", url] },
    { args: ["poll", "--agent", "hermes"], env: { INTEROP_URL: url } },
    { args: ["status", "--url", url] },
    { args: ["status", "--json", "--url", url] },
    { args: ["status", "--json", "--url", `${url},${down}`] },
    { args: ["send", "--from", "openclaw", "--to", "hermes", "--data", '{"n":1}', "--url", `${down},${url}`] },
    { args: ["ask", "--from", "openclaw", "--to", "hermes", "--data", '{"q":1}', "--timeout", "1", "--url", url] },
    { args: ["agent", "list", "--url", url] },
    { args: ["agent", "list", "--json", "--url", url] },
  ];
}

/** Runs `listen --verbose` until it has said `said` on stderr, then stops it; its whole output. */
async function listenUntil(url: string, dir: string, said: RegExp): Promise<string> {
  const child = spawnCli(["listen", "--agent", "hermes", "--url", url, "--state", join(dir, "state.json"), "--verbose"]);
  const done = collect(child);
  try {
    let stderr = "";
    child.stderr!.on("data", (chunk: string) => (stderr += chunk));
    await waitFor(() => said.test(stderr), 15_000, `listen to say ${said}`);
  } finally {
    await stopListen(child, "SIGTERM");
  }
  const result = await done;
  return result.stdout + result.stderr;
}

test("a password in the broker URL appears in no output of any subcommand, broker up or down", async (t) => {
  const dir = tempDir();
  const broker = await startBroker({ dataDir: join(dir.path, "data") });
  t.after(async () => {
    await broker.cleanup();
    dir.cleanup();
  });
  const up = withPassword(broker.url);
  const down = withPassword(`http://127.0.0.1:${await freePort()}`);
  for (const [name, url] of [["up", up], ["down", down]]) {
    for (const { args, env } of oneShots(url, down)) {
      const result = await runCli(args, { env });
      const shown = `${name}: interop ${args.join(" ")}: exit ${result.code}\n${result.stdout}${result.stderr}`;
      assert.doesNotMatch(result.stdout + result.stderr, LEAKS, shown);
      // Each one said something about the broker (an answer or why there was none), with the user kept.
      if (name === "down") assert.match(result.stderr + result.stdout, /hermes:\*\*\*@127\.0\.0\.1/, shown);
    }
  }
  // token refuses to change a running broker's data dir while $INTEROP_URL names another broker, naming both.
  const token = await runCli(["token", "create", "--agent", "leo"], { env: { INTEROP_DATA_DIR: broker.dataDir, INTEROP_URL: down } });
  assert.equal(token.code, 2, token.stderr);
  assert.match(token.stderr, /not of \$INTEROP_URL's http:\/\/hermes:\*\*\*@127\.0\.0\.1:\d+/);
  assert.doesNotMatch(token.stdout + token.stderr, LEAKS, token.stderr);

  // token changing a data dir no broker serves compares it with $INTEROP_URL's broker's, asked with the credentials.
  const elsewhere = join(dir.path, "elsewhere");
  const warned = await runCli(["token", "create", "--agent", "leo", "--data-dir", elsewhere], { env: { INTEROP_URL: up } });
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /\nwarning: the broker at http:\/\/hermes:\*\*\*@127\.0\.0\.1:\d+ serves data dir .*, not .*elsewhere/);
  assert.doesNotMatch(warned.stdout + warned.stderr, LEAKS, warned.stderr);

  // Up, the broker was reached through the URL (fetch refuses one with credentials): send stored its message.
  const sent = await runCli(["send", "--from", "openclaw", "--to", "hermes", "--data", '{"n":2}', "--url", up]);
  assert.equal(sent.code, 0, sent.stderr);
  const status = await runCli(["status", "--json", "--url", up]);
  assert.equal(status.code, 0, status.stderr);
  assert.equal(JSON.parse(status.stdout).url, `${broker.url.replace("http://", "http://hermes:***@")}`);

  const listenUp = await listenUntil(up, dir.path, /connected to http:\/\/hermes:\*\*\*@/);
  assert.doesNotMatch(listenUp, LEAKS, listenUp);
  const listenDown = await listenUntil(down, dir.path, /reconnecting in/);
  assert.doesNotMatch(listenDown, LEAKS, listenDown);
  assert.match(listenDown, /Cannot reach the broker at http:\/\/hermes:\*\*\*@127\.0\.0\.1:\d+: ECONNREFUSED/);
});

test("a user alone, a password with a space and a password with a / in the broker URL are hidden in what status prints", async () => {
  const down = `127.0.0.1:${await freePort()}`;
  const cases = [
    [`http://S3CRET@${down}`, `http://***@${down}`],
    [`http://hermes:S3CRET pw@${down}`, `http://hermes:***@${down}`],
    // Not a URL the parser takes (the / ends its host): everything up to the @ is hidden in the usage error.
    [`http://hermes:S3CRET/pw@${down}`, `"http://***@${down}"`],
  ];
  for (const [url, shown] of cases) {
    for (const args of [["status", "--url", url], ["status", "--json", "--url", url]]) {
      const result = await runCli(args);
      const output = result.stdout + result.stderr;
      assert.doesNotMatch(output, LEAKS, output);
      assert.ok(output.includes(shown), output);
    }
  }
});

test("the user and password in the broker URL go as HTTP Basic credentials, not in the request's URL", async (t) => {
  const seen: Array<{ url: string | undefined; authorization: string | undefined }> = [];
  const server = createServer((request, response) => {
    seen.push({ url: request.url, authorization: request.headers.authorization });
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ delivered: true, id: 1, ids: [1], to: ["hermes"], timestamp: new Date().toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const sent = await runCli(["send", "--from", "openclaw", "--to", "hermes", "--data", '{"n":1}', "--url", withPassword(`http://127.0.0.1:${port}`)]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].url, "/broadcast?from=openclaw&to=hermes");
  assert.equal(seen[0].authorization, `Basic ${btoa(`hermes:${PASSWORD}`)}`);
});
