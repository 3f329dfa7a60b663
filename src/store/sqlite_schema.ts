/** The SQLite store's tables, created and migrated in the transaction that opens the file. */
import type { DatabaseSync } from "node:sqlite";

/**
 * 4: a broadcast's payload stored once (`shared_payloads`); its copies' own are ''. An older interop, which reads
 * only the copies', cannot serve a file of this version; this one refuses a newer file.
 */
const SCHEMA_VERSION = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL,
  sender TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  payload TEXT NOT NULL,
  polled INTEGER NOT NULL DEFAULT 0,
  reply_to INTEGER,
  conversation INTEGER,
  hops INTEGER,
  idempotency_key TEXT,
  indexed INTEGER NOT NULL DEFAULT 1
);
-- Only rows up to the watermark (SqliteStore #indexedUpTo): newer ones are inserted with indexed = 0 and joined in bulk.
CREATE INDEX IF NOT EXISTS messages_by_inbox_indexed ON messages (recipient, id) WHERE indexed = 1;
CREATE INDEX IF NOT EXISTS messages_by_key ON messages (sender, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- A broadcast's payload, once for all its copies (consecutive ids from first_id; each copy's own payload is '').
CREATE TABLE IF NOT EXISTS shared_payloads (
  first_id INTEGER PRIMARY KEY,
  copies INTEGER NOT NULL,
  payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inboxes (
  agent TEXT PRIMARY KEY,
  delivered_id INTEGER NOT NULL DEFAULT 0,
  purged_id INTEGER NOT NULL DEFAULT 0,
  last_seen INTEGER,
  expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_reply ON messages (reply_to) WHERE reply_to IS NOT NULL;
-- Messages their sender withdrew before delivery (A2A CancelTask); they are also marked polled, so none is read.
CREATE TABLE IF NOT EXISTS withdrawn (
  message_id INTEGER PRIMARY KEY,
  withdrawn_at INTEGER NOT NULL
);
-- The store's identity, created with it (see MessageStore.id).
CREATE TABLE IF NOT EXISTS store_identity (
  singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
  id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
  agent TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  reason TEXT NOT NULL,
  parked_at INTEGER NOT NULL,
  acknowledged_at INTEGER,
  PRIMARY KEY (agent, message_id)
);
-- Agents whose inbox the operator removed (MessageStore.wasRemoved), until the inbox is created again. A file an
-- older interop opens keeps the table as it is: that interop neither records nor clears a removal.
CREATE TABLE IF NOT EXISTS removed_agents (
  agent TEXT PRIMARY KEY,
  removed_at INTEGER NOT NULL
);
`;

/**
 * A message row's columns as `MessageRow` reads them: a broadcast's copy takes its payload from `shared_payloads`
 * (the last one starting at or before it; NULL, never another's, if that one does not hold it).
 */
export const SQLITE_MESSAGE_COLUMNS = `id, recipient, sender, created_at,
  iif(payload <> '', payload, (SELECT iif(shared.first_id + shared.copies > messages.id, shared.payload, NULL)
    FROM shared_payloads AS shared WHERE shared.first_id <= messages.id ORDER BY shared.first_id DESC LIMIT 1)) AS payload,
  reply_to, conversation, hops`;

/**
 * Deletes the shared payloads no copy is left of among those whose copies may include ids `from`..`upTo` (the range a
 * deletion of messages covered), in its transaction. Bounded by the range: all of them took 37-75 ms with 100k
 * broadcasts kept, at every expiry sweep. Broadcasts' id ranges do not overlap, so theirs end in the order they
 * start: the payload holding `from`, if any, is the last to start at or before it.
 */
export const DELETE_UNUSED_PAYLOADS = `DELETE FROM shared_payloads AS shared
  WHERE first_id <= :upTo AND first_id >= (SELECT coalesce(max(first_id), 0) FROM shared_payloads WHERE first_id <= :from)
    AND NOT EXISTS (SELECT 1 FROM messages WHERE id >= shared.first_id AND id < shared.first_id + shared.copies)`;

/**
 * v1 → v2: the per-recipient index becomes partial, over the rows marked indexed. The column's default marks every
 * existing row without rewriting it (SQLite reads an added column's default), and the new index is built from them.
 * A v2 file an older interop has served since says v1 again but has the column: its rows took the default (1), so
 * the tail the last v2 run left is no longer the newest rows, and one whole scan brings it in.
 */
const MIGRATE_FROM_1 = `DROP INDEX IF EXISTS messages_by_inbox;`;
const REJOIN = `UPDATE messages SET indexed = 1 WHERE indexed = 0;`;
const ADD_INDEXED = `ALTER TABLE messages ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;`;

/**
 * v2 → v3: each inbox's replay point (`InboxUpdate.replayAfter`), so that the resume window survives a restart.
 * Runs inside the opening transaction of a file of schema `version` (0: a new one).
 */
function addReplayPoints(db: DatabaseSync, version: number): void {
  // The times of the writes after the point: an older interop serves the file with the column (it leaves it).
  if (!hasColumn(db, "inboxes", "replay_writes")) db.exec("ALTER TABLE inboxes ADD COLUMN replay_writes TEXT");
  if (!hasColumn(db, "inboxes", "replay_after")) return void db.exec("ALTER TABLE inboxes ADD COLUMN replay_after INTEGER");
  // A file an older interop served since has the column, and points it never moved while its streams delivered
  // past them: restored, they would replay all of that.
  if (version < SCHEMA_VERSION) db.exec("UPDATE inboxes SET replay_after = NULL");
}

/** Whether a table has a column: a file an older interop served since keeps the columns a newer one added. */
export function hasColumn(db: DatabaseSync, table: string, column: string): boolean {
  return db.prepare(`SELECT 1 FROM pragma_table_info('${table}') WHERE name = ?`).get(column) !== undefined;
}

/**
 * Brings a file of any earlier schema (or a new one) to this version; runs inside the opening transaction, so a
 * failure leaves the file as it was.
 */
export function migrate(db: DatabaseSync): void {
  const { user_version: version } = db.prepare("PRAGMA user_version").get() as { user_version: number };
  if (version > SCHEMA_VERSION) {
    throw new Error(`its schema is version ${version}, newer than this interop's (${SCHEMA_VERSION}): run a newer interop`);
  }
  if (version === 1) {
    db.exec(hasColumn(db, "messages", "indexed") ? REJOIN + MIGRATE_FROM_1 : ADD_INDEXED + MIGRATE_FROM_1);
  }
  db.exec(`${SCHEMA}
    INSERT OR IGNORE INTO store_identity (singleton, id) VALUES (1, '${crypto.randomUUID()}');
    PRAGMA user_version = ${SCHEMA_VERSION};`);
  addReplayPoints(db, version);
  // An older interop serves the file with the column (it counts acknowledged letters again): no new version.
  if (!hasColumn(db, "dead_letters", "acknowledged_at")) db.exec("ALTER TABLE dead_letters ADD COLUMN acknowledged_at INTEGER");
  // The tail left un-indexed by the last run joins the index now; it starts after the newest indexed row,
  // which a backward scan of the (short) tail finds.
  const indexed = db.prepare("SELECT id FROM messages WHERE indexed = 1 ORDER BY id DESC LIMIT 1").get() as
    | { id: number }
    | undefined;
  db.prepare("UPDATE messages SET indexed = 1 WHERE id > ?").run(indexed?.id ?? 0);
}
