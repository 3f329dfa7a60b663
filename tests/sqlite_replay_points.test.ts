/** The SQLite store's schema 2: each inbox's replay point, and a data dir of schema 1 opened by this code. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import type { AgentName } from "../src/message.ts";
import { DATABASE_FILE, SqliteStore } from "../src/store/sqlite.ts";
import { tempDir } from "./helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

test("SqliteStore keeps an inbox's replay point across a reopen until an update clears it", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  let store = new SqliteStore(dir.path, "strict");
  t.after(() => store.close());
  await store.write({
    messages: [1, 2, 3].map((n) => ({ from: openclaw, to: hermes, payload: { n }, createdAt: 1000 + n })),
    inboxes: [{ agent: hermes, deliveredId: 3, replayAfter: 1 }, { agent: openclaw, deliveredId: 0 }],
  });
  // An update that says nothing of it (a poll's cursor, a last-seen time) leaves it.
  await store.write({ messages: [], inboxes: [{ agent: hermes, lastSeen: 5000 }] });
  await store.close();
  store = new SqliteStore(dir.path, "strict");
  assert.deepEqual(await store.loadReplayPoints(), new Map([[hermes, 1]]));
  await store.write({ messages: [], inboxes: [{ agent: hermes, replayAfter: null }, { agent: "new" as AgentName, replayAfter: null }] });
  assert.deepEqual(await store.loadReplayPoints(), new Map());
  assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === hermes)?.deliveredId, 3);
});

test("SqliteStore opens a data dir of schema 1 with its messages and cursors, and keeps replay points there", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  // The tables schema 1 created, as the broker before replay points left them.
  const old = new DatabaseSync(join(dir.path, DATABASE_FILE));
  old.exec(`
    CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, sender TEXT NOT NULL,
      created_at INTEGER NOT NULL, payload TEXT NOT NULL, polled INTEGER NOT NULL DEFAULT 0, reply_to INTEGER,
      conversation INTEGER, hops INTEGER, idempotency_key TEXT);
    CREATE TABLE inboxes (agent TEXT PRIMARY KEY, delivered_id INTEGER NOT NULL DEFAULT 0,
      purged_id INTEGER NOT NULL DEFAULT 0, last_seen INTEGER, expired INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE store_identity (singleton INTEGER PRIMARY KEY CHECK (singleton = 1), id TEXT NOT NULL);
    INSERT INTO store_identity VALUES (1, 'made-by-schema-1');
    INSERT INTO messages (recipient, sender, created_at, payload) VALUES ('hermes', 'openclaw', 1, '{"n":1}'), ('hermes', 'openclaw', 2, '{"n":2}');
    INSERT INTO inboxes (agent, delivered_id) VALUES ('hermes', 1);
    PRAGMA user_version = 1;`);
  old.close();

  const store = new SqliteStore(dir.path, "strict");
  t.after(() => store.close());
  assert.equal(store.id, "made-by-schema-1");
  const [inbox] = await store.loadInboxes();
  assert.deepEqual([inbox.agent, inbox.deliveredId, inbox.pending], [hermes, 1, 1]);
  assert.deepEqual(await store.loadReplayPoints(), new Map());
  await store.write({ messages: [], inboxes: [{ agent: hermes, deliveredId: 2, replayAfter: 0 }] });
  assert.deepEqual(await store.loadReplayPoints(), new Map([[hermes, 0]]));
});
