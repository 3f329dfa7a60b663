/**
 * The PostgreSQL store's shared inboxes: cursors, takes and stream claims with compare-and-set, so that brokers on
 * one database never hand out one message twice, and LISTEN/NOTIFY wake-ups between them.
 */
import type { Fragment, Sql, TransactionSql } from "postgres";
import type { AgentName, Envelope } from "../message.ts";
import { MESSAGE_COLUMNS, type MessageRow, toEnvelope } from "./message_row.ts";
import { awaitedRecords, type AwaitedRecords } from "./postgres_awaited.ts";
import { readBounded } from "./postgres_pages.ts";
import { BROKER_CONNECTION, HEARTBEAT_MS } from "./postgres_registry.ts";
import { agentRemoved, type Claim, type ClusterView, type InboxHolds, inboxLeased, type SharedInboxes, type Wake } from "./store.ts";

/** The channel every commit that stores messages notifies: `{"b": broker id, "a": [recipients]}`, or `a: "*"`. */
export const COMMITS = "interop";
/** The channel a stream replaced on another broker hears on: `{"b": its broker, "a": agent, "s": session}`. */
const REPLACED = "interop_replaced";
/** The channel other brokers hear an inbox's removal on: `{"b": the broker that removed it, "a": agent}`. */
const REMOVED = "interop_removed";
/** Whether the broker row `b` is alive: not stopped, and its heartbeat recent by the database's clock. */
const ALIVE = `b.stopped_at IS NULL AND b.heartbeat_at > now() - interval '${(3 * HEARTBEAT_MS) / 1000} seconds'`;
/**
 * Whether the broker `b` still holds a connection to the database (`brokerConnectionName`): a broker killed (kill -9,
 * OOM) drops them as it dies, so a wait it recorded stops holding readers then, not once its heartbeat is 15 s old. A
 * machine that vanishes without closing them is caught by the heartbeat (ALIVE) still. `application_name` is shown
 * to every role (`pg_stat_activity` hides the query and the client's address, not that).
 */
const CONNECTED = `EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = '${BROKER_CONNECTION}' || b.id::text)`;
/**
 * The FROM item that commits a lease's statement without waiting for its WAL flush (synchronous_commit off for its
 * own transaction: the commit reads the setting before the transaction's settings are reset). A lease holds off
 * other readers for a page at most, and a crash of the server that loses one only lets another reader in early;
 * the flush cost each page a second durable write (the take's is the other).
 */
const UNFLUSHED = "(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed";
/** Above every message id: where a read stops when no awaited reply is pending. */
const NO_STOP = Number.MAX_SAFE_INTEGER;
/** Past this many bytes of recipients a notification says "*" (NOTIFY payloads stop at 8,000 bytes). */
const MAX_NOTIFY_BYTES = 7000;

/**
 * What the store lends: its client, its broker id, the records of awaited replies it wrote, and its ways to run a
 * statement and a write transaction.
 */
export interface SharedContext {
  sql: Sql;
  broker: string;
  awaited: AwaitedRecords;
  /** `listener` is called each time an outage ends. */
  onBack(listener: () => void): void;
  read<T>(what: string, work: () => Promise<T>): Promise<T>;
  transaction<T>(what: string, work: (tx: TransactionSql) => Promise<T>): Promise<T>;
}

/**
 * The condition that keeps an in-order read of `agent`'s inbox (messages above `after`) before the first reply a
 * waiter awaits (`awaitReply`): its record holds until its wait ends, by the database's clock, and only while the
 * waiter's broker is alive and connected, so a broker killed holds up no one once its connections are gone (one
 * whose machine vanished, until it counts as gone: 15 s).
 */
export function beforeAwaitedReply(sql: Sql | TransactionSql, agent: AgentName, after: number | Fragment): Fragment {
  return sql`id < coalesce((
    SELECT min(r.id) FROM interop_awaited_replies w
      JOIN interop_brokers b ON b.id = w.broker
      JOIN interop_messages r ON r.reply_to = w.question_id AND r.recipient = w.agent
    WHERE w.agent = ${agent} AND w.until > now() AND ${sql.unsafe(ALIVE)} AND ${sql.unsafe(CONNECTED)} AND r.id > ${after}
      AND NOT r.polled
  ), ${NO_STOP})`;
}

/**
 * An inbox's (`i`) untaken messages above its cursor. The row comparison is the (recipient, id) index's range: given
 * `m.id > i.delivered_id` the planner walked the primary key from the cursor and filtered by recipient (every
 * message above a sender's cursor: 200 ms with 1,000,000 in another inbox).
 */
export const PENDING_COUNT =
  "(SELECT count(*) FROM interop_messages m WHERE m.recipient = i.agent AND (m.recipient, m.id) > (i.agent, i.delivered_id) AND NOT m.polled)";
/** An inbox's (`i`) dead letters not acknowledged: what `interop status --max-dead-letters` checks. */
export const DEAD_LETTER_COUNT = "(SELECT count(*) FROM interop_dead_letters d WHERE d.agent = i.agent AND d.acknowledged_at IS NULL)";
/**
 * The row versions of an inbox and of its head: every write that changes its count of pending messages writes one of
 * them (a publish its head; a take, a claim, a pass, an expiry or a removal its row). While both stay, the count read
 * last stands, and reading its messages again (0.25 s for 1,000,000) is spared.
 */
const COUNT_MARK = "concat_ws(' ', i.xmin, h.xmin)";
/** Every inbox is counted again this often (ms) whatever its mark: a count a write moved without a mark stays wrong no longer. */
const FULL_COUNT_MS = 600_000;

export class PostgresInboxes implements SharedInboxes {
  #context: SharedContext;
  #unlisten: Array<() => Promise<void>> = [];
  /** Each inbox's pending count as last read, and the mark it was read at (see COUNT_MARK). */
  #counts = new Map<AgentName, { mark: string; pending: number }>();
  #fullCountAt = -Infinity;

  constructor(context: SharedContext) {
    this.#context = context;
  }

  createInbox(agent: AgentName, deliveredId: number): Promise<number> {
    return this.#context.read("create an inbox", async () => {
      // Created again: no longer an agent the operator removed (MessageStore.wasRemoved).
      const [row] = await this.#context.sql<{ delivered_id: number }[]>`
        WITH cleared AS (DELETE FROM interop_removed_agents WHERE agent = ${agent})
        INSERT INTO interop_inboxes (agent, delivered_id) VALUES (${agent}, ${deliveredId})
        ON CONFLICT (agent) DO UPDATE SET agent = excluded.agent
        RETURNING delivered_id`;
      return row.delivered_id;
    });
  }

  take(agent: AgentName, limit: number, upTo: number | undefined, lease?: string, leaseLost?: () => void): Promise<Envelope[]> {
    const own = lease ?? null;
    return this.#context.transaction("take messages", async (tx) => {
      const locked = lockInboxRow(tx, agent, own);
      const taken = tx<MessageRow[]>`
        WITH m AS (
          SELECT id FROM interop_messages
          WHERE recipient = ${agent} AND id > (SELECT delivered_id FROM interop_inboxes WHERE agent = ${agent})
            AND NOT polled AND id <= ${upTo ?? Number.MAX_SAFE_INTEGER}
            -- A lease's holder takes what it showed, awaited since or not: it has printed it.
            AND (${own}::text IS NOT NULL OR ${beforeAwaitedReply(tx, agent, tx`(SELECT delivered_id FROM interop_inboxes WHERE agent = ${agent})`)})
            AND NOT EXISTS (
              SELECT 1 FROM interop_inboxes WHERE agent = ${agent} AND lease_until > now() AND lease_id IS DISTINCT FROM ${own})
          ORDER BY id LIMIT ${limit}
        ), p AS (
          UPDATE interop_messages SET polled = true WHERE id IN (SELECT id FROM m)
          RETURNING ${tx.unsafe(MESSAGE_COLUMNS)}
        ), u AS (
          UPDATE interop_inboxes SET delivered_id = greatest(delivered_id, (SELECT max(id) FROM m)),
            version = version + CASE WHEN EXISTS (SELECT 1 FROM m) THEN 1 ELSE 0 END,
            lease_id = CASE WHEN lease_id = ${own} THEN NULL ELSE lease_id END,
            lease_until = CASE WHEN lease_id = ${own} THEN NULL ELSE lease_until END
          WHERE agent = ${agent} AND (EXISTS (SELECT 1 FROM m) OR lease_id = ${own})
        )
        SELECT * FROM p ORDER BY id`.execute();
      const [[inbox], rows] = await Promise.all([locked, taken]);
      if (inbox?.leased_for != null) throw inboxLeased(agent, inbox.leased_for);
      judgeOwnLease(agent, inbox, own, leaseLost);
      return rows.map(toEnvelope);
    });
  }

  lease(agent: AgentName, seconds: number, renewing: string | undefined, id: string = crypto.randomUUID()): Promise<string> {
    const { sql } = this.#context;
    const own = renewing ?? null;
    return this.#context.read("lease an inbox", async () => {
      for (;;) {
        // One UPDATE: it waits for a take holding the row, then judges the lease as that take left it.
        const [granted] = await sql<{ lease_id: string }[]>`
          UPDATE interop_inboxes SET
            lease_id = CASE WHEN lease_until > clock_timestamp() THEN lease_id ELSE ${id} END,
            lease_until = clock_timestamp() + make_interval(secs => ${seconds})
          FROM ${sql.unsafe(UNFLUSHED)}
          WHERE agent = ${agent} AND (lease_until IS NULL OR lease_until <= clock_timestamp() OR lease_id = ${own})
          RETURNING lease_id`;
        if (granted !== undefined) return granted.lease_id;
        const [inbox] = await sql<{ leased_for: number | null }[]>`
          SELECT CASE WHEN lease_until > clock_timestamp() THEN ceil(extract(epoch FROM lease_until - clock_timestamp()))::int END
            AS leased_for
          FROM interop_inboxes WHERE agent = ${agent}`;
        // Removed meanwhile on another broker: there is nothing to lease, nor to show.
        if (inbox === undefined) return crypto.randomUUID();
        if (inbox.leased_for !== null) throw inboxLeased(agent, inbox.leased_for);
        // The lease ended between the two statements: ask again.
      }
    });
  }

  endLease(agent: AgentName, id: string): Promise<void> {
    return this.#context.read("end a lease", async () => {
      await this.#context.sql`
        UPDATE interop_inboxes SET lease_id = NULL, lease_until = NULL
        FROM ${this.#context.sql.unsafe(UNFLUSHED)} WHERE agent = ${agent} AND lease_id = ${id}`;
    });
  }

  leaseLeft(agent: AgentName): Promise<number | undefined> {
    return this.#context.read("read an inbox's lease", async () => {
      const [row] = await this.#context.sql<{ left_ms: number }[]>`
        SELECT extract(epoch FROM lease_until - clock_timestamp())::float8 * 1000 AS left_ms
        FROM interop_inboxes WHERE agent = ${agent} AND lease_until > clock_timestamp()`;
      return row?.left_ms;
    });
  }

  takeOne(agent: AgentName, id: number, lease?: string, leaseLost?: () => void): Promise<boolean> {
    const own = lease ?? null;
    return this.#context.transaction("take a message", async (tx) => {
      const locked = lockInboxRow(tx, agent, own);
      const taken = tx<{ taken: boolean }[]>`
        WITH p AS (
          UPDATE interop_messages SET polled = true
          WHERE id = ${id} AND recipient = ${agent} AND NOT polled
            AND id > (SELECT delivered_id FROM interop_inboxes WHERE agent = ${agent})
            AND NOT EXISTS (
              SELECT 1 FROM interop_inboxes WHERE agent = ${agent} AND lease_until > now() AND lease_id IS DISTINCT FROM ${own})
          RETURNING id
        ), u AS (
          UPDATE interop_inboxes SET version = version + CASE WHEN EXISTS (SELECT 1 FROM p) THEN 1 ELSE 0 END,
            lease_id = CASE WHEN lease_id = ${own} THEN NULL ELSE lease_id END,
            lease_until = CASE WHEN lease_id = ${own} THEN NULL ELSE lease_until END
          WHERE agent = ${agent} AND (EXISTS (SELECT 1 FROM p) OR lease_id = ${own})
        )
        SELECT EXISTS (SELECT 1 FROM p) AS taken`.execute();
      const [[inbox], [result]] = await Promise.all([locked, taken]);
      if (inbox?.leased_for != null) throw inboxLeased(agent, inbox.leased_for);
      judgeOwnLease(agent, inbox, own, leaseLost);
      return result.taken;
    });
  }

  awaitReply(agent: AgentName, questionId: number, ms: number, id: string = crypto.randomUUID()): Promise<string> {
    const { sql, broker, awaited } = this.#context;
    return this.#context.read("record an awaited reply", async () => {
      awaited.held(id, ms);
      // The version moves too: a stream that read a page holding the reply before this commits fails its claim and
      // reads again, stopping before it. (A question's commit needs no bump: no one can have read its reply.)
      const waits = sql`(SELECT ${id}::uuid AS id, agent, ${questionId}::int8 AS question_id, ${ms}::float8 AS ms FROM bumped) w`;
      await sql`
        WITH bumped AS (UPDATE interop_inboxes SET version = version + 1 WHERE agent = ${agent} RETURNING agent),
          ${awaitedRecords(sql, waits, [agent], broker)}
        SELECT 1`;
      return id;
    });
  }

  endAwait(agent: AgentName, id: string): Promise<void> {
    const { sql } = this.#context;
    return this.#context.awaited.end(id, () =>
      this.#context.read("end an awaited reply", async () => {
        // Every broker's readers of the inbox read again, this one's too: they stopped before the reply. The
        // notification names no broker for that (each skips its own).
        await sql`
          WITH ended AS (DELETE FROM interop_awaited_replies WHERE id = ${id})
          SELECT pg_notify(${COMMITS}, ${notification("", [agent])})`;
      }));
  }

  pendingReplies(agent: AgentName, wanted: ReadonlyMap<number, number>, limit: number, maxChars = Infinity): Promise<Envelope[]> {
    const { sql } = this.#context;
    // Each question's own LIMIT: read by question ids alone, 300 replies of 1 MiB to one question were read to hand
    // its waiter the first.
    return this.#context.read("read replies", () =>
      readBounded(
        sql,
        sql`
          SELECT r.* FROM unnest(${[...wanted.keys()]}::bigint[], ${[...wanted.values()]}::int[]) AS q(id, wanted)
          CROSS JOIN LATERAL (
            SELECT ${sql.unsafe(MESSAGE_COLUMNS)} FROM interop_messages
            WHERE recipient = ${agent} AND reply_to = q.id AND NOT polled
              AND id > (SELECT delivered_id FROM interop_inboxes WHERE agent = ${agent})
            ORDER BY id LIMIT q.wanted
          ) r
          ORDER BY r.id LIMIT ${limit}`,
        limit,
        maxChars,
      ));
  }

  openStream(agent: AgentName, session: string): Promise<number> {
    const { broker } = this.#context;
    return this.#context.transaction("open a stream", async (tx) => {
      const [old] = await tx<{ delivered_id: number; stream_broker: string | null; stream_session: string | null }[]>`
        SELECT delivered_id, stream_broker, stream_session FROM interop_inboxes WHERE agent = ${agent} FOR NO KEY UPDATE`;
      await tx`
        UPDATE interop_inboxes SET stream_broker = ${broker}, stream_session = ${session}, stream_opened_at = now()
        WHERE agent = ${agent}`;
      if (old?.stream_session != null && old.stream_broker !== broker) {
        await tx`SELECT pg_notify(${REPLACED}, ${JSON.stringify({ b: old.stream_broker, a: agent, s: old.stream_session })})`;
      }
      return old?.delivered_id ?? 0;
    });
  }

  closeStream(agent: AgentName, session: string): Promise<void> {
    return this.#context.read("close a stream", async () => {
      await this.#context.sql`
        UPDATE interop_inboxes SET stream_broker = NULL, stream_session = NULL, stream_opened_at = NULL
        WHERE agent = ${agent} AND stream_session = ${session}`;
    });
  }

  version(agent: AgentName): Promise<{ version: number; deliveredId: number }> {
    return this.#context.read("read an inbox", async () => {
      const [row] = await this.#context.sql<{ version: number; delivered_id: number }[]>`
        SELECT version, delivered_id FROM interop_inboxes WHERE agent = ${agent}`;
      return { version: row?.version ?? 0, deliveredId: row?.delivered_id ?? 0 };
    });
  }

  claim(agent: AgentName, session: string | undefined, version: number, upTo: number, polledAfter?: number): Promise<Claim> {
    const { sql } = this.#context;
    const stream = session ?? null;
    const polled = polledAfter ?? null;
    return this.#context.read("claim messages", async () => {
      // One statement: the mark of what a poll took lands with the cursor's move, or neither does.
      const [{ claimed }] = await sql<{ claimed: number }[]>`
        WITH claimed AS (
          UPDATE interop_inboxes SET delivered_id = greatest(delivered_id, ${upTo}), version = version + 1
          WHERE agent = ${agent} AND version = ${version} AND (${stream}::uuid IS NULL OR stream_session = ${stream})
          RETURNING agent
        ), marked AS (
          UPDATE interop_messages SET polled = true
          WHERE ${polled}::bigint IS NOT NULL AND recipient IN (SELECT agent FROM claimed) AND id > ${polled} AND id <= ${upTo}
            AND NOT polled
        )
        SELECT count(*)::int AS claimed FROM claimed`;
      if (claimed === 1) return "claimed";
      const [row] = await sql<{ stream_session: string | null }[]>`SELECT stream_session FROM interop_inboxes WHERE agent = ${agent}`;
      if (row === undefined) return "removed";
      return session === undefined || row.stream_session === session ? "moved" : "replaced";
    });
  }

  /**
   * Deletes the inbox (see `MessageStore.removeInbox`) and tells the other brokers. Its row goes first: a publish
   * holds the rows of its recipients until its COMMIT, so the removal comes after it (and its next statements see its
   * messages) or before it (and the publish finds no row: refused).
   */
  removeInbox(agent: AgentName, refuse?: (holds: InboxHolds) => void): Promise<number> {
    const { broker } = this.#context;
    return this.#context.transaction("remove an inbox", async (tx) => {
      const [row] = await tx<{ delivered_id: number; stream_elsewhere: boolean }[]>`
        DELETE FROM interop_inboxes i WHERE agent = ${agent}
        RETURNING delivered_id, i.stream_broker <> ${broker} AND EXISTS (
          SELECT 1 FROM interop_brokers b WHERE b.id = i.stream_broker AND ${tx.unsafe(ALIVE)}) AS stream_elsewhere`;
      if (row !== undefined && refuse !== undefined) {
        const [{ pending }] = await tx<{ pending: number }[]>`
          SELECT count(*)::int AS pending FROM interop_messages
          WHERE recipient = ${agent} AND id > ${row.delivered_id} AND NOT polled`;
        refuse({ pending, streamElsewhere: row.stream_elsewhere === true });
      }
      const [removed] = await Promise.all([
        tx`DELETE FROM interop_messages WHERE recipient = ${agent}`.execute(),
        tx`DELETE FROM interop_dead_letters WHERE agent = ${agent}`.execute(),
        // The waits its questions recorded: kept, they held replies to an inbox made again under the name.
        tx`DELETE FROM interop_awaited_replies WHERE agent = ${agent}`.execute(),
        tx`INSERT INTO interop_removed_agents (agent, removed_at) VALUES (${agent}, ${Date.now()})
          ON CONFLICT (agent) DO UPDATE SET removed_at = excluded.removed_at`.execute(),
        tx`SELECT pg_notify(${REMOVED}, ${JSON.stringify({ b: broker, a: agent })})`.execute(),
      ]);
      return removed.count;
    });
  }

  async watch(wake: Wake, replaced: (agent: AgentName, session: string) => void, removed: (agent: AgentName) => void): Promise<void> {
    const { sql, broker } = this.#context;
    const commits = await sql.listen(COMMITS, (payload) => {
      try {
        const { b, a } = JSON.parse(payload) as { b: string; a: AgentName[] | "*" };
        if (b !== broker) wake(a === "*" ? undefined : a);
      } catch {
        wake(undefined);
      }
    }, () => wake(undefined));
    this.#unlisten.push(commits.unlisten);
    const replacements = await sql.listen(REPLACED, (payload) => {
      const { b, a, s } = JSON.parse(payload) as { b: string; a: AgentName; s: string };
      if (b === broker) replaced(a, s);
    });
    this.#unlisten.push(replacements.unlisten);
    const removals = await sql.listen(REMOVED, (payload) => {
      const { b, a } = JSON.parse(payload) as { b: string; a: AgentName };
      if (b !== broker) removed(a);
    });
    this.#unlisten.push(removals.unlisten);
    // An outage ended: what other brokers committed meanwhile, and what a read that met the outage missed, is read
    // now. The broker ignores wake-ups during an outage, and the listener's own on reconnect may come before its end.
    this.#context.onBack(() => wake(undefined));
  }

  cluster(counting = false): Promise<ClusterView> {
    const { sql, broker } = this.#context;
    return this.#context.read("read the brokers", async () => {
      const full = counting && performance.now() - this.#fullCountAt >= FULL_COUNT_MS;
      const known = full ? new Map<AgentName, { mark: string; pending: number }>() : this.#counts;
      // The mark and the count in one statement: both from one snapshot. A read without the counts joins nothing.
      // Dead letters are few, and their index's range per inbox is counted each time.
      const counts = counting
        ? sql`${sql.unsafe(COUNT_MARK)} AS mark,
            CASE WHEN ${sql.unsafe(COUNT_MARK)} IS DISTINCT FROM k.mark THEN ${sql.unsafe(PENDING_COUNT)} END AS pending,
            ${sql.unsafe(DEAD_LETTER_COUNT)} AS dead_letters
          FROM interop_inboxes i LEFT JOIN interop_inbox_heads h ON h.agent = i.agent
            LEFT JOIN unnest(${[...known.keys()]}::text[], ${[...known.values()].map((count) => count.mark)}::text[]) AS k (agent, mark)
              ON k.agent = i.agent`
        : sql`NULL AS mark, NULL::int AS pending, NULL::int AS dead_letters FROM interop_inboxes i`;
      const inboxes = await sql<{
        agent: AgentName;
        delivered_id: number;
        stream_broker: string | null;
        mark: string;
        pending: number | null;
        dead_letters: number | null;
      }[]>`
        SELECT i.agent, i.delivered_id, i.stream_broker, ${counts}`;
      const brokers = await sql<Array<{
        id: string;
        pid: number;
        host: string;
        listening: string | null;
        version: string;
        started_at: Date;
        heartbeat_at: Date;
        alive: boolean;
      }>>`
        SELECT id, pid, host, listening, version, started_at, heartbeat_at, ${sql.unsafe(ALIVE)} AS alive
        FROM interop_brokers b ORDER BY started_at, id`;
      return {
        streams: new Map(inboxes.flatMap((row) => row.stream_broker === null ? [] : [[row.agent, row.stream_broker]])),
        cursors: new Map(inboxes.map((row) => [row.agent, row.delivered_id])),
        pending: counting ? this.#counted(inboxes, known, full) : undefined,
        deadLetters: counting ? new Map(inboxes.map((row) => [row.agent, row.dead_letters!])) : undefined,
        brokers: brokers.map((row) => ({
          id: row.id,
          pid: row.pid,
          host: row.host,
          listening: row.listening,
          version: row.version,
          startedAt: row.started_at.getTime(),
          heartbeatAt: row.heartbeat_at.getTime(),
          alive: row.alive,
          self: row.id === broker,
        })),
      };
    });
  }

  /**
   * Each inbox's pending count: read now where its mark moved since `known` (the counts the query was given), else
   * as read then; remembered for the next count.
   */
  #counted(
    inboxes: Array<{ agent: AgentName; mark: string; pending: number | null }>,
    known: Map<AgentName, { mark: string; pending: number }>,
    full: boolean,
  ): Map<AgentName, number> {
    const counts = new Map(inboxes.map((row) => [row.agent, { mark: row.mark, pending: row.pending ?? known.get(row.agent)!.pending }]));
    this.#counts = counts;
    if (full) this.#fullCountAt = performance.now();
    return new Map([...counts].map(([agent, count]) => [agent, count.pending]));
  }

  /** Stops listening (the store is closing). */
  async close(): Promise<void> {
    for (const unlisten of this.#unlisten) await unlisten().catch(() => {});
  }
}

/** The payload of a commit's notification: this broker and the inboxes it wrote to. */
export function notification(broker: string, recipients: AgentName[]): string {
  const text = JSON.stringify({ b: broker, a: recipients });
  return text.length <= MAX_NOTIFY_BYTES ? text : JSON.stringify({ b: broker, a: "*" });
}

/**
 * A take's first statement: the inbox's cursor row locked, so that takers, claimers and leasers of one inbox go one at
 * a time and the take's next statement (sent at once, behind it) sees what the one before committed; with how many
 * seconds another reader's lease holds the inbox (null: none) and whether `own` holds it. NO KEY UPDATE, as a
 * claim's UPDATE takes: FOR UPDATE would also wait for the publishes to the inbox, which hold its row (FOR KEY SHARE)
 * until their COMMIT. Both statements judge the lease by the transaction's now(): the one refuses what the other
 * leaves untaken.
 */
function lockInboxRow(tx: TransactionSql, agent: AgentName, own: string | null) {
  return tx<{ leased_for: number | null; held: boolean }[]>`
    SELECT CASE WHEN lease_until > now() AND lease_id IS DISTINCT FROM ${own} THEN ceil(extract(epoch FROM lease_until - now()))::int END
      AS leased_for, coalesce(lease_until > now() AND lease_id = ${own}, false) AS held
    FROM interop_inboxes WHERE agent = ${agent} FOR NO KEY UPDATE`.execute();
}

/**
 * What a take under the caller's lease (`own`) makes of the inbox's row as it locked it: gone, the operator removed
 * the agent (on any broker, which this one may not have heard of yet) after the holder was shown what it takes; its
 * lease no longer held (expired), `leaseLost` is told and the take goes on.
 */
function judgeOwnLease(agent: AgentName, inbox: { held: boolean } | undefined, own: string | null, leaseLost: (() => void) | undefined): void {
  if (own === null) return;
  if (inbox === undefined) throw agentRemoved(agent);
  if (!inbox.held) leaseLost?.();
}
