/** The SQLite store (`node:sqlite`, WAL), which also locks the data dir against a second broker. */
import type { DatabaseSync } from "node:sqlite";
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope, Payload } from "../message.ts";
import { type InboxRow, type MessageRow, storedPayload, toEnvelope, toInboxRecord } from "./message_row.ts";
import { openDatabase } from "./sqlite_open.ts";
import { SQLITE_MESSAGE_COLUMNS } from "./sqlite_schema.ts";
import { SqliteStatements } from "./sqlite_statements.ts";
import {
  cutShort,
  type DeadLetter,
  type Durability,
  type ExpiryOptions,
  type InboxRecord,
  type InboxUpdate,
  type MessageOutcome,
  type MessageStore,
  type NewMessage,
  type Parties,
  RETENTION_BATCH,
  type ReplayPoint,
  type RetentionStep,
  storageFull,
  type WriteBatch,
} from "./store.ts";
import { BoundedRows, payloadChars } from "./sqlite_bounded_rows.ts";
import { DEAD_LETTER_COUNT, insertDeadLetter, markDeadLettersAcknowledged, readDeadLetters } from "./sqlite_dead_letters.ts";
import { expireUndelivered, IdRange, passTaken, pruneDelivered } from "./sqlite_retention.ts";
import { FilePresence } from "./file_presence.ts";
import { WriteHealth } from "./write_health.ts";

/**
 * How many messages may wait past the watermark before a commit indexes them. A row joins the per-recipient index
 * (`indexed = 1`) in bulk, not at its insert: a broadcast to 100 agents wrote ~65 index leaves per commit (one per
 * recipient's tail), 5-10× the pages of the messages themselves. Reads scan the un-indexed tail by rowid, so this
 * bounds that scan (~60 µs for 1,000 rows, ~230 for 4,000). A join writes about one index leaf per recipient in the
 * tail whatever its length: with a broadcast to 100 agents, a join of 1,024 rows wrote 108-142 WAL frames where a
 * commit's own rows write 4-7, two thirds of the store's page writes (and their checksums, fsync and checkpoints).
 * 4,096 rows per join: the broker's core (bench/core.ts, paired) 11.2-16.0 → 10.7-13.6 µs per delivery.
 */
export const INDEX_LAG = 4096;

export class SqliteStore implements MessageStore {
  readonly kind = "sqlite";
  readonly location: string;
  /** A local file is never unreachable: its failures are `storage_failed` or `storage_full` (see `failingWrites`). */
  readonly outage = undefined;
  readonly id: string;
  #durability: Durability;
  #db: DatabaseSync;
  #writes: WriteHealth;
  /** Whether the database file is still at its path (`#refuseIfGone`). */
  #file: FilePresence;
  /** The prepared statements of its commits and inbox reads. */
  #sql: SqliteStatements;
  /** Every message up to this id is in the per-recipient index; those after it are the tail, read by rowid. */
  #indexedUpTo = 0;
  /** The watermark a running transaction moves to, kept only if it commits. */
  #joinedUpTo: number | undefined;
  /**
   * Each recipient's newest committed message in the tail, so that a read of an inbox with nothing there (an empty
   * poll) skips the tail's scan: 60-230 µs for 1,000-4,000 rows, against 8 µs for the whole read through an index.
   */
  #tailNewest = new Map<AgentName, number>();

  /**
   * Opens (creating if needed) the store in `dataDir`; throws `data_dir_locked` if another broker has it. `warn`
   * hears of a database file left readable by other users that could not be made private, and of writes that
   * start failing (a full disk) and succeed again.
   */
  constructor(dataDir: string, durability: Durability, warn: (message: string) => void = () => {}) {
    this.#durability = durability;
    this.#writes = new WriteHealth(warn);
    const opened = openDatabase(dataDir, durability, warn);
    this.#db = opened.db;
    this.location = opened.location;
    this.id = opened.id;
    this.#file = new FilePresence(this.location);
    this.#indexedUpTo = opened.lastId;
    this.#sql = new SqliteStatements(this.#db);
  }

  get failingWrites(): string | undefined {
    return this.#writes.failure;
  }

  loadInboxes(): Promise<InboxRecord[]> {
    return this.#attempt("read inboxes", () => {
      const rows = this.#db.prepare(`
        SELECT agent, delivered_id, purged_id, last_seen, expired,
          (SELECT count(*) FROM messages WHERE recipient = agent AND indexed = 1 AND id > delivered_id AND polled = 0) +
          (SELECT count(*) FROM messages WHERE id > max(delivered_id, ?) AND recipient = agent AND polled = 0) AS pending,
          ${DEAD_LETTER_COUNT} AS dead_letters
        FROM inboxes ORDER BY agent`).all(this.#indexedUpTo) as unknown as InboxRow[];
      return rows.map(toInboxRecord);
    });
  }

  loadReplayPoints(): Promise<Map<AgentName, ReplayPoint>> {
    return this.#attempt("read replay points", () => {
      const rows = this.#db.prepare("SELECT agent, replay_after, replay_writes FROM inboxes WHERE replay_after >= 0").all() as Array<
        { agent: AgentName; replay_after: number; replay_writes: string | null }
      >;
      return new Map(rows.map((row) => [row.agent, { after: row.replay_after, writes: keptWrites(row.replay_after, row.replay_writes) }]));
    });
  }

  lastId(): Promise<number> {
    return this.#attempt("read the last id", () => {
      const row = this.#db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").get() as
        | { seq: number }
        | undefined;
      return row?.seq ?? 0;
    });
  }

  write(batch: WriteBatch): Promise<Envelope[]> {
    // A batch of stream cursors and last-seen times only (no message, no poll) is advisory: it is committed
    // without its own fsync and becomes durable with the next fsynced commit (the WAL keeps commits in order).
    const advisory = this.#durability === "strict" && batch.messages.length === 0 &&
      batch.inboxes.every((update) => update.polled === undefined && update.withdrawn === undefined);
    if (!advisory) return this.#commitBatch(batch);
    this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      return this.#commitBatch(batch);
    } finally {
      this.#db.exec("PRAGMA synchronous = FULL");
    }
  }

  #commitBatch(batch: WriteBatch): Promise<Envelope[]> {
    let runs: CopiesRun[];
    try {
      runs = copiesRuns(batch.messages);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#attempt("commit", () => {
      const stored = this.#transaction(() => {
        const stored: Envelope[] = [];
        let newest = 0;
        for (const { message, payload, recipients } of runs) {
          const { from, createdAt, thread } = message;
          const fields = [thread?.replyTo ?? null, thread?.conversation ?? null, thread?.hops ?? null, message.idempotencyKey ?? null];
          const { lastInsertRowid } = recipients.length === 1
            ? this.#sql.insert.run(from, createdAt, payload, ...fields, recipients[0])
            : this.#sql.insertCopies.run(from, createdAt, ...fields, JSON.stringify(recipients));
          // One statement's rows take consecutive ids (AUTOINCREMENT, and no other writer holds the database).
          let id = Number(lastInsertRowid) - recipients.length;
          if (recipients.length > 1) this.#sql.insertSharedPayload.run(id + 1, recipients.length, payload);
          newest = Number(lastInsertRowid);
          const timestamp = new Date(createdAt).toISOString();
          for (const to of recipients) {
            const envelope: Envelope = { id: ++id, from, to, timestamp, payload: message.payload };
            if (thread) envelope.thread = thread;
            stored.push(envelope);
          }
        }
        this.#writeInboxes(batch.inboxes);
        for (const update of batch.inboxes) {
          if (update.create) this.#db.prepare("DELETE FROM removed_agents WHERE agent = ?").run(update.agent);
          for (const { after, upTo } of update.polled ?? []) this.#markPolledRange(update.agent, after, upTo);
          for (const { id, at } of update.withdrawn ?? []) {
            this.#markPolledRange(update.agent, id - 1, id);
            this.#db.prepare("INSERT OR IGNORE INTO withdrawn (message_id, withdrawn_at) VALUES (?, ?)").run(id, at);
          }
        }
        if (newest - this.#indexedUpTo >= INDEX_LAG) this.#joinTail();
        return stored;
      });
      for (const { id, to } of stored) if (id > this.#indexedUpTo) this.#tailNewest.set(to, id);
      return stored;
    });
  }

  /**
   * A commit's inbox rows (each statement creates a missing row): the cursor-only updates, when there are several (a
   * broadcast's streams), in a statement of their own; a single one rides the general statement, as a second
   * statement would cost a commit of 16 publishers' messages (their last-seen notes and the stream's cursor) more
   * than it saves.
   */
  #writeInboxes(updates: InboxUpdate[]): void {
    const cursorOnly = (update: InboxUpdate) =>
      update.deliveredId !== undefined && update.lastSeen === undefined && update.replay === undefined;
    const cursorUpdates = updates.filter(cursorOnly);
    let others = updates;
    if (cursorUpdates.length > 1) {
      // A Map, not an object literal: an agent may be named `constructor` (an object's inherited key).
      const cursors = new Map<string, number>();
      for (const { agent, deliveredId } of cursorUpdates) cursors.set(agent, Math.max(cursors.get(agent) ?? 0, deliveredId!));
      this.#sql.advanceCursors.run(JSON.stringify(Object.fromEntries(cursors)));
      others = updates.filter((update) => !cursorOnly(update));
    }
    if (others.length === 0) return;
    this.#sql.upsertInboxes.run(JSON.stringify(others.map((update) => [
      update.agent,
      update.deliveredId ?? null,
      update.lastSeen ?? null,
      update.replay === null ? -1 : update.replay?.after ?? null,
      update.replay?.writes === undefined ? null : JSON.stringify(update.replay.writes),
    ])));
  }

  /** Where a read of `agent`'s messages after `after` scans the tail from: past the end when it holds none of them. */
  #tailStart(agent: AgentName, after: number): number {
    return (this.#tailNewest.get(agent) ?? 0) > after ? Math.max(after, this.#indexedUpTo) : Number.MAX_SAFE_INTEGER;
  }

  #markPolledRange(agent: AgentName, after: number, upTo: number): void {
    if (after < this.#indexedUpTo) this.#sql.markPolled.run(agent, after, upTo);
    if (upTo > this.#indexedUpTo) this.#sql.markTailPolled.run(Math.max(after, this.#indexedUpTo), upTo, agent);
  }

  /** Deletes the shared payloads whose last copy a deletion of the messages in `deleted` removed (none: nothing). */
  #deleteUnusedPayloads(deleted: IdRange): void {
    if (deleted.from <= deleted.upTo) this.#sql.deleteUnusedPayloadsIn.run({ from: deleted.from, upTo: deleted.upTo });
  }

  /** Brings the tail into the index in one statement (each recipient's leaf written once); in a transaction. */
  #joinTail(): void {
    this.#sql.joinIndex.run(this.#indexedUpTo);
    this.#joinedUpTo = (this.#db.prepare("SELECT coalesce(max(id), 0) AS id FROM messages").get() as { id: number }).id;
  }

  readAfter(agent: AgentName, afterId: number, limit: number, maxChars = Infinity): Promise<Envelope[]> {
    return this.#attempt("read messages", () => {
      // One message is read whatever its size: a read of one needs no budget.
      const page = new BoundedRows(limit > 1 ? maxChars : Infinity, payloadChars);
      if (afterId < this.#indexedUpTo) page.read(this.#sql.readAfter, agent, afterId, limit);
      const tail = this.#tailStart(agent, afterId);
      if (!page.cut && page.rows.length < limit && tail !== Number.MAX_SAFE_INTEGER) {
        page.read(this.#sql.readTailAfter, tail, agent, limit - page.rows.length);
      }
      const envelopes = page.rows.map(toEnvelope);
      return page.cut ? cutShort(envelopes) : envelopes;
    });
  }

  readReplies(agent: AgentName, questionId: number, afterId: number, limit: number): Promise<Envelope[]> {
    return this.#attempt("read replies", () =>
      (this.#sql.readReplies.all(questionId, agent, afterId, limit) as unknown as MessageRow[]).map(toEnvelope)
    );
  }

  readLatest(agent: AgentName, limit: number, beforeId = Number.MAX_SAFE_INTEGER, maxChars = Infinity): Promise<Envelope[]> {
    return this.#attempt("read messages", () => {
      // Newest first, the tail before the index: the running total counts from the newest.
      const page = new BoundedRows(limit > 1 ? maxChars : Infinity, payloadChars);
      page.read(
        this.#db.prepare(`SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages
          WHERE id > ? AND id < ? AND recipient = ? AND polled = 0 ORDER BY id DESC LIMIT ?`),
        this.#tailStart(agent, 0),
        beforeId,
        agent,
        limit,
      );
      if (!page.cut && page.rows.length < limit) {
        page.read(
          this.#db.prepare(`SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages
            WHERE recipient = ? AND indexed = 1 AND polled = 0 AND id < ? ORDER BY id DESC LIMIT ?`),
          agent,
          beforeId,
          limit - page.rows.length,
        );
      }
      const envelopes = page.rows.map(toEnvelope).reverse();
      return page.cut ? cutShort(envelopes) : envelopes;
    });
  }

  addDeadLetter(agent: AgentName, letter: DeadLetter): Promise<boolean> {
    return this.#attempt("park a dead letter", () => this.#transaction(() => insertDeadLetter(this.#db, agent, letter)));
  }

  deadLetters(
    agent: AgentName,
    limit: number,
    beforeId = Number.MAX_SAFE_INTEGER,
    maxChars = Infinity,
    withAcknowledged = false,
  ): Promise<DeadLetter[]> {
    return this.#attempt("read dead letters", () => readDeadLetters(this.#db, agent, limit, beforeId, maxChars, withAcknowledged));
  }

  acknowledgeDeadLetters(agent: AgentName, messageIds: number[] | undefined, at: number): Promise<{ acknowledged: number[]; left: number }> {
    return this.#attempt("acknowledge dead letters", () =>
      this.#transaction(() => markDeadLettersAcknowledged(this.#db, agent, messageIds, at)));
  }

  find(id: number): Promise<Envelope | undefined> {
    return this.#attempt("read a message", () => {
      const row = this.#db.prepare(`SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages WHERE id = ?`).get(id) as MessageRow | undefined;
      return row === undefined ? undefined : toEnvelope(row);
    });
  }

  findByKey(sender: AgentName, key: string): Promise<Envelope[]> {
    return this.#attempt("read messages", () =>
      (this.#db.prepare(`SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND idempotency_key = ? ORDER BY id`)
        .all(sender, key) as unknown as MessageRow[]).map(toEnvelope));
  }

  findByKeyPrefix(prefix: string, parties: Parties, beforeId: number, limit: number): Promise<Envelope[]> {
    const sender = parties.sender ?? null;
    const recipient = parties.recipient ?? null;
    return this.#attempt("read messages", () =>
      (this.#db.prepare(`SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages
        WHERE substr(idempotency_key, 1, length(?)) = ? AND (? IS NULL OR sender = ?) AND (? IS NULL OR recipient = ?) AND id < ?
        ORDER BY id DESC LIMIT ?`)
        .all(prefix, prefix, sender, sender, recipient, recipient, beforeId, limit) as unknown as MessageRow[]).map(toEnvelope));
  }

  outcome(id: number): Promise<MessageOutcome> {
    return this.#attempt("read a message", () => {
      const message = this.#db.prepare("SELECT recipient, polled FROM messages WHERE id = ?").get(id) as
        | { recipient: string; polled: number }
        | undefined;
      const withdrawn = this.#db.prepare("SELECT withdrawn_at FROM withdrawn WHERE message_id = ?").get(id) as
        | { withdrawn_at: number }
        | undefined;
      const reply = message === undefined ? undefined : this.#db.prepare(
        `SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages WHERE reply_to = ? AND sender = ? ORDER BY id LIMIT 1`,
      ).get(id, message.recipient) as MessageRow | undefined;
      const letter = message === undefined ? undefined : this.#db.prepare(
        "SELECT message_id AS messageId, reason, parked_at AS parkedAt FROM dead_letters WHERE agent = ? AND message_id = ?",
      ).get(message.recipient, id) as DeadLetter | undefined;
      return {
        taken: message?.polled === 1,
        withdrawnAt: withdrawn?.withdrawn_at,
        reply: reply === undefined ? undefined : toEnvelope(reply),
        deadLetter: letter === undefined ? undefined : { ...letter },
      };
    });
  }

  idBefore(agent: AgentName, time: number): Promise<number> {
    return this.#attempt("read messages", () => {
      const row = this.#db.prepare(`SELECT coalesce(
          (SELECT max(id) FROM messages WHERE id > ? AND recipient = ? AND created_at < ?),
          (SELECT max(id) FROM messages WHERE recipient = ? AND indexed = 1 AND created_at < ?), 0) AS id`)
        .get(this.#tailStart(agent, 0), agent, time, agent, time) as { id: number };
      return row.id;
    });
  }

  prune(cutoff: number, deliveredBefore: Map<AgentName, number>, limit = RETENTION_BATCH): Promise<RetentionStep> {
    return this.#attempt("prune", () =>
      this.#transaction(() => {
        this.#joinTail();
        const { changed, more, deleted } = pruneDelivered(this.#db, cutoff, deliveredBefore, limit);
        this.#deleteUnusedPayloads(deleted);
        return { changed, more };
      }));
  }

  expire(cutoffs: Map<AgentName, number>, { limit = RETENTION_BATCH, ...options }: ExpiryOptions = {}): Promise<RetentionStep> {
    return this.#attempt("expire", () =>
      this.#transaction(() => {
        this.#joinTail();
        const { changed, more, deleted } = expireUndelivered(this.#db, cutoffs, { ...options, limit });
        this.#deleteUnusedPayloads(deleted);
        return { changed, more };
      }));
  }

  passTaken(delivered: Map<AgentName, number>): Promise<Map<AgentName, number>> {
    return this.#attempt("move cursors", () =>
      this.#transaction(() => {
        this.#joinTail();
        return passTaken(this.#db, delivered);
      }));
  }

  removeInbox(agent: AgentName): Promise<number> {
    return this.#attempt("remove an inbox", () =>
      this.#transaction(() => {
        this.#joinTail();
        const { first, last } = this.#db.prepare("SELECT min(id) AS first, max(id) AS last FROM messages WHERE recipient = ? AND indexed = 1")
          .get(agent) as { first: number | null; last: number | null };
        const { changes } = this.#db.prepare("DELETE FROM messages WHERE recipient = ? AND indexed = 1").run(agent);
        if (first !== null && last !== null) this.#deleteUnusedPayloads(new IdRange().add(first, last));
        this.#db.prepare("DELETE FROM dead_letters WHERE agent = ?").run(agent);
        this.#db.prepare("DELETE FROM inboxes WHERE agent = ?").run(agent);
        this.#db.prepare("INSERT OR REPLACE INTO removed_agents (agent, removed_at) VALUES (?, ?)").run(agent, Date.now());
        return Number(changes);
      }));
  }

  wasRemoved(agent: AgentName): Promise<boolean> {
    return this.#attempt("read removals", () =>
      this.#db.prepare("SELECT 1 FROM removed_agents WHERE agent = ?").get(agent) !== undefined);
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }

  #transaction<T>(work: () => T): T {
    this.#refuseIfGone();
    let committing = false;
    try {
      this.#db.exec("BEGIN IMMEDIATE");
      const result = work();
      committing = true;
      this.#db.exec("COMMIT");
      this.#writes.succeeded();
      if (this.#joinedUpTo !== undefined) {
        this.#indexedUpTo = this.#joinedUpTo;
        this.#tailNewest.clear();
      }
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      // SQLite's own failures; a refusal of ours (a message it cannot store as such) says nothing of the disk.
      if (!(error instanceof InteropError)) this.#writes.failed((error as Error).message);
      // A COMMIT that fails on an I/O error may still be on disk: its WAL frames were written, and an fsync or a
      // write after them failed. SQLite rolled it back here, yet opening the file again replays them (red team 53:
      // answered 503 "nothing kept", found stored after a restart in 6 of 19 runs). No room (SQLITE_FULL) wrote none.
      if (committing && !(error instanceof InteropError) && !isDiskFull(error)) throw commitInDoubt(error);
      throw error;
    } finally {
      this.#joinedUpTo = undefined;
    }
  }

  /** Refuses to write once the database file is no longer at its path (see `FilePresence`). */
  #refuseIfGone(): void {
    const lost = this.#file.lost();
    if (lost === undefined) return;
    const what = `the database file ${this.location} was ${lost} while the broker ran`;
    this.#writes.failed(what);
    throw new InteropError(
      "storage_failed",
      `Storage failed: ${what}; nothing more is stored in it: restart the broker (what it kept in the file is gone with it)`,
    );
  }

  /** Runs synchronous SQLite work behind the async interface, mapping failures to `storage_full` or `storage_failed`. */
  #attempt<T>(what: string, work: () => T): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (cause) {
      if (cause instanceof InteropError) return Promise.reject(cause);
      const reason = (cause as Error).message;
      // The transaction was rolled back, so the caller can promise that nothing of the write was kept.
      return Promise.reject(
        isDiskFull(cause)
          ? storageFull(this.location, what, reason, cause)
          : new InteropError("storage_failed", `Storage failed to ${what}: ${reason}`, { cause }),
      );
    }
  }
}

/** Consecutive messages that differ only in their recipient (a broadcast's copies), with the payload as stored. */
interface CopiesRun {
  message: NewMessage;
  payload: string;
  recipients: AgentName[];
}

function copiesRuns(messages: NewMessage[]): CopiesRun[] {
  const runs: CopiesRun[] = [];
  let last: CopiesRun | undefined;
  for (const message of messages) {
    const copy = last !== undefined && message.payload === last.message.payload && message.from === last.message.from &&
      message.createdAt === last.message.createdAt && message.thread === last.message.thread &&
      message.idempotencyKey === last.message.idempotencyKey;
    if (copy) last!.recipients.push(message.to);
    else runs.push(last = { message, payload: encodePayload(storedPayload(message.payload, message.thread)), recipients: [message.to] });
  }
  return runs;
}

/**
 * A payload as stored, encoded before the transaction: a payload JSON cannot encode (a BigInt, a cycle, nesting
 * past the stack) is refused as `invalid_body` on its own, not reported as a failure of the storage.
 */
function encodePayload(payload: Payload): string {
  try {
    return JSON.stringify(payload);
  } catch (cause) {
    throw new InteropError("invalid_body", `Cannot store the message: its payload cannot be encoded as JSON (${(cause as Error).message})`, {
      cause,
    });
  }
}

/** A COMMIT that failed on an I/O error: see `#transaction`. */
function commitInDoubt(cause: unknown): InteropError {
  return new InteropError(
    "in_doubt",
    `Storage failed as it committed (${(cause as Error).message}): what was sent may have been stored, or taken, or ` +
      "not (the disk reported an error while writing it); a message sent again with the same Idempotency-Key is stored once",
    { cause },
  );
}

/** SQLITE_FULL (13): the disk (or the file system's quota) has no room for the write. */
function isDiskFull(error: unknown): boolean {
  return (error as { errcode?: number })?.errcode === 13 || /database or disk is full/i.test((error as Error)?.message);
}

/**
 * A replay point's writes as kept (`replay_writes`), when they are of that point: an older interop that served the
 * file since moved the point and left them as they were, and then the point is dated at the restart, as it did.
 */
function keptWrites(after: number, kept: string | null): ReplayPoint["writes"] {
  try {
    const writes = JSON.parse(kept ?? "null");
    const valid = Array.isArray(writes) && writes.length > 0 && writes[0][0] === after + 1 &&
      writes.every((write) => Array.isArray(write) && Number.isSafeInteger(write[0]) && Number.isSafeInteger(write[1]));
    return valid ? writes : undefined;
  } catch {
    return undefined;
  }
}
