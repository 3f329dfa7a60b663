/** Rows as both stores' tables hold them (the same columns): a message and the envelope it becomes, an inbox. */
import type { AgentName, Envelope } from "../message.ts";
import type { InboxRecord } from "./store.ts";

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

export function toEnvelope(row: MessageRow): Envelope {
  const envelope: Envelope = {
    id: row.id,
    from: row.sender as AgentName,
    to: row.recipient as AgentName,
    timestamp: new Date(row.created_at).toISOString(),
    payload: JSON.parse(row.payload),
  };
  if (row.reply_to !== null) envelope.thread = { replyTo: row.reply_to, conversation: row.conversation!, hops: row.hops! };
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
    purgedId: row.purged_id,
    pending: row.pending,
    lastSeen: row.last_seen,
    deadLetters: row.dead_letters,
    expired: row.expired,
  };
}
