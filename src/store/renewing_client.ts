/**
 * A one-connection `postgres` client whose queries are bounded: past the bound the client is given up for a fresh
 * one. A connection of the `postgres` client 3.4.9 was seen never to connect again after PostgreSQL restarted under
 * load, and a query on it never settled; a broker waiting on it answered 503 for good (the registry's outage retry)
 * or hung every request (the token re-read). tests/e2e/postgres_crash.test.ts restarts PostgreSQL under load.
 */
import type { Sql } from "postgres";

/** How long one query may take, connecting included, before its client is replaced. */
export const QUERY_BOUND_MS = 6000;
/** Within the bound, so a slow connect fails as itself rather than as a stuck client. */
export const CONNECT_TIMEOUT_S = QUERY_BOUND_MS / 1000 - 1;

/** A query given up at the bound: the server is as good as unreachable (its client is being replaced). */
export class NoAnswer extends Error {}

export class RenewingClient {
  #connect: () => Sql;
  #sql: Sql;
  #closed = false;
  /** Run on each fresh client: what lives on a connection (a LISTEN) must be set up again there. */
  #renewed: Array<(sql: Sql) => Promise<unknown>> = [];

  /** `connect` makes a client; it should use `CONNECT_TIMEOUT_S` and `max: 1`. */
  constructor(connect: () => Sql) {
    this.#connect = connect;
    this.#sql = connect();
  }

  /** Runs `query` on the current client; one that takes longer than QUERY_BOUND_MS rejects and replaces the client. */
  async query<T>(query: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.#sql;
    const late = new NoAnswer(`PostgreSQL gave no answer within ${QUERY_BOUND_MS} ms`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(late), QUERY_BOUND_MS)));
    try {
      return await Promise.race([query(sql), deadline]);
    } catch (error) {
      if (error === late && this.#sql === sql && !this.#closed) this.#renew(sql);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs `setup` now and again on every client that replaces this one (a LISTEN). */
  async onEveryClient(setup: (sql: Sql) => Promise<unknown>): Promise<void> {
    this.#renewed.push(setup);
    await this.query(setup);
  }

  async end(): Promise<void> {
    this.#closed = true;
    await this.#sql.end({ timeout: 1 });
  }

  #renew(stuck: Sql): void {
    this.#sql = this.#connect();
    stuck.end({ timeout: 0 }).catch(() => {});
    // A setup that fails now is retried by the next renewal; until then its own backstop covers (a periodic re-read).
    for (const setup of this.#renewed) void this.query(setup).catch(() => {});
  }
}
