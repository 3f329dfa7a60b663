/** The suite's own cleanup: a step that throws leaves nothing running, and a test file always ends. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { type TestContext, test } from "node:test";
import { serverProcesses } from "../bench/postgres_cluster.ts";
import { brokerPool, type RunningBroker } from "./helpers/broker.ts";
import { cleanUpAll, testStops } from "./helpers/clean_up_all.ts";
import { collect, tempDir } from "./helpers/cli.ts";
import { startPostgres } from "./helpers/postgres.ts";

const LEFT_RUNNING = join(import.meta.dirname!, "fixtures", "left_running.ts");

test("cleanUpAll() runs every step in order after one throws, then throws that step's error", async () => {
  const ran: string[] = [];
  await assert.rejects(
    cleanUpAll(
      () => void ran.push("first"),
      () => {
        ran.push("second");
        throw new Error("a token appeared in the broker's log");
      },
      undefined,
      async () => void ran.push("third"),
    ),
    /a token appeared in the broker's log/,
  );
  assert.deepEqual(ran, ["first", "second", "third"]);
});

test("cleanUpAll() throws every error when several steps throw", async () => {
  await assert.rejects(cleanUpAll(() => Promise.reject(new Error("one")), () => {
    throw new Error("two");
  }), (error: AggregateError) => {
    assert.deepEqual(error.errors.map((each: Error) => each.message), ["one", "two"]);
    return true;
  });
});

test("brokerPool() stops every broker it started when the first one's cleanup throws", async (t) => {
  const hooks: (() => Promise<void>)[] = [];
  const start = brokerPool({ after: (fn) => hooks.push(fn) });
  const started: RunningBroker[] = [];
  // Whatever the pool does, this test leaves nothing running.
  t.after(() => cleanUpAll(...started.map((broker) => () => broker.stop("SIGKILL"))));
  for (let n = 0; n < 2; n++) started.push(await start());
  const [first, second] = started;
  const cleanup = first.cleanup;
  // As when a token appears in its log: stopped, then the check throws.
  first.cleanup = async () => {
    await cleanup();
    throw new Error("a token appeared in the broker's log");
  };
  assert.equal(hooks.length, 1);
  await assert.rejects(hooks[0](), /a token appeared in the broker's log/);
  assert.notEqual(second.child.exitCode ?? second.child.signalCode, null, "the second broker is still running");
});

test("testStops() registers one hook before anything starts, and runs every stop newest first after one throws", async () => {
  const hooks: (() => Promise<void>)[] = [];
  const stop = testStops({ after: (fn) => hooks.push(fn) });
  assert.equal(hooks.length, 1, "registered at once");
  const ran: string[] = [];
  stop(() => void ran.push("data dir"));
  stop(() => {
    ran.push("broker");
    throw new Error("a token appeared in the broker's log");
  });
  stop(async () => void ran.push("listen"));
  assert.equal(hooks.length, 1, "still one hook");
  await assert.rejects(hooks[0](), /a token appeared in the broker's log/);
  assert.deepEqual(ran, ["listen", "broker", "data dir"]);
});

test("testStops() called again for the same test adds to its one hook: a helper's stops and the test's run newest first, all after one throws", async () => {
  const hooks: (() => Promise<void>)[] = [];
  const t = { after: (fn: () => Promise<void>) => void hooks.push(fn) };
  const ran: string[] = [];
  // As startPostgres, brokerPool and the test itself each ask for the test's stops.
  testStops(t)(() => {
    ran.push("postgres");
    throw new Error("PostgreSQL in /tmp/x to exit: timed out");
  });
  testStops(t)(() => {
    ran.push("broker");
    throw new Error("a token appeared in the broker's log");
  });
  testStops(t)(() => void ran.push("listen"));
  assert.equal(hooks.length, 1, "one hook for the test");
  await assert.rejects(hooks[0](), (error: AggregateError) => error.errors.length === 2);
  assert.deepEqual(ran, ["listen", "broker", "postgres"]);
});

test("startPostgres() stops its server after the brokers started on it, and even when a broker's cleanup throws", async (t) => {
  const hooks: (() => Promise<void>)[] = [];
  // The test's hooks as Node and Deno run them: in the order added, none after one that throws.
  const runHooks = async () => {
    for (const hook of hooks) await hook();
  };
  const helperT = { after: (fn: () => Promise<void>) => void hooks.push(fn), skip: (why: string) => t.skip(why) } as unknown as TestContext;
  // Whatever the helpers do, this test leaves nothing running: every hook, each once more (stops that ran are no-ops).
  t.after(() => cleanUpAll(...hooks.map((hook) => hook)));
  const server = await startPostgres(helperT);
  if (server === undefined) return;
  const running = await brokerPool(helperT)({ args: ["--database-url", await server.createDatabase()] });
  const cleanup = running.cleanup;
  let postgresUpAtBrokerStop: boolean | undefined;
  let thrown = false;
  // As when a token appears in its log: stopped, then the check throws (once: the backstop runs it again).
  running.cleanup = async () => {
    postgresUpAtBrokerStop ??= serverProcesses(server.dataDir).length > 0;
    await cleanup();
    if (thrown) return;
    thrown = true;
    throw new Error("a token appeared in the broker's log");
  };
  await assert.rejects(runHooks(), /a token appeared in the broker's log/);
  assert.equal(postgresUpAtBrokerStop, true, "the broker was stopped after its PostgreSQL");
  assert.notEqual(running.child.exitCode ?? running.child.signalCode, null, "the broker is still running");
  assert.deepEqual(serverProcesses(server.dataDir), [], "PostgreSQL is still running");
});

test("a test file whose test never stopped its broker still ends: the broker is killed after its last test, and named", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  // The fixture runs as a test file on this runtime; a broker left running would keep a Node run from ever ending.
  const args = "Deno" in globalThis ? ["test", "-A", LEFT_RUNNING] : ["--test", LEFT_RUNNING];
  // Without NODE_TEST_CONTEXT, which `node --test` sets for its files: the fixture reports on its own.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const child = spawn(process.execPath, args, { env: { ...env, INTEROP_DATA_DIR: dir.path }, stdio: ["ignore", "pipe", "pipe"] });
  const run = await collect(child, 120_000);
  assert.equal(run.code, 1, "the hook's error fails the run");
  assert.match(run.stdout + run.stderr, /warning: a test left pid \d+ running \(interop serve --port 0 --data-dir \S+\); killed/);
});
