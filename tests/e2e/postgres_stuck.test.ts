/**
 * A broker whose PostgreSQL stops answering its connections without closing them (a stopped server, a partition
 * with no reset, a desynced client), while the registry's connection answers all along: each store call is given up
 * at `--store-timeout`, the store counts as unavailable (`/status`, `interop status`) until its connections answer
 * again, and nothing is lost or stored twice. Through a relay (tests/helpers/postgres_relay.ts) that holds the
 * answers of the broker's pool.
 */
import assert from "node:assert/strict";
import { test, type TestContext } from "node:test";
import { brokerPool, publish, type RunningBroker, waitFor } from "../helpers/broker.ts";
import { runCli } from "../helpers/cli.ts";
import { startPostgres } from "../helpers/postgres.ts";
import { type PostgresRelay, startPostgresRelay } from "../helpers/postgres_relay.ts";

/** The broker's pool and LISTEN connections (`brokerConnectionName`), not its registry's ("interop broker registry"). */
const POOL = /application_name\0interop broker [0-9a-f-]{36}\0/;
/** Short, so that the test does not wait 30 s; long enough that no call on a loaded machine takes it. */
const BOUND = "5s";
/** How long a request may take before the test counts it as hung: well past the bound. */
const HUNG_MS = 30_000;

async function setUp(t: TestContext): Promise<{ broker: RunningBroker; relay: PostgresRelay } | undefined> {
  const server = await startPostgres(t);
  if (server === undefined) return undefined;
  const relay = await startPostgresRelay(await server.createDatabase());
  t.after(() => relay.close());
  const broker = await brokerPool(t)({ args: ["--database-url", relay.url, "--store-timeout", BOUND] });
  return { broker, relay };
}

async function storeStatus(url: string): Promise<{ available: boolean; error?: string; oldest_call_seconds?: number }> {
  return (await (await fetch(`${url}/status`, { signal: AbortSignal.timeout(HUNG_MS) })).json()).store;
}

/** `interop status`'s exit code and what it printed. */
async function healthCheck(url: string): Promise<{ code: number | null; output: string }> {
  const result = await runCli(["status", "--url", url]);
  return { code: result.code, output: result.stdout + result.stderr };
}

test("a publish whose COMMIT gets no answer is given up at --store-timeout: the store is unavailable until PostgreSQL answers, the message stored once", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const { broker, relay } = setup;
  assert.equal((await publish(broker.url, "hermes", "openclaw", { n: 1 })).status, 200);

  const marker = `stuck-commit-${crypto.randomUUID()}`;
  relay.holdAfter(POOL, marker, "COMMIT");
  const held = publish(broker.url, "hermes", "openclaw", { n: 2, marker });
  // Awaited below; a test that fails before that must not also leave an unhandled rejection.
  held.catch(() => {});
  await waitFor(async () => !(await storeStatus(broker.url)).available, HUNG_MS, "the store to count as unavailable");
  // Most often the commit's; the broker's own look at the cluster, once a second, may be held a moment before it.
  assert.match((await storeStatus(broker.url)).error!, /no answer to "[^"]+" within 5 s/);
  // The COMMIT reached the server: the registry's connection reads its marker back, and the publisher is told.
  const answered = await held;
  assert.equal(answered.status, 200, await answered.clone().text());

  // The pool still gets no answer: the store stays unavailable, and what comes meanwhile is refused at once.
  const refused = await publish(broker.url, "hermes", "openclaw", { n: 3 });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  const check = await healthCheck(broker.url);
  assert.equal(check.code, 5, check.output);
  assert.match(check.output, /cannot reach its store/);

  relay.release();
  await waitFor(async () => (await storeStatus(broker.url)).available, HUNG_MS, "the store to answer again");
  assert.equal((await publish(broker.url, "hermes", "openclaw", { n: 4 })).status, 200);
  const taken = await (await fetch(`${broker.url}/poll?agent=openclaw`)).json();
  assert.deepEqual(taken.map((message: { n: number }) => message.n), [1, 2, 4], "the held message once, in its place");
  assert.equal((await healthCheck(broker.url)).code, 0);
});

test("a read that gets no answer is given up at --store-timeout with 503, and reads answer once PostgreSQL does", async (t) => {
  const setup = await setUp(t);
  if (setup === undefined) return;
  const { broker, relay } = setup;
  assert.equal((await publish(broker.url, "hermes", "openclaw", { n: 1 })).status, 200);

  relay.hold(POOL);
  const read = await fetch(`${broker.url}/history?agent=openclaw`, { signal: AbortSignal.timeout(HUNG_MS) });
  assert.equal(read.status, 503, await read.clone().text());
  assert.equal(read.headers.get("retry-after"), "1");
  // The broker's own bound, or, when a call held was inside a transaction (a cursor's commit under way), the server
  // ending that session as the bound does (idle_in_transaction_session_timeout, 5 s as BOUND): an outage either way.
  assert.match((await read.json()).error, /no answer to "[^"]+" within 5 s|cannot be reached \(write CONNECTION_CLOSED/);
  // The check that the pool answers again is a call in flight too, each given up at the bound in its turn.
  await waitFor(async () => (await storeStatus(broker.url)).oldest_call_seconds! >= 1, HUNG_MS, "a call in flight for a second");
  const check = await healthCheck(broker.url);
  assert.equal(check.code, 5, check.output);
  // Said between two of those checks (each cut at the bound) only: looked for until one is seen.
  await waitFor(async () => /, oldest store call waiting \d+ s\n/.test((await healthCheck(broker.url)).output), HUNG_MS, "interop status to show the call waiting");

  relay.release();
  await waitFor(async () => (await storeStatus(broker.url)).available, HUNG_MS, "the store to answer again");
  const history = await fetch(`${broker.url}/history?agent=openclaw`);
  assert.equal(history.status, 200);
  assert.deepEqual((await history.json()).map((message: { n: number }) => message.n), [1]);
});
