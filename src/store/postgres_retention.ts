/** The PostgreSQL store's retention: delivered messages past their time are deleted, undelivered ones past their TTL expire. */
import type { PendingQuery, Row, TransactionSql } from "postgres";
import type { AgentName } from "../message.ts";

/**
 * Deletes each inbox's delivered messages created before `cutoff`, up to its id in `deliveredBefore` (an inbox not in
 * it keeps all); resolves with each inbox's new purge mark.
 */
export async function pruneDelivered(
  tx: TransactionSql,
  cutoff: number,
  deliveredBefore: Map<AgentName, number>,
): Promise<Map<AgentName, number>> {
  const agents = [...deliveredBefore.keys()];
  const given = tx`unnest(${agents}::text[], ${agents.map((agent) => deliveredBefore.get(agent)!)}::int8[]) AS d (agent, bound)`;
  const locked = await lockInboxes(tx, tx`
    SELECT i.agent FROM ${given} JOIN interop_inboxes i ON i.agent = d.agent WHERE EXISTS (SELECT 1 FROM interop_messages m
      WHERE m.recipient = i.agent AND m.id <= least(i.delivered_id, d.bound) AND m.created_at < ${cutoff})`);
  if (locked.length === 0) return new Map();
  const rows = await tx<Array<{ agent: AgentName; up_to: number }>>`
    WITH bounds AS (
      SELECT i.agent, (SELECT max(m.id) FROM interop_messages m
        WHERE m.recipient = i.agent AND m.id <= least(i.delivered_id, d.bound) AND m.created_at < ${cutoff}) AS up_to
      FROM ${given} JOIN interop_inboxes i ON i.agent = d.agent WHERE i.agent = ANY(${locked}::text[])
    ), removed AS (
      DELETE FROM interop_messages m USING bounds b WHERE m.recipient = b.agent AND m.id <= b.up_to
    )
    UPDATE interop_inboxes i SET purged_id = greatest(i.purged_id, b.up_to)
    FROM bounds b WHERE i.agent = b.agent AND b.up_to IS NOT NULL
    RETURNING i.agent, b.up_to`;
  return new Map(rows.map((row) => [row.agent, row.up_to]));
}

/**
 * Deletes the undelivered messages created before their inbox's cutoff (above the cursor, or above `delivered` where
 * this broker's is further); resolves with how many expired per inbox. The purge mark stays (see `MessageStore.expire`).
 * An inbox a reader holds a lease on (`/poll?peek=1&lease=S`, on any broker) keeps them until its cutoff in
 * `leasedCutoffs` (none there: until the lease ends): the reader was shown them and will take them. Checked once
 * its row is locked, which a lease is granted under: none is granted until this commits.
 */
export async function expireUndelivered(
  tx: TransactionSql,
  cutoffs: Map<AgentName, number>,
  delivered: Map<AgentName, number>,
  leasedCutoffs: Map<AgentName, number>,
): Promise<Map<AgentName, number>> {
  const agents = await lockInboxes(tx, tx`SELECT agent FROM interop_inboxes WHERE agent = ANY(${[...cutoffs.keys()]}::text[])`);
  if (agents.length === 0) return new Map();
  const rows = await tx<Array<{ agent: AgentName; count: number }>>`
    WITH inboxes AS (
      SELECT i.agent, greatest(i.delivered_id, c.delivered) AS after,
        CASE WHEN i.lease_until > clock_timestamp() THEN c.leased_cutoff ELSE c.cutoff END AS cutoff
      FROM unnest(${agents}::text[], ${agents.map((agent) => cutoffs.get(agent)!)}::int8[],
        ${agents.map((agent) => leasedCutoffs.get(agent) ?? 0)}::int8[],
        ${agents.map((agent) => delivered.get(agent) ?? 0)}::int8[]) AS c (agent, cutoff, leased_cutoff, delivered)
      JOIN interop_inboxes i ON i.agent = c.agent
    ), found AS (
      SELECT i.agent, i.after, i.cutoff, count(*) AS count, max(m.id) AS up_to
      FROM inboxes i
      JOIN interop_messages m ON m.recipient = i.agent AND m.id > i.after AND NOT m.polled AND m.created_at < i.cutoff
      GROUP BY i.agent, i.after, i.cutoff
    ), removed AS (
      DELETE FROM interop_messages m USING found f
      WHERE m.recipient = f.agent AND m.id > f.after AND m.id <= f.up_to AND m.created_at < f.cutoff
    )
    UPDATE interop_inboxes i SET expired = i.expired + f.count
    FROM found f WHERE i.agent = f.agent
    RETURNING i.agent, f.count`;
  return new Map(rows.map((row) => [row.agent, row.count]));
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
