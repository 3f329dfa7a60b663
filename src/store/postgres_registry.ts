/**
 * One broker's place among the brokers on a PostgreSQL database: its row in `interop_brokers` (heartbeats, the
 * marker that settles a COMMIT in doubt), and the outage while the server cannot be reached.
 */
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { InteropError } from "../errors.ts";
import { CONNECT_TIMEOUT_S, RenewingClient } from "./renewing_client.ts";
import type { Durability } from "./store.ts";

/** How often an outage retries the server. */
const RETRY_MS = 250;
/** Retry-After on `storage_unavailable` answers, in seconds. */
const RETRY_AFTER_S = 1;
/** How often a broker writes its heartbeat; one silent for three of these counts as gone. */
export const HEARTBEAT_MS = 5000;
/** How long a broker stopped or gone stays listed (in seconds): a day, for an operator to see what stopped. */
const FORGOTTEN_AFTER_S = 24 * 60 * 60;

/**
 * The `application_name` of the connections of broker `id`'s store, its LISTEN connection among them (held open as
 * long as the broker runs): a broker killed loses them at once, and `pg_stat_activity` shows it gone then, where its
 * heartbeat takes up to 15 s.
 */
export function brokerConnectionName(id: string): string {
  return `${BROKER_CONNECTION}${id}`;
}

/** What `brokerConnectionName` puts before the broker's id. */
export const BROKER_CONNECTION = "interop broker ";

/** The connection options both of the store's clients share. */
export const CLIENT_OPTIONS = {
  onnotice: () => {},
  connect_timeout: 10,
  // postgres' default backoff reaches 20 s after a few refused connections; the broker retries its own way.
  backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
} as const;

/** This broker, as the others and `/status` see it. */
export interface Claimant {
  pid: number;
  host: string;
  version: string;
}

export interface RegistrationOptions {
  url: string;
  /** The URL without its password, for messages. */
  location: string;
  durability: Durability;
  warn(message: string): void;
}

export class Registration {
  /** This broker's row in `interop_brokers`. */
  readonly id = crypto.randomUUID();
  #options: RegistrationOptions;
  #client: RenewingClient;
  #outage: InteropError | undefined;
  #recovering = false;
  /** The outage ends when the server answers again and no COMMIT is in doubt: nothing may commit after one. */
  #reachable = false;
  #inDoubt = 0;
  /** The store's own checks that its connections answer again, after a call of its got none (`awaiting`). */
  #checks = 0;
  #closed = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #backListeners: Array<() => void> = [];

  private constructor(options: RegistrationOptions) {
    this.#options = options;
    // Every query bounded: an outage's retry that never settles would answer 503 for good.
    this.#client = new RenewingClient(() =>
      postgres(options.url, {
        ...CLIENT_OPTIONS,
        connect_timeout: CONNECT_TIMEOUT_S,
        max: 1,
        fetch_types: false,
        connection: { application_name: "interop broker registry" },
      })
    );
  }

  /**
   * Connects and checks the server's durability settings; throws `unsafe_durability` or `storage_unavailable`.
   */
  static async connect(options: RegistrationOptions): Promise<Registration> {
    const registration = new Registration(options);
    try {
      // This connection leaves synchronous_commit alone, so it sees the server's (and role's, database's) setting.
      const [settings] = await registration.#client.query((sql) =>
        sql<{ fsync: string; synchronous_commit: string }[]>`
          SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit`
      );
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
      return registration;
    } catch (error) {
      await registration.close();
      if (error instanceof InteropError) throw error;
      throw new InteropError("storage_unavailable", `Cannot connect to PostgreSQL at ${options.location}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /**
   * Writes this broker's row (after the schema exists) and starts its heartbeats. The rows of brokers silent for
   * FORGOTTEN_AFTER go: every restart added one, listed in `/status` as gone for ever (red team 53: 17 after 15
   * restarts) and read by every cluster view. Nothing needs them by then: a stream, a reply wait or a commit marker
   * counts only for a broker alive, or gone a moment.
   */
  async register(claimant: Claimant): Promise<void> {
    await this.#client.query((sql) =>
      sql`
        INSERT INTO interop_brokers (id, pid, host, version)
        VALUES (${this.id}, ${claimant.pid}, ${claimant.host}, ${claimant.version})`
    );
    await this.#client.query((sql) =>
      sql`DELETE FROM interop_brokers WHERE coalesce(stopped_at, heartbeat_at) < now() - make_interval(secs => ${FORGOTTEN_AFTER_S})`
    );
    this.#heartbeat = setInterval(() => void this.#beat(), HEARTBEAT_MS);
    (this.#heartbeat as { unref?: () => void }).unref?.();
  }

  /** Records where this broker listens, for `/status` on every broker. */
  async announce(listening: string): Promise<void> {
    await this.#client.query((sql) => sql`UPDATE interop_brokers SET listening = ${listening} WHERE id = ${this.id}`);
  }

  /** While the server cannot be reached, the error every store call fails with. */
  get outage(): InteropError | undefined {
    return this.#outage;
  }

  /** `listener` is called each time an outage ends, once calls are served again. */
  onBack(listener: () => void): void {
    this.#backListeners.push(listener);
  }

  /**
   * Whether the server works on a call of the store's: on backend `pid`, or on any of the store's connections when
   * the call's is not known. Asked on this connection, which answers while the pool's may not (a desynced client).
   * A statement waiting for a lock runs: the lock's holder has a bound of its own. One waiting for the client does
   * not: `active` with `ClientRead` is a statement the client is still sending (the extended protocol's next message,
   * behind an answer the client never got). A transaction that went to the client within `withinMs` (`idle in
   * transaction` between its statements) counts as worked on: a look that falls between two statements must not
   * cut it; one stuck there stays that way past the next look.
   */
  async working(pid: number | undefined, withinMs: number): Promise<boolean> {
    const [row] = await this.#client.query((sql) =>
      sql<{ working: boolean }[]>`
        SELECT EXISTS (
          SELECT 1 FROM pg_stat_activity
          WHERE ${pid === undefined ? sql`application_name = ${brokerConnectionName(this.id)}` : sql`pid = ${pid}`}
            AND (
              (state = 'active' AND wait_event_type IS DISTINCT FROM 'Client')
              OR (state IN ('active', 'idle in transaction')
                AND state_change > clock_timestamp() - make_interval(secs => ${withinMs / 1000}))
            )
        ) AS working`
    );
    return row.working;
  }

  /** Throws the outage, if there is one. */
  check(): void {
    if (this.#outage !== undefined) throw this.#outage;
  }

  /** Starts an outage (once): calls fail fast until the server answers again. */
  fail(cause: unknown): InteropError {
    if (this.#closed) return this.#outage ?? new InteropError("storage_unavailable", "The store is closed");
    if (this.#outage === undefined) {
      this.#reachable = false;
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

  /**
   * Whether the transaction that wrote `marker` into this broker's row, whose COMMIT got no answer, committed: asks
   * the server (waiting for it to be back) until it knows. Until then the store refuses every call, so nothing
   * commits after it and the marker it reads is the last one committed.
   */
  async committed(marker: string): Promise<boolean> {
    this.#inDoubt++;
    try {
      for (;;) {
        try {
          // FOR UPDATE waits for the transaction if its session still runs on the server (its answer lost on the way).
          const [row] = await this.#client.query((sql) =>
            sql<{ last_commit: string | null }[]>`SELECT last_commit FROM interop_brokers WHERE id = ${this.id} FOR UPDATE`
          );
          return row?.last_commit === marker;
        } catch {
          // Not back yet.
        }
        // A broker stopping (or stopped) does not wait for the server: it reports the commit as failed.
        if (this.#closed) return false;
        await sleep(RETRY_MS);
      }
    } finally {
      this.#inDoubt--;
      this.#end();
    }
  }

  /**
   * The outage ends no sooner than `check` settles: the store's check that its own connections answer, after a call
   * got no answer there while this connection may answer all along.
   */
  async awaiting(check: Promise<unknown>): Promise<void> {
    this.#checks++;
    try {
      await check;
    } catch {
      // Settled: the check itself stops only once it passed or the broker stops.
    } finally {
      this.#checks--;
      this.#end();
    }
  }

  /** The broker is stopping: no more outages, recoveries or waits for an in-doubt commit. */
  closing(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
  }

  /** Marks this broker stopped (when the server answers) and closes the connection. */
  async close(): Promise<void> {
    this.closing();
    if (this.#heartbeat !== undefined) {
      await this.#client.query((sql) => sql`UPDATE interop_brokers SET stopped_at = now() WHERE id = ${this.id}`).catch(() => {});
    }
    await this.#client.end();
  }

  async #beat(): Promise<void> {
    if (this.#outage !== undefined) return;
    try {
      await this.#client.query((sql) => sql`UPDATE interop_brokers SET heartbeat_at = now() WHERE id = ${this.id}`);
    } catch (cause) {
      this.fail(cause);
    }
  }

  /**
   * Retries until the server answers, from one retry after the outage began: a server stopping closes its
   * connections one at a time, and this one, not yet closed when the first failed, would answer "back" at once.
   */
  async #recover(): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    try {
      while (!this.#closed) {
        await sleep(RETRY_MS);
        try {
          await this.#client.query((sql) => sql`UPDATE interop_brokers SET heartbeat_at = now() WHERE id = ${this.id}`);
          this.#reachable = true;
          this.#end();
          return;
        } catch {
          // Not back yet.
        }
      }
    } finally {
      this.#recovering = false;
    }
  }

  /** Ends the outage once the server answers, every COMMIT in doubt is settled and the store's checks passed. */
  #end(): void {
    if (this.#outage === undefined || !this.#reachable || this.#inDoubt > 0 || this.#checks > 0) return;
    this.#outage = undefined;
    this.#options.warn(`PostgreSQL at ${this.#options.location} is back: serving again`);
    for (const listener of this.#backListeners) listener();
  }
}
