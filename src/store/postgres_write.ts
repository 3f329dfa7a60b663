/** The PostgreSQL store's commit: a batch of messages and inbox updates in one transaction, in commit order per inbox. */
import type { Fragment, TransactionSql } from "postgres";
import { InteropError } from "../errors.ts";
import type { Envelope } from "../message.ts";
import { storedPayload } from "./message_row.ts";
import { awaitedRecords } from "./postgres_awaited.ts";
import { LOCK_SPACE } from "./postgres_schema.ts";
import { COMMITS, notification } from "./postgres_shared.ts";
import type { InboxUpdate, WriteBatch } from "./store.ts";

/**
 * Writes `batch` in `tx` (a transaction of broker `broker`, which its notification names) and resolves with the
 * stored envelopes, in the order given.
 */
export async function writeBatch(tx: TransactionSql, batch: WriteBatch, broker: string): Promise<Envelope[]> {
  // Every parameter is a value or null: an undefined one fails in the client while the statements are pipelined,
  // which (postgres 3.4.9) leaves the transaction hanging instead of failing it.
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
  const updates = mergeByAgent(batch.inboxes);
  const created = updates.filter((u) => u.create);
  const noted = updates.filter((u) => !u.create);
  const creating = created.length === 0 ? undefined : tx`
    INSERT INTO interop_inboxes (agent, delivered_id, last_seen)
    SELECT agent, coalesce(delivered, 0), seen
    FROM unnest(${created.map((u) => u.agent)}::text[], ${created.map((u) => u.deliveredId ?? null)}::int8[],
      ${created.map((u) => u.lastSeen ?? null)}::int8[]) AS u (agent, delivered, seen)
    ON CONFLICT (agent) DO UPDATE SET
      delivered_id = greatest(interop_inboxes.delivered_id, excluded.delivered_id),
      last_seen = coalesce(excluded.last_seen, interop_inboxes.last_seen)`.execute();
  // Created again: no longer agents the operator removed (MessageStore.wasRemoved).
  const cleared = created.length === 0 ? undefined : tx`
    DELETE FROM interop_removed_agents WHERE agent = ANY(${created.map((u) => u.agent)}::text[])`.execute();
  // A note (a cursor, a last-seen time) changes an inbox that exists, never creates one: queued before another
  // broker removed the inbox, it would bring it back (and a publish riding with it would be stored there). An
  // UPDATE waits for a removal that holds the row and then skips it; an upsert would insert it again. Its rows are
  // locked first, in one order (an UPDATE's join takes them in whatever order its plan reads them).
  const noting = noted.length === 0 ? undefined : Promise.all([
    tx`SELECT 1 FROM interop_inboxes WHERE agent = ANY(${noted.map((u) => u.agent)}::text[]) ORDER BY agent COLLATE "C" FOR NO KEY UPDATE`
      .execute(),
    tx`
      UPDATE interop_inboxes i SET
        delivered_id = greatest(i.delivered_id, u.delivered),
        last_seen = coalesce(u.seen, i.last_seen)
      FROM unnest(${noted.map((u) => u.agent)}::text[], ${noted.map((u) => u.deliveredId ?? null)}::int8[],
        ${noted.map((u) => u.lastSeen ?? null)}::int8[]) AS u (agent, delivered, seen)
      WHERE i.agent = u.agent`.execute(),
  ]);
  // Each recipient's inbox row, held until the COMMIT: a removal deletes that row first, so it waits for this
  // transaction (and then deletes its messages too), or went first and the recipient is refused. A broker's view of
  // the inboxes lags a removal on another broker: this is what keeps it from storing a message under no inbox. KEY
  // SHARE: publishers, takers and claimers of the inbox do not wait for each other.
  const held = recipients.length === 0 ? Promise.resolve([]) : tx<{ agent: string }[]>`
    SELECT agent FROM interop_inboxes WHERE agent = ANY(${recipients}::text[]) ORDER BY agent COLLATE "C" FOR KEY SHARE`.execute();
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
    )${awaitedReplies(tx, messages, broker)}
    SELECT id FROM stored`.execute();
  const notified = recipients.length === 0 ? undefined : tx`SELECT pg_notify(${COMMITS}, ${notification(broker, recipients)})`.execute();
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
  const [, found, present, , rows] = await Promise.all([keysLocked, earlier, held, heads, inserted, creating, noting, marked, withdrawing, notified, cleared]);
  const gone = recipients.filter((agent) => !present.some((row) => row.agent === agent));
  if (gone.length > 0) {
    throw new InteropError("unknown_agent", `Unknown agent: ${gone.join(", ")} has no inbox (removed, on this broker or another); nothing was stored`);
  }
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
}

/**
 * The statement's part that records the replies its messages' senders await (`NewMessage.awaited`), in the
 * transaction that stores the questions: a reply, which can only be written once its question is seen, then never
 * meets a reader before the record. Nothing for a commit without one (the publishes that await no reply).
 */
function awaitedReplies(tx: TransactionSql, messages: WriteBatch["messages"], broker: string): Fragment {
  const awaited = messages.flatMap((message, index) => message.awaited === undefined ? [] : [{ ord: index + 1, ...message.awaited }]);
  if (awaited.length === 0) return tx``;
  const waits = tx`(
      SELECT a.id, m.sender AS agent, m.id AS question_id, a.ms
      FROM unnest(${awaited.map((a) => a.ord)}::int8[], ${awaited.map((a) => a.id)}::uuid[], ${awaited.map((a) => a.ms)}::float8[])
        AS a (ord, id, ms)
        JOIN m ON m.ord = a.ord
    ) w`;
  return tx`, ${awaitedRecords(tx, waits, [...new Set(awaited.map((a) => messages[a.ord - 1].from))], broker)}`;
}

/**
 * Updates of one inbox merged into one row (an upsert or update may not touch a row twice), in one order for every broker
 * (two brokers' transactions then lock the same rows in the same order: no deadlock).
 */
function mergeByAgent(updates: InboxUpdate[]): InboxUpdate[] {
  const merged = new Map<string, InboxUpdate>();
  for (const update of updates) {
    const earlier = merged.get(update.agent);
    merged.set(update.agent, earlier === undefined ? update : {
      agent: update.agent,
      create: earlier.create || update.create || undefined,
      deliveredId: Math.max(earlier.deliveredId ?? 0, update.deliveredId ?? 0),
      // As applied one after the other: the last time given wins.
      lastSeen: update.lastSeen ?? earlier.lastSeen,
    });
  }
  return [...merged.values()].sort((a, b) => a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0);
}
