/** `/history`: the newest messages of an inbox, each marked pending or not, read without taking or creating anything. */
import type { AgentName, Envelope } from "../message.ts";
import { cutAs, type InboxRecord, type MessageStore } from "../store/store.ts";
import type { MessageAnswer } from "./message_answer.ts";

/** A message as `/history` lists it: with whether it is still pending. */
export interface HistoryEntry {
  id: number;
  envelope: Envelope;
  pending: boolean;
}

/** What a history read needs of the broker. */
export interface HistorySources {
  store: MessageStore;
  /** The agent's inbox record if it has one, looked for without creating it. */
  find(agent: AgentName): Promise<InboxRecord | undefined>;
  /** Whether a message of `inbox` is still pending (`Deliveries.pendingIn`). */
  pendingIn(inbox: InboxRecord): (envelope: Envelope) => boolean;
}

/**
 * The last `limit` messages of `agent`'s inbox that fit in `answer`, oldest first; none for an agent without an
 * inbox. Reading them takes, delivers and creates nothing, and does not count as the agent being seen.
 */
export async function readHistory(
  sources: HistorySources,
  agent: AgentName,
  limit: number,
  answer: MessageAnswer<HistoryEntry>,
): Promise<HistoryEntry[]> {
  const inbox = await sources.find(agent);
  if (inbox === undefined) return [];
  const pending = sources.pendingIn(inbox);
  return await answer.readNewest(async (beforeId, limit, maxChars) => {
    const page = await sources.store.readLatest(agent, limit, beforeId, maxChars);
    return cutAs(page, page.map((envelope) => ({ id: envelope.id, envelope, pending: pending(envelope) })));
  }, limit);
}
