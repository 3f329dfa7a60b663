/** A SQLite read of rows that stops once their payloads hold a number of characters (`readAfter`'s `maxChars`). */
import type { SQLInputValue, StatementSync } from "node:sqlite";
import type { MessageRow } from "./message_row.ts";

/** The characters a message row's payload holds. */
export const payloadChars = (row: MessageRow): number => row.payload.length;

/**
 * The rows of one read, from one statement or several in turn, kept while their payloads' running total (`size` of
 * each row) stays within `maxChars` (the first always). Stepped a row at a time, so no payload past the budget is
 * read: a count alone bounds nothing (500 of 1 MiB read at once held 500 MiB). A window function in the statement
 * (the running total, as PostgreSQL's read has it) cost more: 45-130 µs for a read of 1 or 16 small rows against
 * 12-60 stepped and 7-30 read whole (`all`), which an unbounded read still uses (node:sqlite, Node 24 and Deno 2, load 7).
 */
export class BoundedRows<Row = MessageRow> {
  readonly rows: Row[] = [];
  /** A row was left out for the budget: more follow what `rows` holds. */
  cut = false;
  readonly #maxChars: number;
  readonly #size: (row: Row) => number;
  #chars = 0;

  constructor(maxChars: number, size: (row: Row) => number) {
    this.#maxChars = maxChars;
    this.#size = size;
  }

  /** Adds the rows `statement` reads with `params`, up to the budget (nothing once it was reached). */
  read(statement: StatementSync, ...params: SQLInputValue[]): void {
    if (this.cut) return;
    if (this.#maxChars === Infinity) return void this.rows.push(...statement.all(...params) as unknown as Row[]);
    for (const row of statement.iterate(...params) as Iterable<Row>) {
      this.#chars += this.#size(row);
      if (this.#chars > this.#maxChars && this.rows.length > 0) {
        this.cut = true;
        return;
      }
      this.rows.push(row);
    }
  }
}
