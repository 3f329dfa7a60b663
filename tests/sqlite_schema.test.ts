/** The SQLite store's schema: a data dir of the previous version opens with all it held, and the index lags boundedly. */
import assert from "node:assert/strict";
import { cpSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import type { AgentName } from "../src/message.ts";
import { INDEX_LAG, SqliteStore } from "../src/store/sqlite.ts";
import { DATABASE_FILE } from "../src/store/sqlite_open.ts";
import { tempDir } from "./helpers/cli.ts";

const hermes = "hermes" as AgentName;
const openclaw = "openclaw" as AgentName;

/** Reads the closed store's file directly: what the store's own API does not show. */
function inspect<T>(dataDir: string, sql: string): T {
  const db = new DatabaseSync(join(dataDir, DATABASE_FILE), { readOnly: true });
  try {
    return db.prepare(sql).get() as T;
  } finally {
    db.close();
  }
}

test("SqliteStore opens a schema v1 data dir made by interop 5bd1ace with its messages, inboxes, pending counts and dead letters", async (t) => {
  // tests/fixtures/v1_store was written by 5bd1ace's SqliteStore: messages 1..20 (odd ids to openclaw, even to
  // hermes), 21..23 a broadcast to openclaw, hermes and gone, 24 hermes's reply to 1 with key "k1"; openclaw took
  // 11..15 by a poll, hermes's 20 was withdrawn, openclaw's 17 is a dead letter.
  const dir = tempDir();
  t.after(dir.cleanup);
  cpSync(new URL("./fixtures/v1_store", import.meta.url), dir.path, { recursive: true });
  let store = new SqliteStore(dir.path, "strict");
  t.after(() => store.close());
  assert.equal(await store.lastId(), 24);
  assert.deepEqual(await store.loadInboxes(), [
    { agent: "gone", deliveredId: 0, purgedId: 0, pending: 1, lastSeen: null, deadLetters: 0, expired: 0 },
    { agent: hermes, deliveredId: 2, purgedId: 0, pending: 10, lastSeen: null, deadLetters: 0, expired: 0 },
    { agent: openclaw, deliveredId: 10, purgedId: 0, pending: 3, lastSeen: 5000, deadLetters: 1, expired: 0 },
  ]);
  assert.deepEqual((await store.readAfter(openclaw, 0, 100)).map((envelope) => envelope.id), [1, 3, 5, 7, 9, 17, 19, 21]);
  assert.deepEqual((await store.readLatest(hermes, 3)).map((envelope) => envelope.id), [18, 22, 24]);
  assert.deepEqual(await store.deadLetters(openclaw, 1000), [{ messageId: 17, reason: "410 Gone", parkedAt: 7 }]);
  assert.equal((await store.outcome(20)).withdrawnAt, 77);
  assert.equal((await store.outcome(1)).reply?.id, 24);
  assert.deepEqual((await store.findByKey(openclaw, "k1")).map((envelope) => envelope.payload), [{ answer: 1 }]);
  const [next] = await store.write({ messages: [{ from: hermes, to: openclaw, payload: { n: 25 }, createdAt: 25 }], inboxes: [] });
  assert.equal(next.id, 25);
  assert.deepEqual((await store.readAfter(openclaw, 19, 10)).map((envelope) => envelope.id), [21, 25]);
  // v3's replay points: none in a v1 file, and one can be kept.
  assert.deepEqual(await store.loadReplayPoints(), new Map());
  await store.write({ messages: [], inboxes: [{ agent: hermes, replay: { after: 18 } }] });
  assert.deepEqual(await store.loadReplayPoints(), new Map([[hermes, { after: 18, writes: undefined }]]));
  // Recorded removals: none in a file older than them (gone's inbox was never removed), and one can be recorded.
  assert.equal(await store.wasRemoved("gone" as AgentName), false);
  await store.removeInbox("gone" as AgentName);
  assert.equal(await store.wasRemoved("gone" as AgentName), true);
  // Acknowledgements: the column added to the file's dead letters.
  assert.deepEqual(await store.acknowledgeDeadLetters(openclaw, undefined, 30), { acknowledged: [17], left: 0 });
  await store.close();

  assert.equal(inspect<{ user_version: number }>(dir.path, "PRAGMA user_version").user_version, 4);
  store = new SqliteStore(dir.path, "strict");
  assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === openclaw)!.pending, 4);
  assert.equal((await store.loadInboxes()).find((inbox) => inbox.agent === openclaw)!.deadLetters, 0);
});

test("SqliteStore indexes new messages in bulk, never leaving more than a bounded tail out of the index", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  let store = new SqliteStore(dir.path, "relaxed");
  t.after(() => store.close());
  const written = 2.5 * INDEX_LAG;
  for (let n = 1; n <= written; n++) {
    await store.write({ messages: [{ from: hermes, to: n % 2 ? openclaw : hermes, payload: { n }, createdAt: n }], inboxes: [] });
  }
  await store.close();
  const { tail } = inspect<{ tail: number }>(dir.path, "SELECT count(*) AS tail FROM messages WHERE indexed = 0");
  assert.ok(tail > 0 && tail <= INDEX_LAG, `${tail} messages out of the index`);

  // Opening brings the tail in.
  store = new SqliteStore(dir.path, "relaxed");
  assert.equal((await store.readAfter(openclaw, 0, written)).length, written / 2);
  await store.close();
  assert.equal(inspect<{ tail: number }>(dir.path, "SELECT count(*) AS tail FROM messages WHERE indexed = 0").tail, 0);
});

test("SqliteStore opens a v2 data dir that an older interop served since, which set its version back to 1", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  let store = new SqliteStore(dir.path, "relaxed");
  t.after(() => store.close());
  await store.write({ messages: [{ from: hermes, to: openclaw, payload: { n: 1 }, createdAt: 1 }], inboxes: [{ agent: openclaw }] });
  await store.close();
  // What 5bd1ace's open does to it: its full index back, version 1, and rows inserted without the column.
  const db = new DatabaseSync(join(dir.path, DATABASE_FILE));
  db.exec(`CREATE INDEX messages_by_inbox ON messages (recipient, id); PRAGMA user_version = 1;
    INSERT INTO messages (recipient, sender, created_at, payload) VALUES ('openclaw', 'hermes', 2, '{"n":2}');`);
  db.close();
  store = new SqliteStore(dir.path, "relaxed");
  assert.deepEqual((await store.readAfter(openclaw, 0, 10)).map((envelope) => envelope.payload), [{ n: 1 }, { n: 2 }]);
  await store.close();
  assert.equal(inspect<{ count: number }>(dir.path, "SELECT count(*) AS count FROM sqlite_master WHERE name = 'messages_by_inbox'").count, 0);
});

test("SqliteStore stores a broadcast's payload once, reads it for every copy, and deletes it with the last copy", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  let store = new SqliteStore(dir.path, "relaxed");
  t.after(() => store.close());
  const gone = "gone" as AgentName;
  const text = "x".repeat(4096);
  // As the broker makes a broadcast's copies: one payload object for all.
  const payload = { text };
  const broadcast = [openclaw, hermes, gone].map((to) => ({ from: hermes, to, payload, createdAt: 1, idempotencyKey: "b1" }));
  const single = { from: openclaw, to: hermes, payload: { n: 2 }, createdAt: 2 };
  const [first] = await store.write({ messages: [...broadcast, single], inboxes: [{ agent: openclaw }, { agent: hermes }, { agent: gone }] });
  // Past the index's lag too, so that both the tail's reads and the index's are checked.
  for (let n = 0; n < INDEX_LAG; n++) await store.write({ messages: [{ ...single, payload: { n } }], inboxes: [] });
  await store.close();
  assert.equal(inspect<{ bytes: number }>(dir.path, "SELECT sum(length(payload)) AS bytes FROM messages WHERE id <= 3").bytes, 0);
  assert.equal(inspect<{ count: number }>(dir.path, "SELECT count(*) AS count FROM shared_payloads").count, 1);

  store = new SqliteStore(dir.path, "relaxed");
  for (const [offset, to] of [openclaw, hermes, gone].entries()) {
    assert.deepEqual((await store.find(first.id + offset))?.payload, { text });
    assert.deepEqual((await store.readAfter(to, 0, 1))[0].payload, { text });
  }
  assert.deepEqual((await store.findByKey(hermes, "b1")).map((envelope) => [envelope.to, envelope.payload]), [
    [openclaw, { text }],
    [hermes, { text }],
    [gone, { text }],
  ]);
  assert.deepEqual((await store.readAfter(hermes, first.id + 1, 1))[0].payload, { n: 2 });
  // One copy's recipient removed, another's expired: the payload stays for the copy left.
  await store.removeInbox(gone);
  await store.expire(new Map([[hermes, 2]]));
  assert.deepEqual((await store.readAfter(openclaw, 0, 1))[0].payload, { text });
  assert.equal((await store.find(first.id + 1))?.id, undefined);
  // The last copy pruned once delivered: nothing is left of the payload.
  await store.write({ messages: [], inboxes: [{ agent: openclaw, deliveredId: first.id }] });
  await store.prune(2, new Map([[openclaw, first.id]]));
  assert.equal((await store.find(first.id))?.id, undefined);
  await store.close();
  assert.equal(inspect<{ count: number }>(dir.path, "SELECT count(*) AS count FROM shared_payloads").count, 0);
});

test("SqliteStore refuses a data dir a newer interop's schema wrote, saying so", async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const store = new SqliteStore(dir.path, "relaxed");
  await store.close();
  const db = new DatabaseSync(join(dir.path, DATABASE_FILE));
  db.exec("PRAGMA user_version = 99");
  db.close();
  assert.throws(() => new SqliteStore(dir.path, "relaxed"), /schema is version 99, newer than this interop's \(4\): run a newer interop/);
});
