/** The SQLite store's replay points (schema 3): each inbox's, kept across a reopen (a v1 data dir: sqlite_schema.test.ts). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import type { AgentName } from "../src/message.ts";
import { SqliteStore } from "../src/store/sqlite.ts";
import { DATABASE_FILE } from "../src/store/sqlite_open.ts";
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
    inboxes: [{ agent: hermes, deliveredId: 3, replay: { after: 1, writes: [[2, 7000], [3, 8000]] } }, { agent: openclaw, deliveredId: 0 }],
  });
  // An update that says nothing of it (a poll's cursor, a last-seen time) leaves it.
  await store.write({ messages: [], inboxes: [{ agent: hermes, lastSeen: 5000 }] });
  await store.close();
  store = new SqliteStore(dir.path, "strict");
  assert.deepEqual(await store.loadReplayPoints(), new Map([[hermes, { after: 1, writes: [[2, 7000], [3, 8000]] }]]));
  await store.write({ messages: [], inboxes: [{ agent: hermes, replay: null }, { agent: "new" as AgentName, replay: null }] });
  assert.deepEqual(await store.loadReplayPoints(), new Map());
  assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === hermes)?.deliveredId, 3);
});

test("SqliteStore forgets the replay points of a file an older interop served since (it delivered past them)", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  let store = new SqliteStore(dir.path, "strict");
  t.after(() => store.close());
  await store.write({ messages: [{ from: openclaw, to: hermes, payload: {}, createdAt: 1 }], inboxes: [{ agent: hermes, replay: { after: 0 } }] });
  await store.close();
  // What an older interop leaves when it opens the file: its own schema version.
  const older = new DatabaseSync(join(dir.path, DATABASE_FILE));
  older.exec("PRAGMA user_version = 1");
  older.close();
  store = new SqliteStore(dir.path, "strict");
  assert.deepEqual(await store.loadReplayPoints(), new Map());
});

test("SqliteStore keeps a replay point's writes only with that point: moved by an older interop, which leaves them, it is dated at the restart", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  let store = new SqliteStore(dir.path, "strict");
  t.after(() => store.close());
  await store.write({ messages: [], inboxes: [{ agent: hermes, replay: { after: 4, writes: [[5, 7000]] } }] });
  await store.close();
  // An older interop moves the point and knows nothing of the writes (same schema version: it serves the file).
  const older = new DatabaseSync(join(dir.path, DATABASE_FILE));
  older.exec("UPDATE inboxes SET replay_after = 9 WHERE agent = 'hermes'");
  older.close();
  store = new SqliteStore(dir.path, "strict");
  assert.deepEqual(await store.loadReplayPoints(), new Map([[hermes, { after: 9, writes: undefined }]]));
});
