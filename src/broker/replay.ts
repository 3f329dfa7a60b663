/** ntfy's poll: a read from where a stream would start, without a stream; on a shared store, claimed before it counts. */
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope } from "../message.ts";
import type { InboxRecord, SharedInboxes } from "../store/store.ts";
import type { MessageAnswer } from "./message_answer.ts";
import type { StreamStart } from "./stream_start.ts";
import type { Streams } from "./streams.ts";

export interface ReplayDeps {
  /** The store's `readAfter` as an in-order reader reads it: stopping before an awaited reply (`AwaitedReplies`). */
  readInOrder(agent: AgentName, afterId: number, limit: number, maxChars?: number): Promise<Envelope[]>;
  /** Other brokers write to the store too: what a replay read is its own only once its claim succeeds. */
  shared: SharedInboxes | undefined;
  streams: Streams;
  /** Whether a message was taken out of order by a wait (an ask's reply): it was delivered. */
  isTaken(id: number): boolean;
  /**
   * Counts the messages read as delivered, those past the cursor as taken by a poll (see `Takes.commitTake`; on a
   * shared store the claim marked them).
   */
  took(inbox: InboxRecord, envelopes: Envelope[]): Promise<void>;
}

/**
 * Reads up to `limit` messages of `agent`'s inbox from `start`; those not yet delivered are taken, as a `/poll` takes
 * them: counted delivered, and never written to a stream afterwards (they were recorded as a stream's delivery, and a
 * stream resuming by an id before them, or the next stream's resume window, sent them again: red team 63). Where it
 * starts is decided as for a stream (`Streams.begin`): ntfy's poll and stream must agree on what an id says. With
 * `answer`, only what fits in it, encoded before anything counts; once `clientGone` aborts, after the read, none does.
 */
export async function replay(
  deps: ReplayDeps,
  agent: AgentName,
  start: StreamStart,
  limit: number,
  answer?: MessageAnswer,
  clientGone?: AbortSignal,
): Promise<Envelope[]> {
  const { shared } = deps;
  for (;;) {
    // On a shared store the cursor is the store's, moved as a stream's claim moves it: compare-and-set on the
    // version read with it, so a poll or stream on another broker that took some first makes this one read again.
    let version = 0;
    // The cursor read with that version: the record's moves on as a stream on this broker claims meanwhile, and
    // what the poll read past this cursor is the poll's only once its claim succeeds.
    let cursor = 0;
    const { inbox, after } = await deps.streams.begin(agent, start, shared && (async (found) => {
      const read = await shared.version(agent);
      version = read.version;
      cursor = found.deliveredId = Math.max(found.deliveredId, read.deliveredId);
    }));
    // Not what a wait took out of order (an ask's reply): it was delivered, as a stream's replay skips it.
    const keep = (envelope: Envelope) => !deps.isTaken(envelope.id);
    const readAfter = (afterId: number, count: number, maxChars?: number) => deps.readInOrder(agent, afterId, count, maxChars);
    const messages = answer === undefined ? (await readAfter(after, limit)).filter(keep) : await answer.read(readAfter, after, limit, keep);
    if (clientGone?.aborted) return [];
    const last = messages.at(-1);
    if (shared !== undefined && last !== undefined && last.id > cursor) {
      const claim = await shared.claim(agent, undefined, version, last.id, cursor);
      if (claim === "moved") continue;
      if (claim === "removed") throw new InteropError("unknown_agent", `Unknown agent: ${agent} was removed while its inbox was read`);
    }
    await deps.took(inbox, messages);
    return messages;
  }
}
