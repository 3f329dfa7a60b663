/** Where a stream or a replay starts in an inbox: its cursor, an event id, or a time. */
import { InteropError } from "../errors.ts";
import type { InboxRecord, MessageStore } from "../store/store.ts";

/** Where a stream (or a replay) starts in an inbox. */
export type StreamStart =
  /** After the last delivered message: what is pending, then live messages. */
  | { from: "cursor" }
  /**
   * Exactly after this id (Last-Event-ID; ntfy's since=<id>); an unknown or expired id is refused. `store`: the
   * identity of the store the id came from, when the client says (a stream reads another store's ids from the cursor).
   * `key`: the message's key, when the client named it (an ntfy id), which tells whether it is this store's.
   * `hadInboxOn`: the store on which the client saw the agent's inbox (listen, reconnecting): on this store, an agent
   * with no inbox was removed by the operator, and the stream is refused rather than create the inbox again.
   * `sentAs`: how the request named the id (ntfy's `since=`), so that a refusal says what to leave out; else
   * Last-Event-ID.
   */
  | { from: "id"; afterId: number; store?: string; key?: string; hadInboxOn?: string; sentAs?: string }
  /** Every retained message created at or after this time, in ms (ntfy's since=<duration|time|all>). */
  | { from: "time"; since: number };

/** The id after which a stream or replay starts; an id the broker never assigned (409) or retention removed (410) is refused. */
export async function resolveStart(store: MessageStore, inbox: InboxRecord, start: StreamStart, lastId: number): Promise<number> {
  switch (start.from) {
    case "cursor":
      return inbox.deliveredId;
    case "time":
      // And what is still pending from before then: the inbox has one cursor, and a read that started past it would
      // move it over messages nobody was sent (counted pending, read by nothing).
      return Math.min(inbox.deliveredId, Math.max(inbox.purgedId, await store.idBefore(inbox.agent, start.since)));
    case "id": {
      const retry = `reconnect without ${start.sentAs ?? "Last-Event-ID"} to read pending messages`;
      if (start.afterId > lastId) {
        throw new InteropError("unknown_event_id", `Unknown event id ${start.afterId}: this broker has assigned ids up to ${lastId}; ${retry}`);
      }
      if (start.afterId < inbox.purgedId) {
        throw new InteropError(
          "event_id_expired",
          `Event id ${start.afterId} expired: messages for ${inbox.agent} up to ${inbox.purgedId} were removed by retention; ${retry}`,
        );
      }
      // An id past the cursor the client does not say is this store's (an EventSource's Last-Event-ID, curl) may be
      // another store's (a new data dir at the same URL), whose client has none of these: it reads from the cursor.
      // Also this store's after a kill -9 (the cursor commits up to 0.1 s late): those messages come again.
      if (start.store === undefined && start.afterId > inbox.deliveredId) return inbox.deliveredId;
      return start.afterId;
    }
  }
}
