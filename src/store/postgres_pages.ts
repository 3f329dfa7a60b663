/** PostgreSQL reads of rows bounded by what their payloads hold (`MessageStore.readAfter`'s `maxChars`). */
import type { Fragment, Sql } from "postgres";
import type { Envelope } from "../message.ts";
import { type MessageRow, toEnvelope } from "./message_row.ts";
import { cutAs, cutShort } from "./store.ts";

/** Which end of a page its running total counts from: its oldest row (`readAfter`) or its newest (`readLatest`). */
export type CountFrom = "oldest" | "newest";

/**
 * The rows of `page` (rows with an `id`, its LIMIT `limit` within it), oldest first, whose `size`s' running total
 * from `from`'s end stays within `maxChars` (the first always), cut short (`cutShort`) when it left some out; with no
 * bound, all of `page`. Decided in the same statement, by a window over the page: one round trip, however many rows
 * it holds, where a count per read bounded by the largest message allowed (16 at 1 MiB) read a backlog 16 messages a
 * round trip.
 */
export async function boundedRows<Row extends { id: number }>(
  sql: Sql,
  page: Fragment,
  size: Fragment,
  limit: number,
  maxChars: number,
  from: CountFrom,
): Promise<Row[]> {
  if (maxChars === Infinity) return (await sql<Row[]>`SELECT * FROM (${page}) page ORDER BY id`) as Row[];
  const order = sql.unsafe(from === "oldest" ? "ASC" : "DESC");
  const rows = await sql<Array<Row & { next: number | null }>>`
    SELECT * FROM (
      SELECT page.*, sum(${size}) OVER w AS held, row_number() OVER w AS n, lead(page.id) OVER w AS next
      FROM (${page}) page WINDOW w AS (ORDER BY page.id ${order} ROWS UNBOUNDED PRECEDING)
    ) counted
    WHERE held <= ${maxChars} OR n = 1 ORDER BY id`;
  // The row counted last had a next one in the page, left out for the budget.
  const last = from === "oldest" ? rows.at(-1) : rows[0];
  const kept = rows as Row[];
  return rows.length < limit && last?.next != null ? cutShort(kept) : kept;
}

/**
 * `boundedRows` of a page of message rows, by their payloads: `octet_length` counts UTF-8 bytes (no fewer than
 * characters) without reading a TOASTed payload.
 */
export async function readBounded(
  sql: Sql,
  page: Fragment,
  limit: number,
  maxChars: number,
  from: CountFrom = "oldest",
): Promise<Envelope[]> {
  const rows = await boundedRows<MessageRow>(sql, page, sql`octet_length(page.payload)`, limit, maxChars, from);
  return cutAs(rows, rows.map(toEnvelope));
}
