/** How many whole messages one read of the store asks for, so that what a read holds at once is bounded. */
import { DEFAULT_MAX_BODY_BYTES } from "../message.ts";

/**
 * The characters one read of the store holds at most, were each message as large as a publish may make it (JSON may
 * escape a byte to six characters: that many more for messages of control characters); as much as one answer of
 * messages holds (DEFAULT_ANSWER_BUDGET). A stream catching up read 500 messages at a time: a backlog of 200 of 1 MiB
 * was read, encoded and written in one go, /status waiting 27 s meanwhile (load 12); in pages of 64, 7.7 s at a time.
 */
export const READ_CHARS = 16 * 1024 * 1024;

/** `most` messages, or as many as READ_CHARS holds at `maxMessageBytes` each, if fewer (and at least one). */
export function messagesPerRead(most: number, maxMessageBytes = DEFAULT_MAX_BODY_BYTES): number {
  return Math.max(1, Math.min(most, Math.floor(READ_CHARS / maxMessageBytes)));
}
