/**
 * follow() waiting out another reader: the agent missing from /status resumes it, and whether the agent was removed
 * is the broker's to say when the stream opens again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { BrokerClient } from "../src/client/broker_client.ts";
import { follow } from "../src/client/follow.ts";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";

/**
 * A client whose every stream is taken at once by another reader, and whose /status lists no agent; with
 * `removedOnReopen`, the second stream is refused as a broker refuses an agent it recorded as removed.
 */
function takenStreams(storeIds: string[], removedOnReopen = false): { client: BrokerClient; opened: () => number; reopened: Promise<void> } {
  let opened = 0;
  const { promise: reopened, resolve } = Promise.withResolvers<void>();
  const status = { store_id: "", agents: {}, last_id: 0 };
  const client = {
    baseUrl: "http://127.0.0.1:1",
    urls: { next() {} },
    openStream() {
      const store = storeIds[Math.min(opened++, storeIds.length - 1)];
      status.store_id = store;
      if (opened === 2) resolve();
      if (opened === 2 && removedOnReopen) return Promise.reject(new InteropError("agent_removed", "Broker refused (HTTP 410)"));
      return Promise.resolve({ body: new Response("event: replaced\ndata: {}\n\n").body!, store });
    },
    status() {
      return Promise.resolve(status);
    },
  };
  return { client: client as unknown as BrokerClient, opened: () => opened, reopened };
}

function run(client: BrokerClient, agent: string, signal: AbortSignal): Promise<void> {
  const log = { info() {}, warn() {}, debug() {} };
  return follow({
    client,
    agent: agent as AgentName,
    from: { id: 0, store: "one" },
    deliver: () => Promise.resolve(),
    async delivered() {},
    log,
    signal,
  });
}

test("follow() missing an agent named constructor from its own store's /status opens the stream again, and stops when the broker says it was removed", async () => {
  const { client, opened } = takenStreams(["one"], true);
  const signal = AbortSignal.timeout(5000);
  await assert.rejects(run(client, "constructor", signal), (error: InteropError) => error.code === "agent_removed");
  assert.equal(opened(), 2);
});

test("follow() resumes when /status answers from another store than the taken stream's, though the agent is missing", { timeout: 5000 }, async () => {
  const { client, reopened } = takenStreams(["one"]);
  // The broker behind the URL changes store (a restart on a fresh data dir) while the stream is taken.
  const status = client.status.bind(client);
  client.status = async () => ({ ...(await status()), store_id: "two" });
  const stop = new AbortController();
  const running = run(client, "hermes", stop.signal);
  // Rejects instead when follow() stops with agent_removed; the test's timeout ends it if it never opens again.
  await Promise.race([reopened, running]);
  stop.abort();
  await running;
});

test("follow() that the broker refuses as expired even at its cursor asks again after the backoff, not at once", async () => {
  // It asked again as fast as the broker answered, some 200 times a second. Judged by the gaps between the asks, which
  // a loaded machine only lengthens (a count in a fixed window failed when the machine stalled).
  const asked: number[] = [];
  const stop = new AbortController();
  const client = {
    baseUrl: "http://127.0.0.1:1",
    urls: { next() {} },
    // The cursor's position, as /status gives it; each answer a macrotask later, as a real broker's is.
    position: () => new Promise((resolve) => setImmediate(() => resolve({ id: 3, store: "one" }))),
    openStream() {
      asked.push(performance.now());
      if (asked.length === 3) stop.abort();
      return new Promise((_, reject) =>
        setImmediate(() => reject(new InteropError("event_id_expired", "Broker refused (HTTP 410): Event id 3 expired")))
      );
    },
  } as unknown as BrokerClient;
  await run(client, "hermes", AbortSignal.any([stop.signal, AbortSignal.timeout(10_000)]));
  assert.equal(asked.length, 3, "asked three times within 10 s");
  // A retry's first delay is at least 250 ms (`backoffDelay`, its lower half; the cursor read from /status starts the
  // backoff again); a timer may fire a millisecond early.
  for (const [retry, gap] of [asked[1] - asked[0], asked[2] - asked[1]].entries()) {
    assert.ok(gap >= 249, `retry ${retry + 1} asked after ${gap} ms`);
  }
});

test("follow() keeps its saved id when the broker of another store took it as its own (a store migrated there), and disowns it otherwise", async () => {
  // The database's broker after `interop migrate`: another store's identity, the SQLite store's id resumed by.
  const opened = async (resumedAfter: number | undefined) => {
    const saved: Array<{ id: number; store?: string } | undefined> = [];
    const logged: string[] = [];
    const stop = new AbortController();
    const client = {
      baseUrl: "http://127.0.0.1:1",
      urls: { next() {} },
      openStream() {
        // The stream ends once its one message is handled; follow() then stops.
        const body = new Response("id: 8\ndata: {}\n\n").body!;
        return Promise.resolve({ body, store: "database", ...(resumedAfter === undefined ? {} : { resumedAfter }) });
      },
    } as unknown as BrokerClient;
    await follow({
      client,
      agent: "hermes" as AgentName,
      from: { id: 7, store: "sqlite" },
      deliver: () => Promise.resolve(stop.abort()),
      delivered(position) {
        saved.push(position);
        return Promise.resolve();
      },
      log: { info: (message) => logged.push(message), warn() {}, debug() {} },
      signal: stop.signal,
    });
    return { saved, logged };
  };
  const moved = await opened(7);
  assert.deepEqual(moved.saved, [{ id: 8, store: "database" }], "the saved id stood until a message was handled");
  assert.match(moved.logged[0], /resuming after 7$/);
  const other = await opened(undefined);
  assert.deepEqual(other.saved, [undefined, { id: 8, store: "database" }], "another store's id was disowned at once");
  assert.match(other.logged[0], /another store than id 7's, reading what is pending$/);
});
