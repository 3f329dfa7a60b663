/**
 * The SQLite store's dead letters: what an agent's receiver refused for good, parked, listed and acknowledged. Each
 * runs in the caller's transaction (or read), as the retention steps do.
 */
import type { DatabaseSync } from "node:sqlite";
import type { AgentName } from "../message.ts";
import { deadLetterOf, type DeadLetterRow, storedReason } from "./message_row.ts";
import { BoundedRows } from "./sqlite_bounded_rows.ts";
import { SQLITE_MESSAGE_COLUMNS } from "./sqlite_schema.ts";
import { cutShort, type DeadLetter } from "./store.ts";

/**
 * An inbox's dead letters not acknowledged, counted where a row of `inboxes` names the agent: what `/status` counts
 * (`loadInboxes`) and what an acknowledgement says is left, one rule.
 */
export const DEAD_LETTER_COUNT =
  "(SELECT count(*) FROM dead_letters d WHERE d.agent = inboxes.agent AND d.acknowledged_at IS NULL)";

/** See `MessageStore.addDeadLetter`: true when the letter is new. */
export function insertDeadLetter(db: DatabaseSync, agent: AgentName, letter: DeadLetter): boolean {
  return db.prepare("INSERT OR IGNORE INTO dead_letters (agent, message_id, reason, parked_at) VALUES (?, ?, ?, ?)")
    .run(agent, letter.messageId, storedReason(letter.reason), letter.parkedAt).changes === 1;
}

/** See `MessageStore.deadLetters`. */
export function readDeadLetters(
  db: DatabaseSync,
  agent: AgentName,
  limit: number,
  beforeId: number,
  maxChars: number,
  withAcknowledged: boolean,
): DeadLetter[] {
  type Row = DeadLetterRow & { chars: number | null };
  const page = new BoundedRows<Row>(limit > 1 ? maxChars : Infinity, (row) => row.chars ?? 0);
  // The message's payload measured where it is stored (its row, or the payload it shares), not read into memory.
  page.read(
    db.prepare(
      `SELECT message_id AS messageId, reason, parked_at AS parkedAt, acknowledged_at AS acknowledgedAt,
         (SELECT length(payload) FROM (SELECT ${SQLITE_MESSAGE_COLUMNS} FROM messages WHERE id = message_id)) AS chars
       FROM dead_letters WHERE agent = ? AND message_id < ? AND (? OR acknowledged_at IS NULL)
       ORDER BY message_id DESC LIMIT ?`,
    ),
    agent,
    beforeId,
    withAcknowledged ? 1 : 0,
    limit,
  );
  const letters = page.rows.map(({ chars: _, ...row }) => deadLetterOf(row)).reverse();
  return page.cut ? cutShort(letters) : letters;
}

/** See `MessageStore.acknowledgeDeadLetters`; in a transaction, so that what is left is counted after the marks. */
export function markDeadLettersAcknowledged(
  db: DatabaseSync,
  agent: AgentName,
  messageIds: number[] | undefined,
  at: number,
): { acknowledged: number[]; left: number } {
  const ids = messageIds === undefined ? null : JSON.stringify(messageIds);
  const marked = db.prepare(
    `UPDATE dead_letters SET acknowledged_at = ? WHERE agent = ? AND acknowledged_at IS NULL
       AND (? IS NULL OR message_id IN (SELECT value FROM json_each(?))) RETURNING message_id AS id`,
  ).all(at, agent, ids, ids) as Array<{ id: number }>;
  const { left } = db.prepare(`SELECT ${DEAD_LETTER_COUNT} AS left FROM (SELECT ? AS agent) inboxes`).get(agent) as { left: number };
  return { acknowledged: marked.map((row) => row.id).sort((a, b) => a - b), left };
}
