/** A SQLite read of message rows that stops once their payloads hold a number of characters (`readAfter`'s `maxChars`). */
import type { SQLInputValue, StatementSync } from "node:sqlite";
import type { MessageRow } from "./message_row.ts";

/**
 * The rows of one read, from one statement or several in turn, kept while their payloads' running total stays within
 * `maxChars` (the first always). Stepped a row at a time, so no payload past the budget is read: a count alone bounds
 * nothing (500 of 1 MiB read at once held 500 MiB). A window function in the statement (the running total, as
 * PostgreSQL's read has it) cost more: 45-130 µs for a read of 1 or 16 small rows against 12-60 stepped and 7-30 read
 * whole (`all`), which an unbounded read still uses (node:sqlite, Node 24 and Deno 2, load 7).
 */
export class BoundedRows {
  readonly rows: MessageRow[] = [];
  /** A row was left out for the budget: more follow what `rows` holds. */
  cut = false;
  readonly #maxChars: number;
  #chars = 0;

  constructor(maxChars: number) {
    this.#maxChars = maxChars;
  }

  /** Adds the rows `statement` reads with `params`, up to the budget (nothing once it was reached). */
  read(statement: StatementSync, ...params: SQLInputValue[]): void {
    if (this.cut) return;
    if (this.#maxChars === Infinity) return void this.rows.push(...statement.all(...params) as unknown as MessageRow[]);
    for (const row of statement.iterate(...params) as Iterable<MessageRow>) {
      this.#chars += row.payload.length;
      if (this.#chars > this.#maxChars && this.rows.length > 0) {
        this.cut = true;
        return;
      }
      this.rows.push(row);
    }
  }
}
