/**
 * The SQLite store's retention: delivered messages past their time are deleted, undelivered ones past their TTL
 * expire, and cursors move past what was taken. Each runs in the caller's transaction, after the tail's join: every
 * row it reads is in the per-recipient index.
 */
import type { DatabaseSync } from "node:sqlite";
import type { AgentName } from "../message.ts";
import type { ExpiryOptions, RetentionStep } from "./store.ts";

/** A step of retention, and the ids its deletions covered (their unused shared payloads go too). */
export interface SqliteRetentionStep extends RetentionStep {
  deleted: IdRange;
}

/** See `MessageStore.prune`. */
export function pruneDelivered(db: DatabaseSync, cutoff: number, deliveredBefore: Map<AgentName, number>, limit: number): SqliteRetentionStep {
  const changed = new Map<AgentName, number>();
  const last = db.prepare("SELECT max(id) AS upto FROM messages WHERE recipient = ? AND indexed = 1 AND id <= ? AND created_at < ?");
  const oldest = db.prepare("SELECT min(id) AS first FROM messages WHERE recipient = ? AND indexed = 1");
  // The inbox's `limit`-th message up to its bound: this step stops there.
  const nth = db.prepare("SELECT id FROM messages WHERE recipient = ? AND indexed = 1 AND id <= ? ORDER BY id LIMIT 1 OFFSET ?");
  const deleted = new IdRange();
  // The purge mark: the last of them a resume would replay (not taken), found among the step's share alone.
  const replayed = db.prepare("SELECT max(id) AS mark FROM messages WHERE recipient = ? AND indexed = 1 AND id <= ? AND polled = 0");
  const remove = db.prepare("DELETE FROM messages WHERE recipient = ? AND indexed = 1 AND id <= ?");
  const record = db.prepare("UPDATE inboxes SET purged_id = max(purged_id, ?) WHERE agent = ?");
  let total = 0;
  let more = false;
  for (const inbox of retentionInboxes(db)) {
    const bound = deliveredBefore.get(inbox.agent);
    if (bound === undefined) continue;
    const { agent } = inbox;
    let { upto } = last.get(agent, Math.min(inbox.delivered_id, bound), cutoff) as { upto: number | null };
    if (upto === null) continue;
    if (total >= limit) {
      more = true;
      break;
    }
    const stop = nth.get(agent, upto, limit - 1) as { id: number } | undefined;
    if (stop !== undefined && stop.id < upto) {
      upto = stop.id;
      more = true;
    }
    deleted.add((oldest.get(agent) as { first: number }).first, upto);
    const { mark } = replayed.get(agent, upto) as { mark: number | null };
    total += Number(remove.run(agent, upto).changes);
    if (mark === null) continue;
    record.run(mark, agent);
    changed.set(agent, mark);
  }
  return { changed, more, deleted };
}

/** See `MessageStore.expire`. */
export function expireUndelivered(
  db: DatabaseSync,
  cutoffs: Map<AgentName, number>,
  { delivered = new Map(), taking = [], limit }: Required<Pick<ExpiryOptions, "limit">> & ExpiryOptions,
): SqliteRetentionStep {
  const changed = new Map<AgentName, number>();
  // What a take still committing holds is left out of all of it (a JSON array: json_each reads it); asked only
  // when there is one, as it costs a third of the step's time.
  const spared = taking.length === 0 ? [] : [JSON.stringify(taking)];
  const expirable = `recipient = ? AND indexed = 1 AND created_at < ?${taking.length === 0 ? "" : " AND id NOT IN (SELECT value FROM json_each(?))"}`;
  // The step's share of the inbox: its oldest `limit` past the cutoff above the cursor, taken or not.
  const share = db.prepare(`SELECT coalesce(sum(polled = 0), 0) AS count, max(id) AS upto,
      max(CASE WHEN polled = 0 THEN id END) AS lastUntaken, count(*) = ? AS full
    FROM (SELECT id, polled FROM messages WHERE ${expirable} AND id > ? ORDER BY id LIMIT ?)`);
  // Looked for from the newest down: a share of taken ones alone stands before the untaken one it reaches for,
  // and a search from the share up would go through all the taken ones left at every step.
  const untakenAfter = db.prepare(`SELECT id FROM messages WHERE ${expirable} AND id > ? AND polled = 0 ORDER BY id DESC LIMIT 1`);
  const remove = db.prepare(`DELETE FROM messages WHERE ${expirable} AND id > ? AND id <= ?`);
  const record = db.prepare("UPDATE inboxes SET expired = expired + ? WHERE agent = ?");
  const deleted = new IdRange();
  let total = 0;
  let more = false;
  for (const { agent, delivered_id } of retentionInboxes(db)) {
    const cutoff = cutoffs.get(agent);
    if (cutoff === undefined) continue;
    const after = Math.max(delivered_id, delivered.get(agent) ?? 0);
    const { count, upto, lastUntaken, full } = share.get(limit, agent, cutoff, ...spared, after, limit) as {
      count: number;
      upto: number | null;
      lastUntaken: number | null;
      full: number;
    };
    if (upto === null) continue;
    // The taken ones go with the untaken around them, as far as the last untaken one: the whole share when
    // there are more past it (so a share of taken ones alone goes only to reach an untaken one).
    const beyond = full === 1 && untakenAfter.get(agent, cutoff, ...spared, upto) !== undefined;
    if (count === 0 && !beyond) continue;
    if (total >= limit) {
      more = true;
      break;
    }
    const end = beyond ? upto : lastUntaken!;
    total += Number(remove.run(agent, cutoff, ...spared, after, end).changes);
    if (count > 0) {
      record.run(count, agent);
      changed.set(agent, count);
    }
    deleted.add(after + 1, end);
    more ||= beyond;
  }
  return { changed, more, deleted };
}

/** See `MessageStore.passTaken`. */
export function passTaken(db: DatabaseSync, delivered: Map<AgentName, number>): Map<AgentName, number> {
  // The inboxes whose first message above the stored cursor is taken, in one statement (one per inbox cost 3.8
  // µs each, 38 ms a pass over 10,000; the broker's cursors given as JSON to join made it quadratic). Most have
  // nothing there, or an untaken message first. One whose cursor only the broker's memory moved yet waits for
  // the next pass.
  const found = db.prepare(`SELECT agent, delivered_id FROM inboxes i WHERE (
      SELECT polled FROM messages WHERE recipient = i.agent AND indexed = 1 AND id > i.delivered_id ORDER BY id LIMIT 1) = 1`)
    .all() as Array<{ agent: AgentName; delivered_id: number }>;
  // The run's end: the last message before the first untaken one (walked once: the next pass starts past it).
  const runEnd = db.prepare(`SELECT max(id) AS upto FROM messages WHERE recipient = ? AND indexed = 1 AND id > ? AND id < coalesce(
      (SELECT id FROM messages WHERE recipient = ? AND indexed = 1 AND id > ? AND polled = 0 ORDER BY id LIMIT 1), ?)`);
  const record = db.prepare("UPDATE inboxes SET delivered_id = ? WHERE agent = ?");
  const moved = new Map<AgentName, number>();
  for (const { agent, delivered_id } of found) {
    const after = Math.max(delivered_id, delivered.get(agent) ?? 0);
    const { upto } = runEnd.get(agent, after, agent, after, Number.MAX_SAFE_INTEGER) as { upto: number | null };
    if (upto === null) continue;
    record.run(upto, agent);
    moved.set(agent, upto);
  }
  return moved;
}

/**
 * The inboxes a retention step goes through, in PostgreSQL's order (its locks'): each inbox's oldest `limit` at
 * most, and no inbox after the one whose messages reach `limit` (see `MessageStore.prune`).
 */
function retentionInboxes(db: DatabaseSync): Array<{ agent: AgentName; delivered_id: number }> {
  return db.prepare("SELECT agent, delivered_id FROM inboxes ORDER BY agent").all() as Array<{ agent: AgentName; delivered_id: number }>;
}

/** The smallest range of ids holding every range added: what a deletion of messages covered. */
export class IdRange {
  from = Infinity;
  upTo = -Infinity;

  add(from: number, upTo: number): this {
    this.from = Math.min(this.from, from);
    this.upTo = Math.max(this.upTo, upTo);
    return this;
  }
}
