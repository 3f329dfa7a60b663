/**
 * Tokens of brokers on one PostgreSQL live in the database: made and revoked there with the CLI, no broker
 * needed, they take effect on every broker within about a second, stay on after the last revoke, and a broker that
 * cannot read them refuses (503), never serves as if there were none.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { publish, startBroker, waitFor } from "../helpers/broker.ts";
import { testStops } from "../helpers/clean_up_all.ts";
import { runCli, tempDir } from "../helpers/cli.ts";
import { brokersOnOneDatabase, sharedPostgres, startPostgres } from "../helpers/postgres.ts";
import { openSse } from "../helpers/sse.ts";
import { bearer, createToken, revokeTokens } from "../helpers/tokens.ts";

const cluster = sharedPostgres();

const statusOf = async (url: string, headers: Record<string, string> = {}) => (await fetch(`${url}/poll?agent=hermes&peek=1`, { headers })).status;

test("a token made with interop token create --database-url works on every broker; revoked there, it gets 401 on both and its stream and wait end", async (t) => {
  const stop = testStops(t);
  const server = await cluster(t);
  if (server === undefined) return;
  const { url, brokers: [a, b] } = await brokersOnOneDatabase({ after: stop }, server, 2);
  const hermes = await createToken(url, "hermes");
  const admin = await createToken(url, "admin", { admin: true });
  for (const broker of [a, b]) {
    await waitFor(async () => await statusOf(broker.url) === 401, 5000, "tokens to be on");
    assert.equal(await statusOf(broker.url, bearer(hermes)), 200);
  }
  const stream = await openSse(`${b.url}/subscribe?agent=hermes`, bearer(hermes));
  stop(() => stream.close());
  assert.equal(stream.status, 200);
  const controller = new AbortController();
  stop(() => controller.abort());
  const wait = fetch(`${a.url}/wait?agent=hermes&timeout=600`, { headers: bearer(hermes), signal: controller.signal });
  await waitFor(async () => (await (await fetch(`${a.url}/status`, { headers: bearer(admin) })).json()).agents.hermes?.waiting === 1, 10_000, "the wait");

  let streamEnded = false;
  void stream.ended.then(() => (streamEnded = true));
  let waitEnded: Response | undefined;
  void wait.then((response) => (waitEnded = response), () => {});
  const revoked = await revokeTokens(url, "hermes");
  assert.match(revoked.stdout, /^revoked tok_[0-9a-f]{12} \(hermes\)$/m);
  const started = Date.now();
  await waitFor(() => streamEnded && waitEnded !== undefined, 5000, "the stream on B and the wait on A to end");
  assert.equal(waitEnded!.status, 401, "the wait on A ends");
  assert.equal((await waitEnded!.json()).code, "unauthorized");
  t.diagnostic(`the wait on A and the stream on B ended ${Date.now() - started} ms after the revoke`);
  for (const broker of [a, b]) assert.equal(await statusOf(broker.url, bearer(hermes)), 401);
  assert.equal((await publish(b.url, "openclaw", "hermes", { after: "revoke" }, bearer(admin))).status, 200);
  assert.equal((await fetch(`${a.url}/poll?agent=hermes&peek=1`, { headers: bearer(admin) }).then((r) => r.json())).length, 1, "the wait took nothing");
});

test("tokens stay on for the database after its last token is revoked, on running brokers and a new one", async (t) => {
  const stop = testStops(t);
  const server = await cluster(t);
  if (server === undefined) return;
  const { url, brokers: [a] } = await brokersOnOneDatabase({ after: stop }, server, 1);
  assert.equal(await statusOf(a.url), 200, "no tokens yet");
  // serve's config file names the database for interop token too.
  const config = tempDir();
  stop(() => config.cleanup());
  writeFileSync(join(config.path, "serve.yaml"), `database-url: ${url}\n`);
  const created = await runCli(["token", "create", "--agent", "hermes", "--config", join(config.path, "serve.yaml")]);
  assert.equal(created.code, 0, created.stderr);
  assert.match(created.stderr, new RegExp(`^created tok_[0-9a-f]{12} for hermes in ${url}; it is shown once`));
  await waitFor(async () => await statusOf(a.url) === 401, 5000, "tokens to be on");
  const revoked = await revokeTokens(url, "hermes");
  assert.match(revoked.stderr, /no tokens left: the broker still requires one/);
  const listed = await runCli(["token", "list", "--json", "--database-url", url]);
  assert.deepEqual(JSON.parse(listed.stdout), []);
  assert.equal(await statusOf(a.url), 401);
  const later = await startBroker({ args: ["--database-url", url] });
  stop(() => later.cleanup());
  assert.equal(await statusOf(later.url), 401, "a broker started after the last revoke");
});

test("an admin token made on the database opens the dashboard's feed and metrics on another broker; an agent's does not", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { url, brokers: [, b] } = await brokersOnOneDatabase(t, server, 2);
  const admin = await createToken(url, "ops", { admin: true });
  const hermes = await createToken(url, "hermes");
  // Made last: once B takes it (refused 403, not 401), B read the admin token too. Waiting on the admin token let
  // B answer 401 to hermes's when it read the tokens between the two.
  await waitFor(async () => (await fetch(`${b.url}/metrics`, { headers: bearer(hermes) })).status !== 401, 5000, "B to take the agent's token");
  assert.equal((await fetch(`${b.url}/metrics`, { headers: bearer(hermes) })).status, 403);
  assert.equal((await fetch(`${b.url}/metrics`, { headers: bearer(admin) })).status, 200);
  const feed = await openSse(`${b.url}/events?token=${admin}`);
  t.after(() => feed.close());
  assert.equal(feed.status, 200);
});

test("interop integrate --write --database-url makes the agent's A2A token in the database, and every broker takes it", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { url, brokers: [a] } = await brokersOnOneDatabase(t, server, 1);
  await createToken(url, "admin", { admin: true });
  const home = tempDir();
  t.after(() => home.cleanup());
  mkdirSync(join(home.path, ".openclaw"));
  writeFileSync(join(home.path, ".openclaw", "openclaw.json"), "{}");
  const args = ["integrate", "openclaw", "--write", "--home", home.path, "--database-url", url, "--url", a.url];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const { outboundToken } = JSON.parse(readFileSync(join(home.path, ".openclaw", "openclaw.json"), "utf8")).channels.a2a.peers.hermes;
  assert.match(outboundToken, /^itk_/);
  const listed = JSON.parse((await runCli(["token", "list", "--json", "--database-url", url])).stdout);
  assert.deepEqual(listed.map((token: { agent: string }) => token.agent).sort(), ["admin", "openclaw"]);
  await waitFor(async () => (await fetch(`${a.url}/poll?agent=openclaw&peek=1`, { headers: bearer(outboundToken) })).status === 200, 5000, "the token to work");
  assert.equal((await runCli(args)).code, 0);
  assert.equal(JSON.parse((await runCli(["token", "list", "--json", "--database-url", url])).stdout).length, 2, "no second token");
});

test("a broker on a database without tokens refuses to start when its data dir has tokens.json, rather than serve without them", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const url = await server.createDatabase();
  const data = tempDir();
  t.after(() => data.cleanup());
  await createToken(data.path, "hermes");
  const refused = await runCli(["serve", "--port", "0", "--data-dir", data.path, "--database-url", url]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^error: .*tokens\.json has tokens, but with --database-url the brokers read them from the database, which has none: copy them with 'interop migrate --from /m);
});

test("PostgreSQL stopped: a request with a token gets 503 storage_unavailable, not 401 and not served; back, it is served", async (t) => {
  const server = await startPostgres(t);
  if (server === undefined) return;
  const { url, brokers: [a] } = await brokersOnOneDatabase(t, server, 1);
  const hermes = await createToken(url, "hermes");
  await waitFor(async () => await statusOf(a.url) === 401, 5000, "tokens to be on");
  await server.stop();
  // Tokens read less than a second before the stop may still be used: an unknown token gets 401 until then.
  await waitFor(async () => await statusOf(a.url, bearer("itk_unknown")) === 503, 5000, "the broker to find the tokens unreadable");
  for (const headers of [bearer(hermes), bearer("itk_unknown"), {}]) {
    const response = await fetch(`${a.url}/poll?agent=hermes`, { headers });
    assert.equal(response.status, 503, JSON.stringify(headers));
    assert.equal((await response.json()).code, "storage_unavailable");
    assert.equal(response.headers.get("retry-after"), "1");
  }
  // The public liveness answer, which names nothing, stays.
  assert.deepEqual((await (await fetch(`${a.url}/status`)).json()).ok, true);
  await server.start();
  await waitFor(async () => await statusOf(a.url, bearer(hermes)) === 200, 15_000, "the broker to serve again");
  assert.equal(await statusOf(a.url), 401);
});

test("interop token create on a data dir warns when the broker clients reach reads its tokens from PostgreSQL", async (t) => {
  const server = await cluster(t);
  if (server === undefined) return;
  const { url, brokers: [a] } = await brokersOnOneDatabase(t, server, 1);
  const created = await runCli(["token", "create", "--agent", "hermes", "--data-dir", a.dataDir], { env: { INTEROP_URL: a.url } });
  assert.equal(created.code, 0, created.stderr);
  assert.match(
    created.stderr,
    new RegExp(`^warning: the broker at ${a.url} reads its tokens from PostgreSQL, not from ${a.dataDir}: .*use --database-url ${url}$`, "m"),
  );
  assert.equal(await statusOf(a.url), 200, "the file's token does not turn tokens on for the database");
});
