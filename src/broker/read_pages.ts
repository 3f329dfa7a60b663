/** How much one read of whole messages from the store may hold, whatever their sizes. */
import { DEFAULT_MAX_BODY_BYTES } from "../message.ts";

/**
 * The characters of stored payloads one read of the store holds at most (and one message, however large): a resume
 * skipping reads up to 1,000 messages at a time, a shared store's reply waiters up to 500, and the store stops each
 * read at this many characters, in the same statement (`MessageStore.readAfter`'s `maxChars`); a stream catching up
 * reads up to 500, and a MiB of them (what it writes at once: `StreamSession`). A count alone let a backlog of 200
 * of 1 MiB be read, encoded and written in one go (/status waiting 27 s, load 12). Bounding the count instead by the largest message a publish may make (16 at 1 MiB, session 30)
 * made a PostgreSQL stream behind a burst of small messages read 16 a round trip: batches of 50 fell from 26,752 to
 * 6,424 msg/s delivered, p50 31 ms to 11.6 s, half the acknowledged messages not delivered when the load ended.
 */
export const READ_CHARS = 16 * 1024 * 1024;

/**
 * For a read the store cannot stop at READ_CHARS (a task listing's key-prefix read): `most` messages, or as many as
 * READ_CHARS holds at `maxMessageBytes` each, if fewer (and at least one).
 */
export function messagesPerRead(most: number, maxMessageBytes = DEFAULT_MAX_BODY_BYTES): number {
  return Math.max(1, Math.min(most, Math.floor(READ_CHARS / maxMessageBytes)));
}
