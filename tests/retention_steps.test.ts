/** Retention in bounded steps: a backlog is deleted a step at a time, the event loop turning between two. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Broker } from "../src/broker/broker.ts";
import { DeliveryMarks } from "../src/broker/delivery_marks.ts";
import { uniform } from "../src/broker/per_agent.ts";
import { applyRetention } from "../src/broker/retention.ts";
import { ScheduledRetention } from "../src/broker/scheduled_retention.ts";
import { type AgentName, parseAgentName } from "../src/message.ts";
import { type ExpiryOptions, type InboxRecord, type MessageStore, RETENTION_BATCH, type RetentionStep } from "../src/store/store.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/broker_options.ts";
import { tempDir } from "./helpers/cli.ts";

const bob = parseAgentName("bob", "agent");

function inbox(deliveredId: number, pending: number): Map<AgentName, InboxRecord> {
  return new Map([[bob, { agent: bob, deliveredId, purgedId: 0, pending, lastSeen: null, deadLetters: 0, expired: 0 }]]);
}

test("retention asks for another step while the store says more is left, with a turn of the event loop between two, and counts each", async () => {
  // It was one transaction: SQLite's prune of 1,000,000 delivered messages held the event loop 1.8 s.
  const inboxes = inbox(10, 6);
  const events: string[] = [];
  const step = (name: string, changed: number[]) => {
    let calls = 0;
    return (...args: unknown[]): Promise<RetentionStep> => {
      const value = changed[calls++];
      events.push(`${name} ${value}`);
      // What arrived meanwhile runs before the next step: a timer set now fires before it is asked for.
      setTimeout(() => events.push("turn"), 0);
      if (name === "expire") events.push(`cursor ${(args[1] as ExpiryOptions).delivered!.get(bob)}`);
      return Promise.resolve({ changed: new Map([[bob, value]]), more: calls < changed.length });
    };
  };
  const store = { prune: step("prune", [3, 6]), expire: step("expire", [2, 2, 1]), passTaken: () => Promise.resolve(new Map()) } as unknown as MessageStore;
  const expired: number[] = [];
  await applyRetention(store, inboxes, new DeliveryMarks(1000, false), {
    retentionMs: 1000,
    pendingTtlMs: uniform(1000),
    onExpired: (_agent, count) => {
      expired.push(count);
      // A stream delivers meanwhile: the next step is told the cursor where it is then.
      inboxes.get(bob)!.deliveredId++;
    },
  }, Date.now());
  assert.deepEqual(events, [
    "expire 2",
    "cursor 10",
    "turn",
    "expire 2",
    "cursor 11",
    "turn",
    "expire 1",
    "cursor 12",
    "prune 3",
    "turn",
    "turn",
    "prune 6",
  ]);
  const record = inboxes.get(bob)!;
  assert.deepEqual({ purgedId: record.purgedId, pending: record.pending, expired: record.expired }, { purgedId: 6, pending: 1, expired: 5 });
  assert.deepEqual(expired, [2, 2, 1]);
});

test("a SQLite backlog larger than a step is deleted in steps of RETENTION_BATCH, every message of it", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  t.after(() => store.close());
  const total = 2 * RETENTION_BATCH + 5;
  for (let done = 0; done < total; done += 5000) {
    const count = Math.min(5000, total - done);
    await store.write({
      messages: Array.from({ length: count }, () => ({ from: bob, to: bob, payload: { text: "old" }, createdAt: 1 })),
      inboxes: [{ agent: bob, create: true }],
    });
  }
  await store.write({ messages: [], inboxes: [{ agent: bob, deliveredId: total }] });
  const inboxes = inbox(total, 0);
  const prune = store.prune.bind(store);
  const steps: number[] = [];
  store.prune = async (...args) => {
    const step = await prune(...args);
    steps.push(step.changed.get(bob) ?? 0);
    return step;
  };
  await applyRetention(store, inboxes, new DeliveryMarks(1000, false), { retentionMs: 1000, pendingTtlMs: uniform(0) }, Date.now());
  assert.deepEqual(steps, [RETENTION_BATCH, 2 * RETENTION_BATCH, total]);
  assert.equal(inboxes.get(bob)!.purgedId, total);
  assert.deepEqual(await store.readAfter(bob, 0, 10), []);
});

test("a retention run asked for while one is under way is that one, not a second over the same rows", async (t) => {
  // A backlog's steps may outlast the interval: a second run would wait on the first's locks or step through its rows.
  const released = Promise.withResolvers<void>();
  let prunes = 0;
  const store = {
    prune: async () => {
      prunes++;
      await released.promise;
      return { changed: new Map(), more: false };
    },
    passTaken: () => Promise.resolve(new Map()),
  } as unknown as MessageStore;
  const retention = new ScheduledRetention({
    options: testBrokerOptions(store, "/nonexistent"),
    inboxes: inbox(0, 0),
    shared: false,
    leased: () => false,
    taking: () => [],
    expired: () => {},
    now: Date.now,
  });
  t.after(() => retention.stop());
  const first = retention.run();
  assert.equal(retention.run(), first);
  released.resolve();
  await first;
  assert.equal(prunes, 1);
  await retention.run();
  assert.equal(prunes, 2, "a run asked for once the first ended is a run of its own");
});

test("a broker starting serves once expiry is over, while the deletion of delivered messages goes on", async (t) => {
  // It waited for both: a backlog of 1,000,000 delivered messages held a restart 0.9 s.
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  const events: string[] = [];
  const released = Promise.withResolvers<void>();
  const prune = store.prune.bind(store);
  store.prune = async (...args) => {
    events.push("prune");
    await released.promise;
    return prune(...args);
  };
  const expire = store.expire.bind(store);
  store.expire = (...args) => {
    events.push("expire");
    return expire(...args);
  };
  const timeout = AbortSignal.timeout(10_000);
  const broker = await Promise.race([
    Broker.open(testBrokerOptions(store, dir.path, { pendingTtlMs: uniform(60_000) })),
    new Promise<never>((_, reject) => timeout.addEventListener("abort", () => reject(new Error("Broker.open waited for the prune")))),
  ]);
  events.push("open");
  released.resolve();
  await broker.close();
  assert.deepEqual(events.filter((event) => event !== "prune"), ["expire", "open"]);
});
