import assert from "node:assert/strict";
import { test } from "node:test";
import { InteropError } from "../src/errors.ts";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { tempDir } from "./helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

test("SqliteStore keeps committed messages and cursors across a reopen", async () => {
  const dir = tempDir();
  try {
    const store = new SqliteStore(dir.path, "strict");
    const stored = await store.write({
      messages: [1, 2, 3].map((n) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: 1000 + n })),
      inboxes: [{ agent: openclaw, deliveredId: 0 }],
    });
    assert.deepEqual(stored.map((envelope) => envelope.id), [1, 2, 3]);
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 1, lastSeen: 5000 }] });
    await store.close();

    const reopened = new SqliteStore(dir.path, "strict");
    assert.equal(await reopened.lastId(), 3);
    assert.deepEqual(await reopened.loadInboxes(), [
      { agent: openclaw, deliveredId: 1, purgedId: 0, pending: 2, lastSeen: 5000, deadLetters: 0, expired: 0 },
    ]);
    const after = await reopened.readAfter(openclaw, 1, 10);
    assert.deepEqual(after.map((envelope) => envelope.payload), [{ n: 2 }, { n: 3 }]);
    assert.equal(after[0].timestamp, new Date(1002).toISOString());
    await reopened.close();
  } finally {
    dir.cleanup();
  }
});

test("SqliteStore refuses a second opener of the same data dir", async () => {
  const dir = tempDir();
  try {
    const first = new SqliteStore(dir.path, "relaxed");
    assert.throws(() => new SqliteStore(dir.path, "relaxed"), (error: unknown) => {
      assert.ok(error instanceof InteropError);
      assert.equal(error.code, "data_dir_locked");
      return true;
    });
    await first.close();
    const next = new SqliteStore(dir.path, "relaxed");
    await next.close();
  } finally {
    dir.cleanup();
  }
});

test("SqliteStore hides polled messages from replays and ids are never reused after pruning", async () => {
  const dir = tempDir();
  try {
    const store = new SqliteStore(dir.path, "relaxed");
    await store.write({
      messages: [1, 2, 3, 4].map((n) => ({ from: hermes, to: openclaw, payload: { n }, createdAt: n })),
      inboxes: [{ agent: openclaw, deliveredId: 0 }],
    });
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 2, polled: { after: 0, upTo: 2 } }] });
    assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.id), [3, 4]);

    const purged = await store.prune(100);
    assert.deepEqual([...purged], [[openclaw, 2]]);
    assert.equal((await store.loadInboxes())[0].purgedId, 2);
    await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: 4 }] });
    await store.prune(100);
    const [next] = await store.write({
      messages: [{ from: hermes, to: openclaw, payload: {}, createdAt: 5 }],
      inboxes: [],
    });
    assert.equal(next.id, 5);
    await store.close();
  } finally {
    dir.cleanup();
  }
});
