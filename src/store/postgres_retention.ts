/** The PostgreSQL store's retention: delivered messages past their time are deleted, undelivered ones past their TTL expire. */
import type { PendingQuery, Row, TransactionSql } from "postgres";
import type { AgentName } from "../message.ts";
import type { ExpiryOptions, RetentionStep } from "./store.ts";

/**
 * Deletes each inbox's delivered messages created before `cutoff`, up to its id in `deliveredBefore` (an inbox not in
 * it keeps all), within a step's bound (see `MessageStore.prune`); `changed` holds each inbox's new purge mark, the
 * last deleted message that was not taken.
 */
export async function pruneDelivered(
  tx: TransactionSql,
  cutoff: number,
  deliveredBefore: Map<AgentName, number>,
  limit: number,
): Promise<RetentionStep> {
  const agents = [...deliveredBefore.keys()];
  const given = tx`unnest(${agents}::text[], ${agents.map((agent) => deliveredBefore.get(agent)!)}::int8[]) AS d (agent, bound)`;
  const locked = await lockInboxes(tx, tx`
    SELECT i.agent FROM ${given} JOIN interop_inboxes i ON i.agent = d.agent WHERE EXISTS (SELECT 1 FROM interop_messages m
      WHERE m.recipient = i.agent AND m.id <= least(i.delivered_id, d.bound) AND m.created_at < ${cutoff})`);
  if (locked.length === 0) return { changed: new Map(), more: false };
  // Each inbox's oldest `limit` up to its bound (up to `last`; its purge mark moves to `mark`, the last not taken), in
  // the locks' order, no inbox after the one whose messages reach `limit`.
  const rows = await tx<Array<{ agent: AgentName; mark: number | null; more: boolean }>>`
    WITH bounds AS (
      SELECT i.agent, (SELECT max(m.id) FROM interop_messages m
        WHERE m.recipient = i.agent AND m.id <= least(i.delivered_id, d.bound) AND m.created_at < ${cutoff}) AS up_to
      FROM ${given} JOIN interop_inboxes i ON i.agent = d.agent WHERE i.agent = ANY(${locked}::text[])
    ), found AS (
      SELECT b.agent, b.up_to, f.span, f.last, f.mark FROM bounds b CROSS JOIN LATERAL (
        SELECT count(*) AS span, max(o.id) AS last, max(o.id) FILTER (WHERE NOT o.polled) AS mark FROM (SELECT m.id, m.polled
          FROM interop_messages m WHERE m.recipient = b.agent AND m.id <= b.up_to ORDER BY m.id LIMIT ${limit}) AS o) AS f
      WHERE f.span > 0
    ), ${budget(tx, limit)}, removed AS (
      DELETE FROM interop_messages m USING chosen c WHERE m.recipient = c.agent AND m.id <= c.last
    ), marked AS (
      UPDATE interop_inboxes i SET purged_id = greatest(i.purged_id, c.mark) FROM chosen c WHERE i.agent = c.agent AND c.mark IS NOT NULL
    )
    SELECT agent, mark, last < up_to OR EXISTS (SELECT 1 FROM budget WHERE earlier >= ${limit}) AS more FROM chosen`;
  return {
    changed: new Map(rows.filter((row) => row.mark !== null).map((row) => [row.agent, row.mark!])),
    more: rows.some((row) => row.more),
  };
}

/**
 * Deletes the undelivered messages created before their inbox's cutoff (above the cursor, or above `delivered` where
 * this broker's is further), within a step's bound (see `MessageStore.expire`); `changed` holds how many expired per
 * inbox. The purge mark stays (see `MessageStore.expire`). An inbox a reader holds a lease on (`/poll?peek=1&lease=S`,
 * on any broker) keeps them until its cutoff in `leasedCutoffs` (none there: until the lease ends): the reader was
 * shown them and will take them. Checked once its row is locked, which a lease is granted under: none is granted
 * until this commits.
 */
export async function expireUndelivered(
  tx: TransactionSql,
  cutoffs: Map<AgentName, number>,
  { delivered = new Map(), taking: spared = [], leasedCutoffs = new Map(), limit }: ExpiryOptions & { limit: number },
): Promise<RetentionStep> {
  const agents = await lockInboxes(tx, tx`SELECT agent FROM interop_inboxes WHERE agent = ANY(${[...cutoffs.keys()]}::text[])`);
  if (agents.length === 0) return { changed: new Map(), more: false };
  // Each inbox's oldest `limit` past its cutoff above its cursor, taken (polled, the cursor behind) or not, in the
  // locks' order, no inbox after the one whose messages reach `limit`; the untaken ones among them count as expired.
  // The taken ones go with the untaken around them, as far as the last untaken one: the whole share when there are
  // more past it (`beyond`; so a share of taken ones alone goes only to reach an untaken one). That one is looked for
  // from the newest down: a search from the share up would go through all the taken ones left at every step.
  const rows = await tx<Array<{ agent: AgentName; count: number; more: boolean }>>`
    WITH inboxes AS (
      SELECT i.agent, greatest(i.delivered_id, c.delivered) AS after,
        CASE WHEN i.lease_until > clock_timestamp() THEN c.leased_cutoff ELSE c.cutoff END AS cutoff
      FROM unnest(${agents}::text[], ${agents.map((agent) => cutoffs.get(agent)!)}::int8[],
        ${agents.map((agent) => leasedCutoffs.get(agent) ?? 0)}::int8[],
        ${agents.map((agent) => delivered.get(agent) ?? 0)}::int8[]) AS c (agent, cutoff, leased_cutoff, delivered)
      JOIN interop_inboxes i ON i.agent = c.agent
    ), shares AS (
      SELECT i.agent, i.after, i.cutoff, f.*, f.span = ${limit} AND (
        SELECT m.id FROM interop_messages m WHERE m.recipient = i.agent AND m.id > f.last AND NOT m.polled
          AND m.created_at < i.cutoff AND m.id <> ALL(${spared}::int8[]) ORDER BY m.id DESC LIMIT 1) IS NOT NULL AS beyond
      FROM inboxes i CROSS JOIN LATERAL (
        SELECT count(*) AS span, count(*) FILTER (WHERE NOT o.polled) AS count, max(o.id) AS last,
          max(o.last_untaken) AS last_untaken, count(*) FILTER (WHERE o.id <= o.last_untaken) AS untaken_span
        FROM (SELECT w.*, max(w.id) FILTER (WHERE NOT w.polled) OVER () AS last_untaken FROM (
          SELECT m.id, m.polled FROM interop_messages m WHERE m.recipient = i.agent AND m.id > i.after
            AND m.created_at < i.cutoff AND m.id <> ALL(${spared}::int8[]) ORDER BY m.id LIMIT ${limit}) AS w) AS o) AS f
    ), found AS (
      SELECT agent, after, cutoff, count, beyond, CASE WHEN beyond THEN last ELSE last_untaken END AS last,
        CASE WHEN beyond THEN span ELSE untaken_span END AS span
      FROM shares WHERE count > 0 OR beyond
    ), ${budget(tx, limit)}, removed AS (
      DELETE FROM interop_messages m USING chosen c
      WHERE m.recipient = c.agent AND m.id > c.after AND m.id <= c.last AND m.created_at < c.cutoff AND m.id <> ALL(${spared}::int8[])
    ), counted AS (
      UPDATE interop_inboxes i SET expired = i.expired + c.count FROM chosen c WHERE i.agent = c.agent AND c.count > 0
    )
    SELECT agent, count::int4 AS count, beyond OR EXISTS (SELECT 1 FROM budget WHERE earlier >= ${limit}) AS more FROM chosen`;
  return {
    changed: new Map(rows.filter((row) => row.count > 0).map((row) => [row.agent, row.count])),
    more: rows.some((row) => row.more),
  };
}

/**
 * Moves each inbox's cursor over the messages right above it taken out of order (see `MessageStore.passTaken`), from
 * its stored cursor or the one in `delivered` where this broker's is further; the version moves with it, as a take's
 * does (a stream's claim of a page read before then is refused and reads again). Only the inboxes whose first message
 * above the cursor is taken are locked. No message of an inbox commits below its run afterwards: a writer holds the
 * inbox's head until its ids are visible, so what is visible of an inbox is a prefix of its ids.
 */
export async function passTaken(tx: TransactionSql, delivered: Map<AgentName, number>): Promise<Map<AgentName, number>> {
  const agents = [...delivered.keys()];
  const after = tx`SELECT i.agent, greatest(i.delivered_id, coalesce(d.delivered, 0)) AS after FROM interop_inboxes i
    LEFT JOIN unnest(${agents}::text[], ${agents.map((agent) => delivered.get(agent)!)}::int8[]) AS d (agent, delivered) ON d.agent = i.agent`;
  const locked = await lockInboxes(tx, tx`SELECT a.agent FROM (${after}) a WHERE (SELECT m.polled FROM interop_messages m
    WHERE m.recipient = a.agent AND m.id > a.after ORDER BY m.id LIMIT 1)`);
  if (locked.length === 0) return new Map();
  const rows = await tx<Array<{ agent: AgentName; delivered_id: number }>>`
    WITH runs AS (
      SELECT a.agent, (SELECT max(m.id) FROM interop_messages m WHERE m.recipient = a.agent AND m.id > a.after AND m.id < coalesce(
        (SELECT u.id FROM interop_messages u WHERE u.recipient = a.agent AND u.id > a.after AND NOT u.polled ORDER BY u.id LIMIT 1),
        ${Number.MAX_SAFE_INTEGER})) AS up_to
      FROM (${after}) a WHERE a.agent = ANY(${locked}::text[])
    )
    UPDATE interop_inboxes i SET delivered_id = r.up_to, version = i.version + 1 FROM runs r
    WHERE i.agent = r.agent AND r.up_to > i.delivered_id
    RETURNING i.agent, i.delivered_id`;
  return new Map(rows.map((row) => [row.agent, row.delivered_id]));
}

/**
 * A retention step's bound over `found` (an inbox's `span`, the messages it would delete): `budget` holds how many the
 * inboxes before each hold (`earlier`, in the order the locks were taken), `chosen` the inboxes before `limit` is reached.
 */
function budget(tx: TransactionSql, limit: number): PendingQuery<Row[]> {
  return tx`budget AS (
      SELECT *, coalesce(sum(span) OVER (ORDER BY agent COLLATE "C" ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS earlier
      FROM found
    ), chosen AS (SELECT * FROM budget WHERE earlier < ${limit})`;
}

/**
 * Locks the rows of the inboxes `which` selects, in one order, and resolves with those still there. Retention takes
 * the inbox rows before the messages, as a removal does (its inbox row, then its messages), and in the order every
 * broker's retention takes them. Within one statement the order of a data-modifying WITH and the main query is left
 * unspecified by PostgreSQL (15 runs the DELETE after the UPDATE); a retention that took messages first would meet a
 * removal in the opposite order, a deadlock broken after `deadlock_timeout` (1 s) by failing one of the two.
 */
async function lockInboxes(tx: TransactionSql, which: PendingQuery<Row[]>): Promise<AgentName[]> {
  const rows = await tx<{ agent: AgentName }[]>`
    SELECT agent FROM interop_inboxes WHERE agent IN (${which}) ORDER BY agent COLLATE "C" FOR NO KEY UPDATE`;
  return rows.map((row) => row.agent);
}
