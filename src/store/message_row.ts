/** Rows as both stores' tables hold them (the same columns): a message and the envelope it becomes, an inbox. */
import { type AgentName, type Envelope, METADATA_FIELD, type Payload, type Thread } from "../message.ts";
import type { DeadLetter, InboxRecord } from "./store.ts";

export interface MessageRow {
  id: number;
  recipient: string;
  sender: string;
  created_at: number;
  payload: string;
  reply_to: number | null;
  conversation: number | null;
  hops: number | null;
}

/** The columns a `MessageRow` is read from. */
export const MESSAGE_COLUMNS = "id, recipient, sender, created_at, payload, reply_to, conversation, hops";

/**
 * The payload as stored: a reply's `Thread.context` rides in it under the broker's metadata field, which no
 * accepted payload has (the broker refuses it), so the context needs no column of its own.
 */
export function storedPayload(payload: Payload, thread: Thread | undefined): Payload {
  return thread?.context === undefined ? payload : { ...payload, [METADATA_FIELD]: { context: thread.context } };
}

export function toEnvelope(row: MessageRow): Envelope {
  const payload = JSON.parse(row.payload) as Payload;
  const stored = payload[METADATA_FIELD] as { context?: unknown } | undefined;
  // Deleted, not copied without it: this runs for every message read.
  if (stored !== undefined) delete payload[METADATA_FIELD];
  const envelope: Envelope = {
    id: row.id,
    from: row.sender as AgentName,
    to: row.recipient as AgentName,
    timestamp: new Date(row.created_at).toISOString(),
    payload,
  };
  if (row.reply_to !== null) {
    envelope.thread = { replyTo: row.reply_to, conversation: row.conversation!, hops: row.hops! };
    if (typeof stored?.context === "string") envelope.thread.context = stored.context;
  }
  return envelope;
}

/** An inbox as both stores' `loadInboxes` read it: its row plus the counts of pending messages and dead letters. */
export interface InboxRow {
  agent: AgentName;
  delivered_id: number;
  purged_id: number;
  last_seen: number | null;
  expired: number;
  pending: number;
  dead_letters: number;
}

export function toInboxRecord(row: InboxRow): InboxRecord {
  return {
    agent: row.agent,
    deliveredId: row.delivered_id,
    // Before 2026-12-01 an expiry raised the mark past the cursor, and every resume (listen's from the cursor too) was
    // refused as expired; a delivered message's removal never takes it past the cursor.
    purgedId: Math.min(row.purged_id, row.delivered_id),
    pending: row.pending,
    lastSeen: row.last_seen,
    deadLetters: row.dead_letters,
    expired: row.expired,
  };
}

/** A dead letter as both stores read it (`acknowledged_at` NULL until an operator acknowledged it). */
export interface DeadLetterRow {
  messageId: number;
  reason: string;
  parkedAt: number;
  acknowledgedAt: number | null;
}

export function deadLetterOf({ messageId, reason, parkedAt, acknowledgedAt }: DeadLetterRow): DeadLetter {
  return acknowledgedAt === null ? { messageId, reason, parkedAt } : { messageId, reason, parkedAt, acknowledgedAt };
}

/**
 * A dead letter's reason as both stores keep it: a NUL, which PostgreSQL's text cannot hold, written out as `\u0000`.
 * The reason is what the receiver said (an --exec command's stderr, a push answer, an A2A task's text): one with a NUL
 * was refused 503 for ever on PostgreSQL, listen retrying the park while nothing after it was delivered (red team 59).
 */
export function storedReason(reason: string): string {
  return reason.replaceAll("\0", "\\u0000");
}
