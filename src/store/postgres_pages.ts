/** PostgreSQL reads of whole messages bounded by what their payloads hold (`MessageStore.readAfter`'s `maxChars`). */
import type { Fragment, Sql } from "postgres";
import type { Envelope } from "../message.ts";
import { type MessageRow, toEnvelope } from "./message_row.ts";
import { cutShort } from "./store.ts";

/**
 * The rows of `page` (message rows in id order, its LIMIT `limit` within it) whose payloads' running total stays
 * within `maxChars` (the first always), cut short (`cutShort`) when it left some out; with no bound, `page` as it is.
 * Decided in the same statement, by a window over the page: one round trip, however many messages it holds, where a
 * count per read bounded by the largest message allowed (16 at 1 MiB) read a backlog 16 messages a round trip.
 * `octet_length` counts UTF-8 bytes (no fewer than characters) without reading a TOASTed payload.
 */
export async function readBounded(sql: Sql, page: Fragment, limit: number, maxChars: number): Promise<Envelope[]> {
  if (maxChars === Infinity) return (await sql<MessageRow[]>`${page}`).map(toEnvelope);
  const rows = await sql<Array<MessageRow & { next: number | null }>>`
    SELECT * FROM (
      SELECT page.*, sum(octet_length(page.payload)) OVER w AS held, row_number() OVER w AS n, lead(page.id) OVER w AS next
      FROM (${page}) page WINDOW w AS (ORDER BY page.id ROWS UNBOUNDED PRECEDING)
    ) counted
    WHERE held <= ${maxChars} OR n = 1 ORDER BY id`;
  const envelopes = rows.map(toEnvelope);
  // The last row's next one in the page was left out for the budget.
  return rows.length < limit && rows.at(-1)?.next != null ? cutShort(envelopes) : envelopes;
}
