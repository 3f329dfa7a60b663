/**
 * One broker's hold on its PostgreSQL database: a session advisory lock on a connection of its own, the claim row
 * (a token every write checks), and the outage while the server cannot be reached, with the lock re-taken after it.
 */
import { appendFileSync } from "node:fs";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import postgres, { type Sql } from "postgres";
import { InteropError } from "../errors.ts";
import type { Durability } from "./store.ts";
import { LOCK_SPACE } from "./postgres_schema.ts";

/** Held for the broker's life by its lock connection: a second broker on the database is refused. */
const BROKER_LOCK = 2;
/** How often an outage retries the server. */
const RETRY_MS = 250;
/** Retry-After on `storage_unavailable` answers, in seconds. */
const RETRY_AFTER_S = 1;

/** The connection options both of the store's clients share. */
export const CLIENT_OPTIONS = {
  onnotice: () => {},
  connect_timeout: 10,
  // postgres' default backoff reaches 20 s after a few refused connections; the broker retries its own way.
  backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
} as const;

/** This broker, as a refused one is told. */
export interface Claimant {
  pid: number;
  host: string;
  version: string;
}

export interface LeaseOptions {
  url: string;
  /** The URL without its password, for messages. */
  location: string;
  durability: Durability;
  warn(message: string): void;
  /** Told once when another broker took the database: this one must stop, its memory of the inboxes is stale. */
  onLost(error: InteropError): void;
}

export class Lease {
  /** Written in the claim row; a write that finds another token is from a broker that lost the database. */
  readonly token = crypto.randomUUID();
  #options: LeaseOptions;
  #sql: Sql;
  /** The lock connection's backend, to tell our own stale session from another broker's. */
  #lockPid = 0;
  #outage: InteropError | undefined;
  #recovering = false;
  /** The outage ends when the lock is held again and no COMMIT is in doubt: nothing may commit after one. */
  #retaken = false;
  #inDoubt = 0;
  #lost = false;
  #closed = false;

  private constructor(options: LeaseOptions) {
    this.#options = options;
    this.#sql = postgres(options.url, {
      ...CLIENT_OPTIONS,
      max: 1,
      // Recycling this connection would drop the lock.
      max_lifetime: null,
      fetch_types: false,
      connection: { application_name: "interop broker lock" },
      onclose: () => this.fail(new Error("connection lost")),
    });
  }

  /**
   * Connects, checks the server's durability settings and takes the broker lock; throws `unsafe_durability`,
   * `database_locked` (naming the holder) or `storage_unavailable`.
   */
  static async take(options: LeaseOptions): Promise<Lease> {
    const lease = new Lease(options);
    try {
      // This connection leaves synchronous_commit alone, so it sees the server's (and role's, database's) setting.
      const [settings] = await lease.#sql<{ fsync: string; synchronous_commit: string }[]>`
        SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit`;
      const unsafe = [
        ...(settings.fsync === "off" ? ["fsync=off"] : []),
        ...(settings.synchronous_commit === "off" ? ["synchronous_commit=off"] : []),
      ];
      if (unsafe.length > 0) {
        const risk = `PostgreSQL at ${options.location} runs with ${unsafe.join(" and ")}: ` +
          "a crash of the server or its machine can lose messages the broker acknowledged";
        if (options.durability === "strict") {
          throw new InteropError(
            "unsafe_durability",
            `${risk}; set ${unsafe.map((setting) => setting.replace("off", "on")).join(" and ")} in postgresql.conf, ` +
              "or pass --durability relaxed to accept the risk",
          );
        }
        options.warn(`${risk} (--durability relaxed)`);
      }
      const [lock] = await lease.#sql<{ locked: boolean; pid: number }[]>`
        SELECT pg_try_advisory_lock(${LOCK_SPACE}, ${BROKER_LOCK}) AS locked, pg_backend_pid() AS pid`;
      if (!lock.locked) {
        throw new InteropError(
          "database_locked",
          `Database ${options.location} is in use by another interop broker${await lease.#holder()}; ` +
            "stop it, or pass a different --database-url (one broker per database for now)",
        );
      }
      lease.#lockPid = lock.pid;
      return lease;
    } catch (error) {
      await lease.close();
      if (error instanceof InteropError) throw error;
      throw new InteropError("storage_unavailable", `Cannot connect to PostgreSQL at ${options.location}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** Writes the claim row (after the schema exists): this broker holds the database from now on. */
  async claim(sql: Sql, claimant: Claimant): Promise<void> {
    await sql`
      INSERT INTO interop_broker (token, lock_pid, pid, host, version)
      VALUES (${this.token}, ${this.#lockPid}, ${claimant.pid}, ${claimant.host}, ${claimant.version})
      ON CONFLICT (singleton) DO UPDATE SET token = excluded.token, lock_pid = excluded.lock_pid, pid = excluded.pid,
        host = excluded.host, version = excluded.version, listening = NULL, started_at = now()`;
  }

  /** While the server cannot be reached, the error every store call fails with. */
  get outage(): InteropError | undefined {
    return this.#outage;
  }

  /** Throws the outage, if there is one. */
  check(): void {
    if (this.#outage !== undefined) throw this.#outage;
  }

  /** Starts an outage (once): calls fail fast until the server answers and the lock is held again. */
  fail(cause: unknown): InteropError {
    if (this.#closed || this.#lost) return this.#outage ?? new InteropError("storage_unavailable", "The store is closed");
    if (this.#outage === undefined) {
      this.#retaken = false;
      this.#outage = new InteropError(
        "storage_unavailable",
        `Storage unavailable: PostgreSQL at ${this.#options.location} cannot be reached (${(cause as Error)?.message ?? cause}); retry shortly`,
        { cause, retryAfter: RETRY_AFTER_S },
      );
      this.#options.warn(`${this.#outage.message.replace(/; retry shortly$/, "")}: answering 503 until it is back`);
      void this.#recover();
    }
    return this.#outage;
  }

  /** Ends this broker's hold for good: the claim is someone else's. Returns the error to fail the caller with. */
  lose(message: string): InteropError {
    const error = new InteropError("database_locked", `${message}; this broker stops, its view of the inboxes may be stale`);
    if (this.#lost || this.#closed) return error;
    this.#lost = true;
    this.#outage = error;
    this.#options.onLost(error);
    return error;
  }

  /**
   * Whether the transaction that wrote `marker` into the claim row, whose COMMIT got no answer, committed: asks the
   * server (waiting for it to be back) until it knows. Until then the store refuses every call, so nothing commits
   * after it and the marker it reads is the last one committed.
   */
  async committed(marker: string): Promise<boolean> {
    this.#inDoubt++;
    try {
      for (;;) {
        try {
          // FOR UPDATE waits for the transaction if its session still runs on the server (its answer lost on the way).
          const [row] = await this.#sql<{ last_commit: string | null }[]>`
            SELECT last_commit FROM interop_broker FOR UPDATE`;
          return row?.last_commit === marker;
        } catch (e) {
          appendFileSync(`/tmp/lease-debug-${process.pid}.log`, `${new Date().toISOString()} committed() error ${[(e as Error).message].join(" ")}\n`);
        }
        // A broker stopping (or stopped) does not wait for the server: it reports the commit as failed.
        if (this.#closed || this.#lost) return false;
        await sleep(RETRY_MS);
      }
    } finally {
      this.#inDoubt--;
      this.#end();
    }
  }

  /** The broker is stopping: no more outages, recoveries or waits for an in-doubt commit. */
  closing(): void {
    this.#closed = true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Ending the session releases the lock.
    await this.#sql.end({ timeout: 1 });
  }

  /** Retries until the server answers with the lock held by this broker again, or another broker has it. */
  async #recover(): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    try {
      while (!this.#closed && !this.#lost) {
        try {
          if (await this.#retake()) {
            this.#retaken = true;
            this.#end();
            return;
          }
        } catch (e) {
          appendFileSync(`/tmp/lease-debug-${process.pid}.log`, `${new Date().toISOString()} retake error ${[(e as Error).message].join(" ")}\n`);
        }
        await sleep(RETRY_MS);
      }
    } finally {
      this.#recovering = false;
    }
  }

  /** Ends the outage once the lock is held again and every COMMIT in doubt is settled. */
  #end(): void {
    appendFileSync(`/tmp/lease-debug-${process.pid}.log`, `${new Date().toISOString()} end ${[this.#outage !== undefined, this.#lost, this.#retaken, this.#inDoubt].join(" ")}\n`);
    if (this.#outage === undefined || this.#lost || !this.#retaken || this.#inDoubt > 0) return;
    this.#outage = undefined;
    this.#options.warn(`PostgreSQL at ${this.#options.location} is back: serving again`);
  }

  /** Re-takes the lock (a no-op when this session still has it) and checks that no other broker claimed meanwhile. */
  async #retake(): Promise<boolean> {
    const [lock] = await this.#sql<{ locked: boolean; pid: number; holder: number | null }[]>`
      SELECT pg_try_advisory_lock(${LOCK_SPACE}, ${BROKER_LOCK}) AS locked, pg_backend_pid() AS pid,
        (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = ${LOCK_SPACE} AND objid = ${BROKER_LOCK}
          AND objsubid = 2 AND granted LIMIT 1) AS holder`;
    if (!lock.locked) {
      // Our old session, cut off but not yet noticed by the server, still holds it: end it and try again.
      if (lock.holder === this.#lockPid) {
        await this.#sql`SELECT pg_terminate_backend(${this.#lockPid})`;
        return false;
      }
      this.lose(`Another interop broker took database ${this.#options.location}${await this.#holder()} while it was unreachable from this one`);
      return false;
    }
    const [claim] = await this.#sql<{ token: string }[]>`SELECT token FROM interop_broker`;
    if (claim?.token !== this.token) {
      this.lose(`Another interop broker claimed database ${this.#options.location} while it was unreachable from this one`);
      return false;
    }
    this.#lockPid = lock.pid;
    await this.#sql`UPDATE interop_broker SET lock_pid = ${lock.pid} WHERE token = ${this.token}`;
    return true;
  }

  /** " (pid …, on …, listening on …)" for the broker that holds the lock, from its claim row when that is its. */
  async #holder(): Promise<string> {
    try {
      const [row] = await this.#sql<{ pid: number; host: string; listening: string | null }[]>`
        SELECT b.pid, b.host, b.listening FROM interop_broker b JOIN pg_locks l ON l.pid = b.lock_pid
        WHERE l.locktype = 'advisory' AND l.classid = ${LOCK_SPACE} AND l.objid = ${BROKER_LOCK} AND l.objsubid = 2 AND l.granted`;
      if (row === undefined) return " (still starting)";
      return ` (pid ${row.pid} on ${row.host}, ${row.listening === null ? "still starting" : `listening on ${row.listening}`})`;
    } catch {
      // No claim table yet: the holder is creating the schema.
      return " (still starting)";
    }
  }
}
