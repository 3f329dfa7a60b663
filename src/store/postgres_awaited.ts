/** The PostgreSQL store's records of awaited replies (`interop_awaited_replies`): how one is written, and how one ends. */
import { setTimeout as sleep } from "node:timers/promises";
import type { Fragment, Sql, TransactionSql } from "postgres";
import type { AgentName } from "../message.ts";

/** The first wait before an end that failed is tried again; each next one is twice as long, up to `END_RETRY_MAX_MS`. */
const END_RETRY_MS = 250;
const END_RETRY_MAX_MS = 5_000;
/** Past this many records held, writing one also forgets those past their end (whose end was never called). */
const FORGET_PAST = 1_000;

/**
 * The WITH items (after a comma) that write the records of `waits`, a FROM item named `w` with columns `id` (uuid),
 * `agent`, `question_id` and `ms` (how long it holds from this statement), as broker `broker`'s, and delete the
 * expired records of the agents in `agents`. An agent without an inbox (removed meanwhile) awaits nothing. The one
 * statement part of both writers: a question's commit (`NewMessage.awaited`) and `PostgresInboxes.awaitReply`.
 */
export function awaitedRecords(sql: Sql | TransactionSql, waits: Fragment, agents: AgentName[], broker: string): Fragment {
  return sql`awaited AS (
      INSERT INTO interop_awaited_replies (id, agent, question_id, broker, until)
      SELECT w.id, w.agent, w.question_id, ${broker}, now() + make_interval(secs => w.ms / 1000)
      FROM ${waits} JOIN interop_inboxes i ON i.agent = w.agent
    ), expired AS (
      DELETE FROM interop_awaited_replies WHERE agent = ANY(${agents}::text[]) AND until <= now()
    )`;
}

/**
 * The records this broker wrote, each until it ends (`end`) or outlives its wait. A record whose delete failed (the
 * connection lost at that moment) would hold the inbox's readers on every broker until its wait's timeout, as long
 * as this broker lives: its delete is tried again, soon and then less often, until it succeeds, the record's own end
 * passes (it holds no one then), or the store closes.
 */
export class AwaitedRecords {
  /** Each record's end by this broker's monotonic clock (ms): past it, no retry is worth its statement. */
  #until = new Map<string, number>();
  #closed = new AbortController();

  /** Record `id` is being written, to hold for `ms`. */
  held(id: string, ms: number): void {
    const now = performance.now();
    if (this.#until.size >= FORGET_PAST) for (const [old, until] of this.#until) if (until <= now) this.#until.delete(old);
    this.#until.set(id, now + ms);
  }

  /**
   * Runs `remove` (the statement deleting record `id`) until it succeeds; rejects with its last error once the record
   * has ended by itself or the store closed. A record this broker did not write is tried once.
   */
  async end(id: string, remove: () => Promise<void>): Promise<void> {
    try {
      for (let wait = END_RETRY_MS;; wait = Math.min(2 * wait, END_RETRY_MAX_MS)) {
        try {
          return await remove();
        } catch (error) {
          const until = this.#until.get(id) ?? 0;
          if (performance.now() + wait >= until) throw error;
          await sleep(wait, undefined, { signal: this.#closed.signal }).catch(() => {});
          if (this.#closed.signal.aborted) throw error;
        }
      }
    } finally {
      this.#until.delete(id);
    }
  }

  /** The store is closing: retries stop. */
  close(): void {
    this.#closed.abort();
  }
}
