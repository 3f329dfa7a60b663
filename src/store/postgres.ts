/**
 * The PostgreSQL store (the `postgres` client): the same semantics as the SQLite store, one transaction per method.
 * Several brokers may share a database: each registers in `interop_brokers`, publishes take the head rows of their
 * inboxes so that per inbox id order is commit order, and commits NOTIFY the other brokers' readers.
 */
import postgres, { type PostgresError, type Sql, type TransactionSql } from "postgres";
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope } from "../message.ts";
import { type Claimant, CLIENT_OPTIONS, Registration } from "./postgres_registry.ts";
import { type InboxRow, MESSAGE_COLUMNS, type MessageRow, storedPayload, toEnvelope, toInboxRecord } from "./message_row.ts";
import { LOCK_SPACE, migrate } from "./postgres_schema.ts";
import { COMMITS, notification, PostgresInboxes } from "./postgres_shared.ts";
import {
  CommitInDoubt,
  type DeadLetter,
  type Durability,
  type InboxRecord,
  type InboxUpdate,
  type MessageOutcome,
  type MessageStore,
  type Parties,
  type WriteBatch,
} from "./store.ts";

export interface PostgresStoreOptions {
  /** `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?…]`. */
  url: string;
  durability: Durability;
  /** This broker, as the registry lists it. */
  claimant: Claimant;
  /** Outages and their end, durability warnings. */
  warn(message: string): void;
}

/** Deadlock and serialization failures: PostgreSQL rolled the whole transaction back, so it is retried. */
const RETRIED = new Set(["40P01", "40001"]);


/** `postgres` returns int8 as text (it may pass 2^53); ids, times and counts here stay far below that. */
export const INT8_AS_NUMBER = { to: 20, from: [20], serialize: (value: number) => String(value), parse: (text: string) => Number(text) };

export class PostgresStore implements MessageStore {
  readonly kind = "postgresql";
  readonly location: string;
  readonly id: string;
  #sql: Sql;
  #registry: Registration;
  /** This broker's write transactions run one at a time (the commit queue batches them anyway). */
  #writing: Promise<unknown> = Promise.resolve();
  readonly shared: PostgresInboxes;

  private constructor(sql: Sql, registry: Registration, location: string, id: string) {
    this.#sql = sql;
    this.#registry = registry;
    this.location = location;
    this.id = id;
    this.shared = new PostgresInboxes({
      sql,
      broker: registry.id,
      read: (what, work) => this.#read(what, work),
      transaction: (what, work) => this.#transaction(what, work),
    });
  }

  /**
   * Connects (refusing with `unsafe_durability`), creates or migrates the schema and registers this broker.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const location = redactUrl(options.url);
    const registry = await Registration.connect({ ...options, location });
    let sql: Sql | undefined;
    try {
      sql = postgres(options.url, {
        ...CLIENT_OPTIONS,
        // Acknowledge only what is flushed: COMMIT waits for the WAL on disk, whatever the server's default.
        connection: { synchronous_commit: "on", application_name: "interop broker" },
        types: { int8: INT8_AS_NUMBER },
      });
      await migrate(sql);
      const [identity] = await sql<{ id: string }[]>`SELECT id FROM interop_store`;
      await registry.register(options.claimant);
      return new PostgresStore(sql, registry, location, identity.id);
    } catch (error) {
      await sql?.end({ timeout: 1 });
      await registry.close();
      if (error instanceof InteropError) throw error;
      throw new InteropError("storage_failed", `Cannot prepare database ${location}: ${(error as Error).message}`, { cause: error });
    }
  }

  get outage(): InteropError | undefined {
    return this.#registry.outage;
  }

  /** Records where this broker listens, for the cluster view. */
  announce(listening: string): Promise<void> {
    return this.#read("record the broker's address", () => this.#registry.announce(listening));
  }

  loadInboxes(): Promise<InboxRecord[]> {
    return this.#read("read inboxes", async () => {
      const rows = await this.#sql<InboxRow[]>`
        SELECT agent, delivered_id, purged_id, last_seen, expired,
          (SELECT count(*) FROM interop_messages m WHERE m.recipient = i.agent AND m.id > i.delivered_id AND NOT m.polled) AS pending,
          (SELECT count(*) FROM interop_dead_letters d WHERE d.agent = i.agent) AS dead_letters
        FROM interop_inboxes i ORDER BY agent COLLATE "C"`;
      return rows.map(toInboxRecord);
    });
  }

  lastId(): Promise<number> {
    // The sequence, not max(id): ids deleted by retention are never handed out again.
    return this.#read("read the last id", async () => {
      const [row] = await this.#sql<{ id: number }[]>`
        SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS id FROM interop_messages_id_seq`;
      return row.id;
    });
  }

  write(batch: WriteBatch): Promise<Envelope[]> {
    // Every parameter is a value or null: an undefined one fails in the client while the statements are pipelined,
    // which (postgres 3.4.9) leaves the transaction hanging instead of failing it.
    return this.#transaction("commit", async (tx) => {
      const { messages } = batch;
      const recipients = [...new Set(messages.map((m) => m.to))].sort();
      // A publish with an Idempotency-Key waits for one with the same key (and sender) on another broker, then
      // finds it committed: keys first, in one order, then heads.
      const keyed = [...new Map(messages.flatMap((m) => m.idempotencyKey === undefined ? [] : [[`${m.from}\n${m.idempotencyKey}`, m]])).entries()]
        .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
      const keysLocked = keyed.length === 0 ? undefined : tx`
        SELECT pg_advisory_xact_lock(${LOCK_SPACE}, hashtext(k)) FROM unnest(${keyed.map(([k]) => k)}::text[]) AS k`.execute();
      const earlier = keyed.length === 0 ? Promise.resolve([]) : tx<{ sender: string; key: string }[]>`
        SELECT DISTINCT sender, idempotency_key AS key FROM interop_messages
        WHERE (sender, idempotency_key) IN (SELECT * FROM unnest(${keyed.map(([, m]) => m.from)}::text[], ${keyed.map(([, m]) => m.idempotencyKey!)}::text[]))`
        .execute();
      // The heads first, in one order (no deadlock between broadcasts), before any id is taken: a writer of the
      // same inbox on another broker waits here until this transaction's ids are visible.
      const heads = recipients.length === 0 ? undefined : tx`
        INSERT INTO interop_inbox_heads (agent) SELECT agent FROM unnest(${recipients}::text[]) AS agent ORDER BY agent COLLATE "C"
        ON CONFLICT (agent) DO UPDATE SET agent = excluded.agent`.execute();
      // Ids in the order given (the n-th smallest is the n-th message); each message's prev_id is its inbox's
      // previous one, from the head or from this batch.
      const inserted = messages.length === 0 ? Promise.resolve([]) : tx<{ id: number }[]>`
        WITH m AS MATERIALIZED (
          SELECT nextval(pg_get_serial_sequence('interop_messages', 'id')) AS id, *
          FROM unnest(${messages.map((m) => m.to)}::text[], ${messages.map((m) => m.from)}::text[],
            ${messages.map((m) => m.createdAt)}::int8[], ${messages.map((m) => JSON.stringify(storedPayload(m.payload, m.thread)) ?? null)}::text[],
            ${messages.map((m) => m.thread?.replyTo ?? null)}::int8[], ${messages.map((m) => m.thread?.conversation ?? null)}::int8[],
            ${messages.map((m) => m.thread?.hops ?? null)}::int4[], ${messages.map((m) => m.idempotencyKey ?? null)}::text[])
            WITH ORDINALITY AS u (recipient, sender, created_at, payload, reply_to, conversation, hops, idempotency_key, ord)
        ), stored AS (
          INSERT INTO interop_messages (id, recipient, sender, created_at, payload, reply_to, conversation, hops, idempotency_key, prev_id)
          OVERRIDING SYSTEM VALUE
          SELECT m.id, m.recipient, m.sender, m.created_at, m.payload, m.reply_to, m.conversation, m.hops, m.idempotency_key,
            coalesce(lag(m.id) OVER (PARTITION BY m.recipient ORDER BY m.id), h.last_id)
          FROM m JOIN interop_inbox_heads h ON h.agent = m.recipient
          RETURNING id, recipient
        ), moved AS (
          UPDATE interop_inbox_heads h SET last_id = s.last_id, published = h.published + s.count
          FROM (SELECT recipient, max(id) AS last_id, count(*) AS count FROM stored GROUP BY recipient) s
          WHERE h.agent = s.recipient
        )
        SELECT id FROM stored`.execute();
      const notified = recipients.length === 0 ? undefined : tx`SELECT pg_notify(${COMMITS}, ${notification(this.#registry.id, recipients)})`.execute();
      const updates = mergeByAgent(batch.inboxes);
      const upserted = updates.length === 0 ? undefined : tx`
        INSERT INTO interop_inboxes (agent, delivered_id, last_seen)
        SELECT agent, coalesce(delivered, 0), seen
        FROM unnest(${updates.map((u) => u.agent)}::text[], ${updates.map((u) => u.deliveredId ?? null)}::int8[],
          ${updates.map((u) => u.lastSeen ?? null)}::int8[]) AS u (agent, delivered, seen)
        ON CONFLICT (agent) DO UPDATE SET
          delivered_id = greatest(interop_inboxes.delivered_id, excluded.delivered_id),
          last_seen = coalesce(excluded.last_seen, interop_inboxes.last_seen)`.execute();
      const polled = batch.inboxes.flatMap((update) => (update.polled ?? []).map((range) => ({ agent: update.agent, ...range })));
      const marked = polled.length === 0 ? undefined : tx`
        UPDATE interop_messages m SET polled = true
        FROM unnest(${polled.map((p) => p.agent)}::text[], ${polled.map((p) => p.after)}::int8[],
          ${polled.map((p) => p.upTo)}::int8[]) AS p (agent, after, up_to)
        WHERE m.recipient = p.agent AND m.id > p.after AND m.id <= p.up_to`.execute();
      const withdrawn = batch.inboxes.flatMap((update) => update.withdrawn ?? []);
      const withdrawing = withdrawn.length === 0 ? undefined : tx`
        WITH marked AS (
          UPDATE interop_messages SET polled = true WHERE id = ANY(${withdrawn.map((w) => w.id)}::int8[])
        )
        INSERT INTO interop_withdrawn (message_id, withdrawn_at)
        SELECT * FROM unnest(${withdrawn.map((w) => w.id)}::int8[], ${withdrawn.map((w) => w.at)}::int8[])
        ON CONFLICT DO NOTHING`.execute();
      const [, found, , rows] = await Promise.all([keysLocked, earlier, heads, inserted, upserted, marked, withdrawing, notified]);
      if (found.length > 0) {
        throw new InteropError(
          "duplicate_key",
          `Already published: ${found.map((row) => `${row.sender}'s Idempotency-Key ${JSON.stringify(row.key)}`).join(", ")} committed on another broker`,
        );
      }
      // Rows are inserted in the order given, each taking the next id: the n-th smallest id is the n-th message.
      const ids = rows.map((row) => row.id).sort((a, b) => a - b);
      return messages.map((message, index): Envelope => {
        const envelope: Envelope = {
          id: ids[index],
          from: message.from,
          to: message.to,
          timestamp: new Date(message.createdAt).toISOString(),
          payload: message.payload,
        };
        if (message.thread) envelope.thread = message.thread;
        return envelope;
      });
    });
  }

  readAfter(agent: AgentName, afterId: number, limit: number): Promise<Envelope[]> {
    return this.#read("read messages", async () =>
      (await this.#sql<MessageRow[]>`
        SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
        WHERE recipient = ${agent} AND id > ${afterId} AND NOT polled ORDER BY id LIMIT ${limit}`).map(toEnvelope));
  }

  readLatest(agent: AgentName, limit: number): Promise<Envelope[]> {
    return this.#read("read messages", async () =>
      (await this.#sql<MessageRow[]>`
        SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
        WHERE recipient = ${agent} AND NOT polled ORDER BY id DESC LIMIT ${limit}`).map(toEnvelope).reverse());
  }

  addDeadLetter(agent: AgentName, letter: DeadLetter): Promise<boolean> {
    return this.#transaction("park a dead letter", async (tx) =>
      (await tx`
        INSERT INTO interop_dead_letters (agent, message_id, reason, parked_at)
        VALUES (${agent}, ${letter.messageId}, ${letter.reason}, ${letter.parkedAt}) ON CONFLICT DO NOTHING`).count === 1);
  }

  deadLetters(agent: AgentName): Promise<DeadLetter[]> {
    return this.#read("read dead letters", async () =>
      (await this.#sql<Array<{ message_id: number; reason: string; parked_at: number }>>`
        SELECT message_id, reason, parked_at FROM interop_dead_letters WHERE agent = ${agent} ORDER BY message_id`)
        .map((row) => ({ messageId: row.message_id, reason: row.reason, parkedAt: row.parked_at })));
  }

  find(id: number): Promise<Envelope | undefined> {
    return this.#read("read a message", async () => {
      const [row] = await this.#sql<MessageRow[]>`SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages WHERE id = ${id}`;
      return row === undefined ? undefined : toEnvelope(row);
    });
  }

  findByKey(sender: AgentName, key: string): Promise<Envelope[]> {
    return this.#read("read messages", async () =>
      (await this.#sql<MessageRow[]>`
        SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
        WHERE sender = ${sender} AND idempotency_key = ${key} ORDER BY id`).map(toEnvelope));
  }

  findByKeyPrefix(prefix: string, parties: Parties, beforeId: number, limit: number): Promise<Envelope[]> {
    const sender = parties.sender ?? null;
    const recipient = parties.recipient ?? null;
    return this.#read("read messages", async () =>
      (await this.#sql<MessageRow[]>`
        SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
        WHERE starts_with(idempotency_key, ${prefix}) AND (${sender}::text IS NULL OR sender = ${sender})
          AND (${recipient}::text IS NULL OR recipient = ${recipient}) AND id < ${beforeId}
        ORDER BY id DESC LIMIT ${limit}`).map(toEnvelope));
  }

  outcome(id: number): Promise<MessageOutcome> {
    return this.#read("read a message", async () => {
      const [row] = await this.#sql<Array<{
        polled: boolean | null;
        withdrawn_at: number | null;
        reply: number | null;
        reason: string | null;
        parked_at: number | null;
      }>>`
        SELECT m.polled, w.withdrawn_at, d.reason, d.parked_at,
          (SELECT r.id FROM interop_messages r WHERE r.reply_to = m.id AND r.sender = m.recipient ORDER BY r.id LIMIT 1) AS reply
        FROM (SELECT ${id}::int8 AS id) AS asked
        LEFT JOIN interop_messages m ON m.id = asked.id
        LEFT JOIN interop_withdrawn w ON w.message_id = asked.id
        LEFT JOIN interop_dead_letters d ON d.agent = m.recipient AND d.message_id = asked.id`;
      return {
        taken: row.polled === true,
        withdrawnAt: row.withdrawn_at ?? undefined,
        reply: row.reply === null ? undefined : await this.find(row.reply),
        deadLetter: row.reason === null ? undefined : { messageId: id, reason: row.reason, parkedAt: row.parked_at! },
      };
    });
  }

  idBefore(agent: AgentName, time: number): Promise<number> {
    return this.#read("read messages", async () => {
      const [row] = await this.#sql<{ id: number }[]>`
        SELECT coalesce(max(id), 0) AS id FROM interop_messages WHERE recipient = ${agent} AND created_at < ${time}`;
      return row.id;
    });
  }

  prune(cutoff: number): Promise<Map<AgentName, number>> {
    return this.#transaction("prune", async (tx) => {
      const rows = await tx<Array<{ agent: AgentName; up_to: number }>>`
        WITH bounds AS (
          SELECT i.agent, (SELECT max(m.id) FROM interop_messages m
            WHERE m.recipient = i.agent AND m.id <= i.delivered_id AND m.created_at < ${cutoff}) AS up_to
          FROM interop_inboxes i
        ), removed AS (
          DELETE FROM interop_messages m USING bounds b WHERE m.recipient = b.agent AND m.id <= b.up_to
        )
        UPDATE interop_inboxes i SET purged_id = greatest(i.purged_id, b.up_to)
        FROM bounds b WHERE i.agent = b.agent AND b.up_to IS NOT NULL
        RETURNING i.agent, b.up_to`;
      return new Map(rows.map((row) => [row.agent, row.up_to]));
    });
  }

  expire(
    cutoffs: Map<AgentName, number>,
    delivered: Map<AgentName, number>,
  ): Promise<Map<AgentName, { count: number; upTo: number }>> {
    if (cutoffs.size === 0) return Promise.resolve(new Map());
    const agents = [...cutoffs.keys()];
    return this.#transaction("expire", async (tx) => {
      const rows = await tx<Array<{ agent: AgentName; count: number; up_to: number }>>`
        WITH found AS (
          SELECT i.agent, greatest(i.delivered_id, c.delivered) AS after, c.cutoff, count(*) AS count, max(m.id) AS up_to
          FROM unnest(${agents}::text[], ${agents.map((agent) => cutoffs.get(agent)!)}::int8[],
            ${agents.map((agent) => delivered.get(agent) ?? 0)}::int8[]) AS c (agent, cutoff, delivered)
          JOIN interop_inboxes i ON i.agent = c.agent
          JOIN interop_messages m ON m.recipient = i.agent AND m.id > greatest(i.delivered_id, c.delivered)
            AND NOT m.polled AND m.created_at < c.cutoff
          GROUP BY i.agent, i.delivered_id, c.delivered, c.cutoff
        ), removed AS (
          DELETE FROM interop_messages m USING found f
          WHERE m.recipient = f.agent AND m.id > f.after AND m.id <= f.up_to AND m.created_at < f.cutoff
        )
        UPDATE interop_inboxes i SET expired = i.expired + f.count, purged_id = greatest(i.purged_id, f.up_to)
        FROM found f WHERE i.agent = f.agent
        RETURNING i.agent, f.count, f.up_to`;
      return new Map(rows.map((row) => [row.agent, { count: row.count, upTo: row.up_to }]));
    });
  }

  removeInbox(agent: AgentName): Promise<number> {
    return this.#transaction("remove an inbox", async (tx) => {
      const [removed] = await Promise.all([
        tx`DELETE FROM interop_messages WHERE recipient = ${agent}`.execute(),
        tx`DELETE FROM interop_dead_letters WHERE agent = ${agent}`.execute(),
        tx`DELETE FROM interop_inboxes WHERE agent = ${agent}`.execute(),
      ]);
      return removed.count;
    });
  }

  async close(): Promise<void> {
    this.#registry.closing();
    await this.#writing;
    await this.shared.close();
    // Writes are done; a connection that broke with a query in flight holds end() until its timeout (postgres 3.4.9).
    await this.#sql.end({ timeout: 1 });
    await this.#registry.close();
  }

  /** One statement outside a transaction: fails fast during an outage, and starts one when the server is gone. */
  async #read<T>(what: string, work: () => Promise<T>): Promise<T> {
    this.#registry.check();
    try {
      return await work();
    } catch (cause) {
      throw this.#failure(what, cause);
    }
  }

  /**
   * One write transaction, after this broker's ones before it. It first writes a fresh marker into this broker's
   * registry row. A COMMIT whose answer was lost rejects with `CommitInDoubt`: the registry reads the marker back
   * once the server answers (the transactions after it fail fast meanwhile). Not `txid_status`: after a crash of the
   * server, the id of a transaction whose WAL never reached the disk is handed out again, and would report another
   * transaction's commit. A deadlock with another broker's transaction rolled it all back: it is run again.
   */
  #transaction<T>(what: string, work: (tx: TransactionSql) => Promise<T>): Promise<T> {
    const done = this.#writing.then(async () => {
      for (let attempt = 1;; attempt++) {
        try {
          return await this.#commit(what, work);
        } catch (error) {
          if (attempt === 3 || !RETRIED.has(((error as InteropError).cause as PostgresError)?.code)) throw error;
        }
      }
    });
    this.#writing = done.catch(() => {});
    return done;
  }

  async #commit<T>(what: string, work: (tx: TransactionSql) => Promise<T>): Promise<T> {
    this.#registry.check();
    const marker = crypto.randomUUID();
    let result: T | undefined;
    let committing = false;
    try {
      return await this.#sql.begin(async (tx): Promise<T> => {
        const fence = tx`UPDATE interop_brokers SET last_commit = ${marker} WHERE id = ${this.#registry.id}`.execute();
        const [, done] = await Promise.all([fence, work(tx)]);
        result = done;
        committing = true;
        return done;
      }) as T;
    } catch (cause) {
      const failure = this.#failure(what, cause);
      if (committing && failure.code === "storage_unavailable") {
        const done = result as T;
        throw new CommitInDoubt(failure, this.#registry.committed(marker).then((committed) => committed ? done : undefined));
      }
      throw failure;
    }
  }

  /** The error to fail a call with; a lost connection starts an outage. */
  #failure(what: string, cause: unknown): InteropError {
    if (cause instanceof InteropError) return cause;
    if (isUnreachable(cause)) return this.#registry.fail(cause);
    const reason = (cause as Error)?.message ?? String(cause);
    if ((cause as PostgresError)?.code === "53100") {
      return new InteropError(
        "storage_full",
        `Storage full: PostgreSQL at ${this.location} has no space left (${reason}); nothing of this message was stored, free some disk space and retry`,
        { cause },
      );
    }
    return new InteropError("storage_failed", `Storage failed to ${what}: ${reason}`, { cause });
  }
}

/** Whether a failure means the server cannot be reached now, rather than that it refused this statement. */
export function isUnreachable(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  if ((error as Error).name === "PostgresError") {
    // 08: connection exception; 57P01-03: the server is shutting down, crashed, or still starting; 53300: no
    // connection slot; 25006: a read-only server (a standby, during a failover).
    return code.startsWith("08") || /^57P0[1-3]$/.test(code) || code === "53300" || code === "25006";
  }
  // The client's own (CONNECTION_CLOSED, CONNECT_TIMEOUT, …) and the socket's (ECONNREFUSED, ECONNRESET, …).
  return /^(CONNECTION_|CONNECT_)/.test(code) || /^E[A-Z]+$/.test(code);
}

/**
 * Updates of one inbox merged into one row (an upsert may not touch a row twice), in one order for every broker
 * (two brokers' transactions then lock the same rows in the same order: no deadlock).
 */
function mergeByAgent(updates: InboxUpdate[]): InboxUpdate[] {
  const merged = new Map<string, InboxUpdate>();
  for (const update of updates) {
    const earlier = merged.get(update.agent);
    merged.set(update.agent, earlier === undefined ? update : {
      agent: update.agent,
      deliveredId: Math.max(earlier.deliveredId ?? 0, update.deliveredId ?? 0),
      // As applied one after the other: the last time given wins.
      lastSeen: update.lastSeen ?? earlier.lastSeen,
    });
  }
  return [...merged.values()].sort((a, b) => a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0);
}

/** The URL without its password: it goes into logs and `/status`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === "") return url;
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "(an invalid URL)";
  }
}
