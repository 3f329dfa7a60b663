/** The SQLite store's prepared statements for a commit's writes and an inbox's reads, and why each is shaped so. */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { DELETE_UNUSED_PAYLOADS, SQLITE_MESSAGE_COLUMNS } from "./sqlite_schema.ts";

export class SqliteStatements {
  readonly insert: StatementSync;
  readonly insertCopies: StatementSync;
  readonly insertSharedPayload: StatementSync;
  readonly deleteUnusedPayloadsIn: StatementSync;
  readonly upsertInboxes: StatementSync;
  readonly advanceCursors: StatementSync;
  readonly markPolled: StatementSync;
  readonly readAfter: StatementSync;
  readonly readTailAfter: StatementSync;
  readonly readReplies: StatementSync;
  readonly markTailPolled: StatementSync;
  readonly joinIndex: StatementSync;

  constructor(db: DatabaseSync) {
    this.insert = db.prepare(
      `INSERT INTO messages (sender, created_at, payload, reply_to, conversation, hops, idempotency_key, recipient, indexed)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
    );
    // The statements of a commit that change many rows say `OR FAIL`: with the default (ABORT) SQLite keeps a
    // statement journal, a copy of each page the statement changes, to undo it alone on a constraint error. A commit
    // rolls back whole on any error (`SqliteStore`'s #transaction), so the copy is never used. Measured on the index join (a
    // 1,024-row UPDATE, the journal in memory): 2.2 → 0.95 µs per row on Node, 4.2 → 1.1 on Deno; the broker's core
    // (bench/core.ts) 13.5-13.7 → 10.1-10.3 µs per delivery on Deno, 10.0-10.3 → 9.4-9.8 on Node; the whole server
    // in fan-out to 100 streams (paired runs) 1-2 % less.
    //
    // A broadcast's copies in one statement, the recipients a JSON array, inserted in its order: a statement per
    // copy cost 2 µs (Node) to 4 µs (Deno) each. Their payload is stored once, after them (shared_payloads): a copy
    // each wrote and fsynced it once per recipient, 30-38 µs of CPU per delivery of a 4 KiB message to 100 streams
    // where once costs 9-11 (bench/core.ts --payload-bytes 4096).
    this.insertCopies = db.prepare(
      `INSERT OR FAIL INTO messages (sender, created_at, payload, reply_to, conversation, hops, idempotency_key, recipient, indexed)
       SELECT ?, ?, '', ?, ?, ?, ?, value, 0 FROM json_each(?) ORDER BY key`,
    );
    this.insertSharedPayload = db.prepare("INSERT OR FAIL INTO shared_payloads (first_id, copies, payload) VALUES (?, ?, ?)");
    this.deleteUnusedPayloadsIn = db.prepare(DELETE_UNUSED_PAYLOADS);
    // One statement for a commit's inbox updates (a JSON array of [agent, deliveredId, lastSeen, replayAfter,
    // replayWrites]): a broadcast's stream cursors are one update per recipient, and a statement per row cost 2-4 µs
    // each (named parameters on Deno the most). `WHERE true` is SQLite's way to tell an upsert's ON CONFLICT from a
    // join's. A replay point: null leaves it, -1 clears it (stored as is on a new row: `loadReplayPoints` skips it);
    // its writes (JSON text) go with it.
    this.upsertInboxes = db.prepare(`
      INSERT OR FAIL INTO inboxes (agent, delivered_id, last_seen, replay_after, replay_writes)
        SELECT value ->> 0, coalesce(value ->> 1, 0), value ->> 2, value ->> 3, value ->> 4 FROM json_each(?) WHERE true
      ON CONFLICT (agent) DO UPDATE SET
        delivered_id = max(delivered_id, excluded.delivered_id),
        last_seen = coalesce(excluded.last_seen, last_seen),
        replay_after = iif(excluded.replay_after < 0, NULL, coalesce(excluded.replay_after, replay_after)),
        replay_writes = iif(excluded.replay_after IS NULL, replay_writes, excluded.replay_writes)`);
    // The updates that only move a cursor (a stream's, one per recipient of a broadcast) as a JSON object
    // {agent: deliveredId}: its key and value need no `->>` into a nested array. 100 cursors in one transaction:
    // 128-182 → 69-108 µs of CPU on Node, 170-237 → 80-104 on Deno (a broadcast's commit carries the last one's).
    this.advanceCursors = db.prepare(`
      INSERT OR FAIL INTO inboxes (agent, delivered_id) SELECT key, value FROM json_each(?) WHERE true
      ON CONFLICT (agent) DO UPDATE SET delivered_id = max(delivered_id, excluded.delivered_id)`);
    // Each read by recipient has two parts: the index (`recipient = ? AND indexed = 1`, the partial index's
    // condition word for word) and the tail past the watermark (`id > ?` first: a rowid range).
    this.markPolled = db.prepare(
      "UPDATE OR FAIL messages SET polled = 1 WHERE recipient = ? AND indexed = 1 AND id > ? AND id <= ?",
    );
    this.markTailPolled = db.prepare("UPDATE OR FAIL messages SET polled = 1 WHERE id > ? AND id <= ? AND recipient = ?");
    this.readAfter = db.prepare(`
      SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages
      WHERE recipient = ? AND indexed = 1 AND id > ? AND polled = 0 ORDER BY id LIMIT ?`);
    this.readTailAfter = db.prepare(`
      SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages
      WHERE id > ? AND recipient = ? AND polled = 0 ORDER BY id LIMIT ?`);
    // By messages_by_reply: the replies to one question are few, wherever they are in the inbox.
    this.readReplies = db.prepare(`
      SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages
      WHERE reply_to = ? AND recipient = ? AND id > ? AND polled = 0 ORDER BY id LIMIT ?`);
    this.joinIndex = db.prepare("UPDATE OR FAIL messages SET indexed = 1 WHERE id > ?");
  }
}
