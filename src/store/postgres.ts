/**
 * The PostgreSQL store (the `postgres` client): the same semantics as the SQLite store, one transaction per method.
 * Several brokers may share a database: each registers in `interop_brokers`, publishes take the head rows of their
 * inboxes so that per inbox id order is commit order, and commits NOTIFY the other brokers' readers.
 */
import postgres, { type PostgresError, type Sql, type TransactionSql } from "postgres";
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope } from "../message.ts";
import { brokerConnectionName, type Claimant, CLIENT_OPTIONS, Registration } from "./postgres_registry.ts";
import {
  deadLetterOf,
  type DeadLetterRow,
  type InboxRow,
  MESSAGE_COLUMNS,
  type MessageRow,
  storedReason,
  toEnvelope,
  toInboxRecord,
} from "./message_row.ts";
import { redactUrl } from "../url_redaction.ts";
import { INT8_AS_NUMBER, isUnreachable } from "./postgres_client.ts";
import { expireUndelivered, passTaken, pruneDelivered } from "./postgres_retention.ts";
import { boundedRows, readBounded } from "./postgres_pages.ts";
import { migrate } from "./postgres_schema.ts";
import { beforeAwaitedReply, DEAD_LETTER_COUNT, PENDING_COUNT, PostgresInboxes } from "./postgres_shared.ts";
import { writeBatch } from "./postgres_write.ts";
import { AwaitedRecords } from "./postgres_awaited.ts";
import { BoundedCalls, CALL_BOUND_MS } from "./postgres_calls.ts";
import { StoreSockets } from "./postgres_sockets.ts";
import {
  CommitInDoubt,
  cutAs,
  type DeadLetter,
  type Durability,
  type ExpiryOptions,
  type InboxHolds,
  type InboxRecord,
  type MessageOutcome,
  type MessageStore,
  type MovedStore,
  parkedWithoutInbox,
  type Parties,
  RETENTION_BATCH,
  type RetentionStep,
  storageFull,
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
  /**
   * How long a read or write transaction may run before the server is asked whether it still works on it, in ms
   * (`CALL_BOUND_MS`): one it does not work on is stuck.
   */
  callBoundMs?: number;
}

/** Deadlock and serialization failures: PostgreSQL rolled the whole transaction back, so it is retried. */
const RETRIED = new Set(["40P01", "40001"]);

/**
 * How long the server lets one of the broker's transactions wait for the broker between its statements before it
 * ends the session (rolling the transaction back): a broker frozen (SIGSTOP, a VM paused) or cut off without a reset
 * while in a transaction held its row locks, and every other broker's writes to those inboxes waited behind them, then
 * answered 503 for everything, as long as it stayed so (red team 53: 37 s, the whole freeze). The broker's own gaps
 * are a round trip and a turn of its event loop; under the registry's bound (QUERY_BOUND_MS, 6 s), so another
 * broker's queries waiting on such a lock end before its store is called away.
 */
const IDLE_IN_TRANSACTION_MS = 5000;

export class PostgresStore implements MessageStore {
  readonly kind = "postgresql";
  readonly location: string;
  readonly id: string;
  readonly movedFrom: MovedStore | undefined;
  #sql: Sql;
  #registry: Registration;
  #calls: BoundedCalls;
  /** This broker's write transactions run one at a time (the commit queue batches them anyway). */
  #writing: Promise<unknown> = Promise.resolve();
  #awaited = new AwaitedRecords();
  readonly shared: PostgresInboxes;

  private constructor(
    sql: Sql,
    registry: Registration,
    sockets: StoreSockets,
    callBoundMs: number,
    location: string,
    id: string,
    movedFrom: MovedStore | undefined,
  ) {
    this.#sql = sql;
    this.#registry = registry;
    this.#calls = new BoundedCalls(callBoundMs, { registry, sockets, check: () => sql`SELECT 1`.execute() });
    this.location = location;
    this.id = id;
    this.movedFrom = movedFrom;
    this.shared = new PostgresInboxes({
      sql,
      broker: registry.id,
      awaited: this.#awaited,
      onBack: (listener) => registry.onBack(listener),
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
    const sockets = new StoreSockets();
    let sql: Sql | undefined;
    try {
      sql = postgres(options.url, {
        ...CLIENT_OPTIONS,
        // postgres 3.4.9 documents the option (its README's "Custom socket"), its types do not declare it.
        ...({ socket: sockets.connect } as object),
        // Acknowledge only what is flushed: COMMIT waits for the WAL on disk, whatever the server's default.
        // No JIT: the broker's statements are short, yet a count over a large inbox is costed high enough that
        // PostgreSQL compiled it each time (15-600 ms, more than the count itself).
        connection: {
          synchronous_commit: "on",
          jit: "off",
          application_name: brokerConnectionName(registry.id),
          idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
        },
        types: { int8: INT8_AS_NUMBER },
      });
      await migrate(sql);
      const [identity] = await sql<{ id: string; moved_from: string | null; moved_up_to: number | null }[]>`
        SELECT id, moved_from, moved_up_to FROM interop_store`;
      await registry.register(options.claimant);
      const movedFrom = identity.moved_from === null ? undefined : { id: identity.moved_from, upTo: identity.moved_up_to! };
      return new PostgresStore(sql, registry, sockets, options.callBoundMs ?? CALL_BOUND_MS, location, identity.id, movedFrom);
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

  oldestCallMs(): number {
    return this.#calls.oldestMs();
  }

  /** Records where this broker listens, for the cluster view. */
  announce(listening: string): Promise<void> {
    return this.#read("record the broker's address", () => this.#registry.announce(listening));
  }

  loadInboxes(): Promise<InboxRecord[]> {
    return this.#read("read inboxes", async () => {
      const rows = await this.#sql<InboxRow[]>`
        SELECT agent, delivered_id, purged_id, last_seen, expired,
          ${this.#sql.unsafe(PENDING_COUNT)} AS pending,
          ${this.#sql.unsafe(DEAD_LETTER_COUNT)} AS dead_letters
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
    return this.#transaction("commit", (tx) => {
      for (const message of batch.messages) if (message.awaited !== undefined) this.#awaited.held(message.awaited.id, message.awaited.ms);
      return writeBatch(tx, batch, this.#registry.id);
    });
  }

  readAfter(agent: AgentName, afterId: number, limit: number, maxChars = Infinity): Promise<Envelope[]> {
    return this.#read("read messages", () =>
      readBounded(
        this.#sql,
        this.#sql`
          SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
          WHERE recipient = ${agent} AND id > ${afterId} AND NOT polled AND ${beforeAwaitedReply(this.#sql, agent, afterId)}
          ORDER BY id LIMIT ${limit}`,
        limit,
        maxChars,
      ));
  }

  readReplies(agent: AgentName, questionId: number, afterId: number, limit: number): Promise<Envelope[]> {
    return this.#read("read replies", async () =>
      (await this.#sql<MessageRow[]>`
        SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
        WHERE recipient = ${agent} AND reply_to = ${questionId} AND id > ${afterId} AND NOT polled
        ORDER BY id LIMIT ${limit}`).map(toEnvelope));
  }

  readLatest(agent: AgentName, limit: number, beforeId = Number.MAX_SAFE_INTEGER, maxChars = Infinity): Promise<Envelope[]> {
    return this.#read("read messages", () =>
      readBounded(
        this.#sql,
        this.#sql`
          SELECT ${this.#sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
          WHERE recipient = ${agent} AND id < ${beforeId} AND NOT polled ORDER BY id DESC LIMIT ${limit}`,
        limit,
        maxChars,
        "newest",
      ));
  }

  addDeadLetter(agent: AgentName, letter: DeadLetter): Promise<boolean> {
    return this.#transaction("park a dead letter", async (tx) => {
      // The inbox's row held (a removal deletes it first, then the inbox's letters): another broker's removal that
      // committed between the park's look and this insert left its letter behind, shown to the agent made again
      // (red team 47: 5 of 40 parks racing a removal on the other broker).
      const [inbox] = await tx`SELECT 1 FROM interop_inboxes WHERE agent = ${agent} FOR KEY SHARE`;
      if (inbox === undefined) throw parkedWithoutInbox(agent, letter.messageId);
      return (await tx`
        INSERT INTO interop_dead_letters (agent, message_id, reason, parked_at)
        VALUES (${agent}, ${letter.messageId}, ${storedReason(letter.reason)}, ${letter.parkedAt}) ON CONFLICT DO NOTHING`).count === 1;
    });
  }

  deadLetters(
    agent: AgentName,
    limit: number,
    beforeId = Number.MAX_SAFE_INTEGER,
    maxChars = Infinity,
    withAcknowledged = false,
  ): Promise<DeadLetter[]> {
    return this.#read("read dead letters", async () => {
      // Each letter's message measured (octet_length, see readBounded), not read.
      const rows = await boundedRows<Omit<DeadLetterRow, "messageId"> & { id: number }>(
        this.#sql,
        this.#sql`
          SELECT d.message_id AS id, d.reason, d.parked_at AS "parkedAt", d.acknowledged_at AS "acknowledgedAt",
            octet_length(m.payload) AS chars
          FROM interop_dead_letters d LEFT JOIN interop_messages m ON m.id = d.message_id
          WHERE d.agent = ${agent} AND d.message_id < ${beforeId} AND (${withAcknowledged} OR d.acknowledged_at IS NULL)
          ORDER BY d.message_id DESC LIMIT ${limit}`,
        this.#sql`coalesce(page.chars, 0)`,
        limit,
        maxChars,
        "newest",
      );
      return cutAs(rows, rows.map(({ id, ...letter }) => deadLetterOf({ messageId: id, ...letter })));
    });
  }

  acknowledgeDeadLetters(agent: AgentName, messageIds: number[] | undefined, at: number): Promise<{ acknowledged: number[]; left: number }> {
    const ids = messageIds ?? null;
    return this.#transaction("acknowledge dead letters", async (tx) => {
      const marked = await tx<{ id: number }[]>`
        UPDATE interop_dead_letters SET acknowledged_at = ${at}
        WHERE agent = ${agent} AND acknowledged_at IS NULL AND (${ids}::int8[] IS NULL OR message_id = ANY(${ids}::int8[]))
        RETURNING message_id AS id`;
      // Read committed: the count sees this transaction's marks and the letters other brokers committed before it.
      const [{ left }] = await tx<{ left: number }[]>`
        SELECT ${this.#sql.unsafe(DEAD_LETTER_COUNT)}::int AS left FROM (SELECT ${agent}::text AS agent) i`;
      return { acknowledged: marked.map((row) => row.id).sort((a, b) => a - b), left };
    });
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

  prune(cutoff: number, deliveredBefore: Map<AgentName, number>, limit = RETENTION_BATCH): Promise<RetentionStep> {
    if (deliveredBefore.size === 0) return Promise.resolve({ changed: new Map(), more: false });
    return this.#transaction("prune", (tx) => pruneDelivered(tx, cutoff, deliveredBefore, limit));
  }

  expire(cutoffs: Map<AgentName, number>, options: ExpiryOptions = {}): Promise<RetentionStep> {
    if (cutoffs.size === 0) return Promise.resolve({ changed: new Map(), more: false });
    return this.#transaction("expire", (tx) => expireUndelivered(tx, cutoffs, { limit: RETENTION_BATCH, ...options }));
  }

  passTaken(delivered: Map<AgentName, number>): Promise<Map<AgentName, number>> {
    return this.#transaction("move cursors", (tx) => passTaken(tx, delivered));
  }

  removeInbox(agent: AgentName, refuse?: (holds: InboxHolds) => void): Promise<number> {
    return this.shared.removeInbox(agent, refuse);
  }

  wasRemoved(agent: AgentName): Promise<boolean> {
    return this.#read("read removals", async () =>
      (await this.#sql`SELECT 1 FROM interop_removed_agents WHERE agent = ${agent}`).length > 0);
  }

  async close(): Promise<void> {
    this.#calls.close();
    this.#registry.closing();
    this.#awaited.close();
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
      return await this.#calls.run(what, work);
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
    let backend: number | undefined;
    try {
      return await this.#calls.run(what, async () =>
        await this.#sql.begin(async (tx): Promise<T> => {
          const fence = tx<{ pid: number }[]>`
            UPDATE interop_brokers SET last_commit = ${marker} WHERE id = ${this.#registry.id} RETURNING pg_backend_pid() AS pid`
            .execute().then(([row]) => (backend = row?.pid));
          const [, done] = await Promise.all([fence, work(tx)]);
          result = done;
          committing = true;
          return done;
        }) as T, () => backend);
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
      return storageFull(`PostgreSQL at ${this.location}`, what, reason, cause);
    }
    return new InteropError("storage_failed", `Storage failed to ${what}: ${reason}`, { cause });
  }
}
