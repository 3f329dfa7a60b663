/** The suite's own cleanup: a step that throws does not leave the others undone (else a process outlives its test). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { brokerPool, type RunningBroker } from "./helpers/broker.ts";
import { cleanUpAll } from "./helpers/clean_up_all.ts";

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
