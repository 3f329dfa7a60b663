/** A stored message as both stores' tables hold it (the same columns), and the envelope it becomes. */
import type { AgentName, Envelope } from "../message.ts";

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
